"""Compare: the same pictures through two decoders, measured and drawn side by side.

Tabs run lazily (``on_change="rerun"``): only the open tab's work is done, by its function
in pages/glue/compare_tabs.py. Everything a tab computes is cached per (weights digest of A
and B, pictures), so a class of students looking at the shipped pair shares one computation.
"""

from __future__ import annotations

import streamlit as st

from convae.figures.compare import finding_sentence
from pages.glue import caches, compare_tabs, draw
from pages.glue.state import require_data, selected_classes, selected_models, source_label

TABS = {
    "side": ("Side by side", compare_tabs.side_by_side),
    "class": ("Per class", compare_tabs.per_class),
    "training": ("Over training", compare_tabs.over_training),
    "tiles": ("Tiles and checkerboards", compare_tabs.tiles),
    "family": ("Decoder family", compare_tabs.family),
}
MAX_IMAGES = 12

st.title("Compare decoders")
data = require_data()
models = [m for m in selected_models() if m.fits(data)]
if len(models) < 2:
    st.info(
        f"Pick two models for {source_label(data.source)} in the sidebar (for example the "
        "shipped transpose and upsample checkpoints), or train a pair with 'both' on the "
        "Train page. The first two picked are compared.",
        icon=":material/compare:",
    )
    st.stop()
a, b = models[:2]
names = (a.name, b.name) if a.name != b.name else (f"{a.name} (A)", f"{b.name} (B)")
summary_box = st.container()  # the one-sentence finding, filled once it is computed

classes = selected_classes()
c1, c2, c3, c4 = st.columns([1, 2, 1, 1])
split = c1.radio(
    "Split", ["test", "train"], key="compare_split", horizontal=True, persist_state="session"
)
images = (data.test if split == "test" else data.train).filter(classes)
if len(images) == 0:
    st.warning(f"The {split} split has no pictures of {', '.join(classes)}.")
    st.stop()
n = c2.slider(
    "Pictures",
    1,
    MAX_IMAGES,
    8,
    key="compare_n",
    persist_state="session",
    help="How many pictures to compare; 1 to look at a single picture.",
)
# A link or a teacher's view may name a first picture past this split's end.
if st.session_state.get("compare_start", 0) > max(len(images) - 1, 0):
    st.session_state["compare_start"] = max(len(images) - 1, 0)
start = c3.number_input(
    f"First picture (of {len(images):,})",
    0,
    max(len(images) - 1, 0),
    0,
    key="compare_start",
    persist_state="session",
    help="Index among the chosen classes' pictures of this split.",
)
start = min(int(start), len(images) - 1)
x = images.floats(slice(start, start + n))
labels = [images.classes[i] for i in images.labels[start : start + n].tolist()]
if st.session_state.get("compare_focus") not in range(len(x)):
    st.session_state["compare_focus"] = 0
focus = c4.selectbox(
    "Close-up picture",
    list(range(len(x))),
    key="compare_focus",
    format_func=lambda i: f"{start + i}: {labels[i]}",
    help="The picture shown large (swipe view, error maps) and over training.",
)

comp = caches.comparison(a, b, names, x, caches.picture_key(x))
with summary_box:
    draw.takeaway(finding_sentence(comp.summary(), f"these {len(x)} pictures"))
pair = compare_tabs.Pair(a, b, names, data, split, classes, images, x, labels, start, focus, comp)

pick = st.session_state.pop("compare_tab_pick", None)  # a link or lesson asks for a tab
if pick in TABS:
    st.session_state["compare_tab"] = TABS[pick][0]
tabs = st.tabs([title for title, _ in TABS.values()], key="compare_tab", on_change="rerun")
for (tab_id, (_, body)), tab in zip(TABS.items(), tabs, strict=True):
    if tab.open:
        st.session_state["compare_tab_id"] = tab_id  # a link's (and a class's) "tab"
        with tab:
            body(pair)
