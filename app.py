"""ConvAE Explorer: the Streamlit entry point.

Run with ``./dev app`` (or ``python serve.py``). This file sets up the page, draws the
shared sidebar (pages/common.py), a lesson's note when one is running (pages/lessons.py),
and hands over to the chosen page through ``st.navigation``; each page lives in its own
file under pages/.
"""

from __future__ import annotations

import streamlit as st

from pages import lessons, server, ui
from pages.common import available_models, current_data, render_sidebar, sample_notice


@st.cache_resource(show_spinner=False)
def _process() -> int:
    # Once per process: torch threads (one per core) and the periodic garbage collector.
    return server.setup_process()


st.set_page_config(page_title="ConvAE Explorer", page_icon=":material/compress:", layout="wide")
_process()
server.count_run()

# Every url_path differs from its file's name on purpose: AppTest (1.67) also indexes
# pages/ the old automatic way, and a page whose url matches its file name is then rerun
# without app.py, so the shared sidebar vanishes from the second run on.
PAGES = {
    "Explore": [
        st.Page(
            "pages/overview.py",
            title="Overview",
            icon=":material/home:",
            url_path="start",
            default=True,
        ),
        st.Page(
            "pages/reconstructions.py",
            title="Reconstructions",
            icon=":material/grid_view:",
            url_path="recon",
        ),
        st.Page(
            "pages/layers.py", title="Layers", icon=":material/layers:", url_path="layer-by-layer"
        ),
        st.Page(
            "pages/compare.py", title="Compare", icon=":material/compare:", url_path="decoders"
        ),
        st.Page(
            "pages/cells.py", title="Code cells", icon=":material/grid_on:", url_path="code-cells"
        ),
    ],
    "Build": [
        st.Page(
            "pages/train.py", title="Train", icon=":material/model_training:", url_path="training"
        ),
    ],
    "Uses": [
        st.Page(
            "pages/denoise.py", title="Denoise", icon=":material/blur_off:", url_path="denoising"
        ),
        st.Page("pages/repair.py", title="Repair", icon=":material/healing:", url_path="repairing"),
        st.Page("pages/code.py", title="Code", icon=":material/tune:", url_path="the-code"),
        st.Page(
            "pages/style.py", title="Style", icon=":material/palette:", url_path="style-transfer"
        ),
    ],
}
# Our own links instead of Streamlit's sidebar menu: its <ul> holds <div> section headers,
# which screen readers announce as a broken list (axe rules "list" and "listitem").
page = st.navigation(PAGES, position="hidden")
by_url = {p.url_path: p for group in PAGES.values() for p in group}
with st.sidebar:
    st.title("ConvAE Explorer")
    with st.container(key="nav", gap="small"):
        for group, pages in PAGES.items():
            st.html(f'<div class="cae-nav-group"><p>{group}</p></div>')
            for p in pages:
                st.page_link(p)
# Layers steps in a fragment that leaves the sidebar as drawn: it shows its own link.
render_sidebar(copy_link=page.url_path != "layer-by-layer")
ui.inject_css()  # after the sidebar: presentation mode may have just been switched
lessons.sidebar(by_url, available_models(), current_data())
lessons.banner(by_url, available_models(), current_data())
sample_notice()
page.run()
