"""ConvAE Explorer: the Streamlit entry point.

Run with ``./dev app`` (or ``python serve.py``). It sets up the page, builds the
navigation from the page table (pages/glue/page_table.py), reads a teacher key or a join
code from the address (and strips them from it at once), draws the shared sidebar with the
live class's lines, a lesson's note when one is running, and hands over to the chosen page;
once the page has run, the view on screen is known (the address bar, and a class's
teacher view: pages/glue/classroom.py).
"""

from __future__ import annotations

import streamlit as st

from pages.glue import classroom, draw, lessons, server
from pages.glue.page_table import groups
from pages.glue.sidebar import render_sidebar, sample_notice
from pages.glue.state import available_models, current_data


@st.cache_resource(show_spinner=False)
def _process() -> int:
    # Once per process: torch threads (one per core) and the periodic garbage collector.
    return server.setup_process()


st.set_page_config(page_title="ConvAE Explorer", page_icon=":material/compress:", layout="wide")
_process()
server.count_run()

PAGES = {
    group: [
        st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path, default=p.default)
        for p in specs
    ]
    for group, specs in groups().items()
}
# Our own links instead of Streamlit's sidebar menu: its <ul> holds <div> section headers,
# which screen readers announce as a broken list (axe rules "list" and "listitem").
page = st.navigation(PAGES, position="hidden")
classroom.begin_run(page.url_path)  # before anything reads the address: ?teacher=, ?join=
by_url = {p.url_path: p for pages in PAGES.values() for p in pages}
with st.sidebar:
    st.title("ConvAE Explorer")
    with st.container(key="nav", gap="small"):
        for group, pages in PAGES.items():
            st.html(f'<div class="cae-nav-group"><p>{group}</p></div>')
            for p in pages:
                st.page_link(p)
    class_box = st.container(key="class_box")  # filled once presentation mode is known
# Layers steps in a fragment that leaves the sidebar as drawn: it shows its own link.
render_sidebar(copy_link=page.url_path != "layer-by-layer")
classroom.sidebar_box(class_box)  # a student's poll (and a jump) runs here, before the page
draw.inject_css()  # after the sidebar: presentation mode may have just been switched
lessons.sidebar(by_url, available_models(), current_data())
lessons.banner(by_url, available_models(), current_data())
sample_notice()
classroom.show_notice()
classroom.run_page(page)
