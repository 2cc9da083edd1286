"""Code space: where the encoder puts every test picture, and what its code knows.

Four parts, each in a tab that runs only when open (pages/glue/codespace_views.py draws
them): a map of every test picture's code beside a map of its raw pixels (click or lasso
to see pictures and both models' reconstructions), a picture's nearest neighbours in
the code and in the pixels, a linear class probe, and what each code channel carries.
Results come from convae.codespace, computed once per model and data set and shared.
"""

from __future__ import annotations

import streamlit as st

from convae.data import data_root
from convae.figures.codespace import shown_indices
from pages.glue import caches, codespace_views, draw
from pages.glue.state import picked_models, require_data, selected_classes, source_label

PARTS = {
    "map": ("Map", codespace_views.map_part),
    "neighbours": ("Neighbours", codespace_views.neighbours_part),
    "probe": ("Does the code know the class?", codespace_views.probe_part),
    "channels": ("Channels", codespace_views.channels_part),
}

st.title("Code space")
draw.takeaway(
    "Every test picture's code is one point: pictures whose codes are close sit close. "
    "Beside it the same pictures by their raw pixels, so you can see what the encoder "
    "reorganised. Click a point or draw around a group to see those pictures."
)
data = require_data()
entries = picked_models(data)[:2]
root = str(data_root())
models = dict(zip("AB", entries, strict=False))
spaces = {t: caches.code_space(m, data, root) for t, m in models.items()}
picked = selected_classes()
shown = shown_indices(data.test.labels, data.classes, picked)
if len(shown) == 0:
    st.warning(f"The test split has no pictures of {', '.join(picked)}.")
    st.stop()
view = codespace_views.View(data, models, spaces, root, shown, picked)
n_train, n_test = len(data.train), len(data.test)
st.caption(
    f"{source_label(data.source)}: the map shows the {len(shown):,} test pictures of "
    f"{'every class' if len(picked) == len(data.classes) else ', '.join(picked)}; "
    f"measures over the whole split of {n_test:,} (probes trained on {n_train:,} "
    f"training pictures). Models: {', '.join(view.label(t) for t in models)}"
    f"{'' if len(models) > 1 else ' (pick a second in the sidebar to compare decoders)'}."
)

pick = st.session_state.pop("codespace_part_pick", None)  # a link or lesson asks for a part
if pick in PARTS:
    st.session_state["codespace_tab"] = PARTS[pick][0]
tabs = st.tabs([title for title, _ in PARTS.values()], key="codespace_tab", on_change="rerun")
for (part, (_, body)), tab in zip(PARTS.items(), tabs, strict=True):
    if tab.open:
        st.session_state["codespace_part"] = part  # a link's (and a class's) "part"
        with tab:
            body(view)
