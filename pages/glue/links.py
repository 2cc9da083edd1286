"""Shareable links: the view's choices live in the URL's query parameters.

A teacher copies the address bar and a student opening it sees the same view: the page
(st.navigation's url path), the picked models, the classes, and on the Layers page the
image (class + index), the step and the colour mode, on the Compare page the split, the
pictures (count and first), the open tab and the close-up (picture, A / B / swipe and the
divider), and a lesson's step. ``apply_link()`` reads the query parameters once per
session, before the widgets are drawn, keeps the valid values and lists the others in a
notice; ``sync_link()`` writes the current choices back on every run, so the address bar
is always a link to what is on screen.

A live class's teacher view is the same thing (pages/glue/classroom.py publishes
:func:`view_params` and a following student's session applies it with
:func:`apply_view`), so a view is followed exactly as a link opens it.
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from convae.data import DataSet
from convae.figures import COLOUR_MODES
from convae.figures.compare import MEASURES
from convae.models import DECODERS, AEConfig, ConvAutoencoder

PRESENT_KEY = "ui_present"  # the presentation switch (pages/glue/draw.py reads it)

# query parameter -> session-state key of the widget it sets
PARAMS = {
    "models": "sidebar_models",
    "classes": "sidebar_classes",
    "class": "layers_class",
    "i": "layers_index",
    "step": "layers_step",
    "colour": "layers_colour",
    "compare": "layers_compare",
    "present": PRESENT_KEY,
    "tab": "compare_tab_pick",
    "split": "compare_split",
    "n": "compare_n",
    "start": "compare_start",
    "focus": "compare_focus",
    "view": "compare_ab",
    "swipe": "compare_swipe",
    "measure": "compare_curve_measure",  # Compare's "Over training" measure
    "lesson": "lesson_id",
    "lstep": "lesson_step",
}
# Parameters read back from another key than the one they set: a link's tab is a request
# that pages/compare.py takes (and pops), the tab on screen is kept under this key.
READ_FROM = {"tab": "compare_tab_id"}
SPLITS = ("test", "train")
CLOSE_UP_VIEWS = ("A", "B", "swipe")
MAX_COMPARE_N = 12  # pages/compare.py's slider
TRUE = ("1", "true", "yes", "on")
STEP_NAMES = {"input"} | {
    n for d in DECODERS for n, _ in ConvAutoencoder(AEConfig(decoder=d)).steps()
}


def _split(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def apply_params(q: dict[str, str], models: dict, data: DataSet | None) -> list[str]:
    """Copy the valid choices in ``q`` (query parameters) into session state.

    Returns:
        The "param=value" pairs that were ignored because they do not exist here.
    """
    state = st.session_state
    ignored: list[str] = []

    def take(param: str, values: list[str], valid) -> list[str]:
        good = [v for v in values if v in valid]
        ignored.extend(f"{param}={v}" for v in values if v not in valid)
        return good

    if "models" in q and (good := take("models", _split(q["models"]), models)):
        state["sidebar_models"] = good
    classes = data.classes if data is not None else []
    if "classes" in q:
        state["sidebar_classes"] = take("classes", _split(q["classes"]), classes)
    if "class" in q and take("class", [q["class"]], classes):
        state["layers_class"] = q["class"]
    if "i" in q:
        if q["i"].isdigit():
            state["layers_index"] = int(q["i"])
        else:
            ignored.append(f"i={q['i']}")
    if "step" in q and take("step", [q["step"]], STEP_NAMES):
        state["layers_step"] = q["step"]
    if "colour" in q and take("colour", [q["colour"]], COLOUR_MODES):
        state["layers_colour"] = q["colour"]
    if "compare" in q:
        state["layers_compare"] = q["compare"] in TRUE
    if "present" in q:
        state[PRESENT_KEY] = q["present"] in TRUE
    if "measure" in q and take("measure", [q["measure"]], MEASURES):
        state["compare_curve_measure"] = q["measure"]
    if "tab" in q:
        state["compare_tab_pick"] = q["tab"]  # pages/compare.py checks it
    if "split" in q and take("split", [q["split"]], SPLITS):
        state["compare_split"] = q["split"]
    if "view" in q and take("view", [q["view"]], CLOSE_UP_VIEWS):
        state["compare_ab"] = q["view"]
    for param, key, low, high in (
        ("n", "compare_n", 1, MAX_COMPARE_N),
        ("start", "compare_start", 0, None),  # pages/compare.py clamps it to the split
        ("focus", "compare_focus", 0, MAX_COMPARE_N - 1),
        ("swipe", "compare_swipe", 0, None),  # the close-up clamps it to the picture
    ):
        if param in q:
            if q[param].isdigit() and int(q[param]) >= low:
                value = int(q[param])
                state[key] = value if high is None else min(value, high)
            else:
                ignored.append(f"{param}={q[param]}")
    if "lesson" in q:
        state["lesson_id"] = q["lesson"]  # pages/lessons.py checks it
        state["lesson_step"] = int(q["lstep"]) if q.get("lstep", "").isdigit() else 0
    return ignored


def apply_link(models: dict, data: DataSet | None) -> None:
    """Copy the URL's valid choices into session state (first run of a session only)."""
    state = st.session_state
    if state.get("links_applied"):
        return
    state["links_applied"] = True
    ignored = apply_params(dict(st.query_params), models, data)
    if ignored:
        state["links_notice"] = (
            "This link had values that do not exist here, so the defaults are shown "
            f"instead: {', '.join(ignored)}."
        )


