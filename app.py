"""ConvAE Explorer: the Streamlit entry point.

Run with ``./dev app`` (or ``python -m streamlit run app.py``). This file only sets up
the page, draws the shared sidebar (pages/common.py) and hands over to the chosen page
through ``st.navigation``; each page lives in its own file under pages/.
"""

from __future__ import annotations

import streamlit as st

from convae.train import configure_threads
from pages.common import PIXELATED_CSS, render_sidebar


@st.cache_resource(show_spinner=False)
def _threads() -> int:
    # Once per process: one intra-op thread per core; more only adds contention with
    # the Streamlit server's own threads.
    return configure_threads()


st.set_page_config(page_title="ConvAE Explorer", page_icon=":material/compress:", layout="wide")
_threads()
st.html(PIXELATED_CSS)

# Every url_path differs from its file's name on purpose: AppTest (1.67) also indexes
# pages/ the old automatic way, and a page whose url matches its file name is then rerun
# without app.py, so the shared sidebar vanishes from the second run on.
page = st.navigation(
    {
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
                "pages/layers.py",
                title="Layers",
                icon=":material/layers:",
                url_path="layer-by-layer",
            ),
            st.Page(
                "pages/compare.py", title="Compare", icon=":material/compare:", url_path="decoders"
            ),
        ],
        "Build": [
            st.Page(
                "pages/train.py",
                title="Train",
                icon=":material/model_training:",
                url_path="training",
            ),
        ],
        "Uses": [
            st.Page(
                "pages/denoise.py",
                title="Denoise",
                icon=":material/blur_off:",
                url_path="denoising",
            ),
            st.Page(
                "pages/repair.py", title="Repair", icon=":material/healing:", url_path="repairing"
            ),
            st.Page("pages/code.py", title="Code", icon=":material/tune:", url_path="the-code"),
            st.Page(
                "pages/style.py",
                title="Style",
                icon=":material/palette:",
                url_path="style-transfer",
            ),
        ],
    }
)
with st.sidebar:
    st.title("ConvAE Explorer")
render_sidebar()
page.run()