def show_link_notice() -> None:
    notice = st.session_state.pop("links_notice", None)
    if notice:
        st.warning(notice, icon=":material/link_off:")


def apply_view(q: dict[str, str], models: dict, data: DataSet | None) -> list[str]:
    """A class teacher's view, applied exactly: like :func:`apply_params`, and every view
    setting the view does not name goes back to its default, so the screen shows what the
    teacher's shows (presentation mode stays the student's own).

    Returns:
        The "param=value" pairs that do not exist here (left at the defaults).
    """
    state = st.session_state
    for param, key in PARAMS.items():
        if param not in q and param != "present":
            state.pop(key, None)
            state.pop(READ_FROM.get(param, key), None)
    return apply_params({k: v for k, v in q.items() if k != "present"}, models, data)


def current_link_params() -> dict[str, str]:
    """The query parameters that describe the current view."""
    state = st.session_state
    out: dict[str, str] = {}
    for param, key in PARAMS.items():
        value = state.get(READ_FROM.get(param, key))
        if value is None or value == [] or value is False:
            continue
        if value is True:
            out[param] = "1"
        else:
            out[param] = ",".join(value) if isinstance(value, list) else str(value)
    return out


def view_params() -> dict[str, str]:
    """The current view as a class teacher shares it: the link's parameters without
    presentation mode (each screen keeps its own look)."""
    return {k: v for k, v in current_link_params().items() if k != "present"}


def sync_link() -> None:
    """Write the current choices into the address bar (only when they changed)."""
    want = current_link_params()
    if {k: st.query_params.get(k) for k in want} != want or set(st.query_params) - set(want):
        st.query_params.from_dict(want)


def link_to_view() -> str:
    """The full address of this view (page and query parameters), for sharing."""
    query = urlencode(current_link_params(), safe=",:")
    base = st.context.url or ""  # None outside a browser (AppTest)
    return f"{base}?{query}" if query else base


def show_copy_link(where=None) -> None:
    """A copyable link to the current view, at the bottom of the sidebar or in ``where``
    (Layers draws it inside its stepping fragment, whose reruns leave the sidebar as it
    was drawn)."""
    with (where or st.sidebar).expander("Copy link to this view", icon=":material/link:"):
        st.code(link_to_view(), language=None, wrap_lines=True)
        st.caption(
            "Whoever opens it sees this page with these models, classes and, on "
            "Layers, this image, step and colour scale."
        )
