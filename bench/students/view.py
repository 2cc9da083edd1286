"""What one browser session shows: Streamlit's element tree rebuilt from the deltas the
server sends, and the widget states the browser would send back.

Facts from Streamlit 1.67 (the installed wheel; the frontend is its minified bundle,
``streamlit/static/static/js/index.*.js``, read for the names quoted below):

- Each ``ForwardMsg.delta`` carries its place in the page as ``metadata.delta_path``
  (``[0, ...]`` main area, ``[1, ...]`` sidebar, ``[2, ...]`` the bottom) and the script
  that drew it as ``metadata.active_script_hash`` (the page's, or the entry script's for
  the sidebar app.py draws); ``delta.fragment_id`` names the ``st.fragment`` it belongs to
  (``proto/ForwardMsg.proto``, ``proto/Delta.proto``; written by
  ``runtime/scriptrunner_utils/script_run_context.py``).
- A widget's id is ``$$ID-<hash>-<key>`` (``elements/lib/utils.py``,
  ``_compute_element_id``), read from ``delta.new_element.<type>.id``.
- When a run ends, the browser drops the nodes it did not redraw: every node of an older
  run after a full run, only the nodes of the fragments that ran after a fragment run
  (``clearStaleNodes(scriptRunId, fragmentIds)`` in the bundle), then the widget states
  of widgets no longer shown (``removeInactiveWidgetState``).
- The browser keeps a state for every widget it shows and sends them all with each rerun:
  a widget first shown takes its default from the proto, one the server sets
  (``set_value``) takes the proto's value, one already shown keeps what it had. Buttons
  have no state; a click adds ``trigger_value`` once. The value each widget type sends
  (``string_value`` for a selectbox's option text, ``int_value`` for an integer
  number_input, ...) is the ``value_type`` of its ``register_widget`` call in
  ``elements/widgets/*.py``, and was checked against what Chromium sends (bench/capacity.py
  ``--validate`` compares them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState

MAIN, SIDEBAR = 0, 1  # delta_path roots (proto/RootContainer.proto)
# Element types whose text a person reads, and the field that holds it.
TEXT_FIELDS = {
    "markdown": "body",
    "heading": "body",
    "text": "body",
    "html": "body",
    "code": "code_text",
    "alert": "body",
    "exception": "message",
}
# Widgets that keep no state between runs: a click is a one-off trigger.
TRIGGER_ONLY = {"button", "download_button", "link_button", "page_link", "menu_button"}
FILE_WIDGETS = {"file_uploader", "camera_input", "audio_input"}
# Widget types whose state widget_state() builds; others (charts with selections, date
# inputs, ...) are listed in View.unmodelled and their states are not sent.
MODELLED = {
    "checkbox", "radio", "selectbox", "multiselect", "button_group", "slider",
    "number_input", "text_input", "text_area", "color_picker",
} | FILE_WIDGETS  # fmt: skip


@dataclass
class Node:
    """One element or block of the page, as the last run that wrote it left it."""

    kind: str  # "element" or "block"
    type: str  # the Element / Block oneof name: "button", "markdown", "column", ...
    proto: Any  # the Element's typed message (e.g. Button) or the Block message
    run_id: str  # the script run that last wrote it
    fragment_id: str  # the st.fragment it belongs to, "" outside any
    script_hash: str  # the script that drew it (a page's, or the entry script's)


@dataclass(frozen=True)
class Widget:
    """A widget on the page, with what a simulated user needs to act on it."""

    id: str  # $$ID-<hash>-<key>
    key: str  # the user key ("None" for widgets without one)
    type: str  # "button", "selectbox", "slider", ...
    label: str
    options: tuple[str, ...]  # choices as shown (empty for buttons, checkboxes, ...)
    fragment_id: str  # the fragment that reruns when it changes, "" for a full run
    path: tuple[int, ...]
    proto: Any


def widget_key(widget_id: str) -> str:
    """The user key at the end of a widget id ``$$ID-<hash>-<key>``."""
    parts = widget_id.split("-", 2)
    return parts[2] if len(parts) == 3 else widget_id


def _options(kind: str, w: Any) -> tuple[str, ...]:
    if kind == "button_group":
        return tuple(o.content for o in w.options)
    return tuple(getattr(w, "options", ()))


def widget_state(kind: str, w: Any) -> WidgetState | None:
    """The state the browser records for a widget proto the server just sent, when the
    widget is new or the server set its value; None when it has no state.

    Args:
        kind: the Element oneof name ("selectbox", ...).
        w: its typed proto (``Element.selectbox``, ...).

    Returns:
        A WidgetState with ``id`` and the value field the server reads for that type.
    """
    if kind not in MODELLED or not getattr(w, "id", ""):
        return None
    st = WidgetState(id=w.id)
    opts = _options(kind, w)
    if kind == "checkbox":  # st.checkbox and st.toggle
        st.bool_value = w.value if w.set_value else w.default
    elif kind in ("radio", "selectbox"):
        if w.set_value:
            st.string_value = w.raw_value
        elif w.HasField("default") and w.default < len(opts):
            st.string_value = opts[w.default]
        else:
            return None  # index=None: no choice yet
    elif kind in ("multiselect", "button_group"):
        picked = list(w.raw_values) if w.set_value else [opts[i] for i in w.default]
        st.string_array_value.data.extend(picked)
    elif kind == "slider":
        if w.type == Slider.SELECT_SLIDER:
            picked = list(w.raw_value) if w.set_value else [opts[int(i)] for i in w.default]
            st.string_array_value.data.extend(picked)
        else:
            st.double_array_value.data.extend(w.value if w.set_value else w.default)
    elif kind == "number_input":
        if not (w.set_value or w.HasField("default")):
            return None
        value = w.value if w.set_value else w.default
        if w.data_type == type(w).INT:
            st.int_value = int(value)
        else:
            st.double_value = value
    elif kind in ("text_input", "text_area", "color_picker"):
        if w.set_value:
            st.string_value = w.value
        elif kind == "color_picker" or w.HasField("default"):
            st.string_value = w.default
        else:
            return None
    else:  # FILE_WIDGETS
        st.file_uploader_state_value.SetInParent()  # no files
    return st


class View:
    """The page one session shows: nodes by delta path and the widget states to send."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, ...], Node] = {}
        self.states: dict[str, WidgetState] = {}
        self.unmodelled: set[str] = set()  # widget types seen whose state is not sent

    # ------------------------------------------------------------ from the server
    def apply_delta(self, path: tuple[int, ...], delta: Any, run_id: str, script: str) -> None:
        """Draw one ``Delta`` at ``path`` (``new_element`` or ``add_block``)."""
        what = delta.WhichOneof("type")
        if what == "new_element":
            el = delta.new_element
            kind = el.WhichOneof("type") or ""
            proto = getattr(el, kind) if kind else el
            # An element has no children: what was under a block here is gone.
            for p in [p for p in self.nodes if len(p) > len(path) and p[: len(path)] == path]:
                del self.nodes[p]
            self.nodes[path] = Node("element", kind, proto, run_id, delta.fragment_id, script)
            wid = getattr(proto, "id", "")
            if wid and kind not in TRIGGER_ONLY and kind not in MODELLED:
                self.unmodelled.add(kind)
            elif wid and (wid not in self.states or getattr(proto, "set_value", False)):
                state = widget_state(kind, proto)
                if state is not None:
                    self.states[wid] = state
        elif what == "add_block":
            block = delta.add_block
            kind = block.WhichOneof("type") or "vertical"
            self.nodes[path] = Node("block", kind, block, run_id, delta.fragment_id, script)
        # new_transient (spinners, toasts) and anything newer: not part of the page

    def clear_stale(self, run_id: str, fragment_ids: list[str]) -> None:
        """A run ended: drop what it did not redraw (all older nodes after a full run,
        the ran fragments' older nodes after a fragment run) and the states of widgets
        no longer shown."""
        frags = set(fragment_ids)
        gone = [
            p
            for p, n in self.nodes.items()
            if n.run_id != run_id and (not frags or n.fragment_id in frags)
        ]
        for p in gone:
            self.nodes.pop(p, None)
        if gone:  # children of a dropped block go with it
            dropped = set(gone)
            for p in list(self.nodes):
                if any(p[:k] in dropped for k in range(1, len(p))):
                    del self.nodes[p]
        shown = {getattr(n.proto, "id", "") for n in self.nodes.values() if n.kind == "element"}
        for wid in [w for w in self.states if w not in shown]:
            del self.states[wid]

    def leave_page(self, main_script_hash: str) -> None:
        """The session moved to another page: keep only what the entry script drew."""
        for p in [p for p, n in self.nodes.items() if n.script_hash != main_script_hash]:
            del self.nodes[p]
        shown = {getattr(n.proto, "id", "") for n in self.nodes.values()}
        self.states = {k: v for k, v in self.states.items() if k in shown}

    # ------------------------------------------------------------ for a user
    def widgets(self) -> list[Widget]:
        """Every widget shown, in page order."""
        out = []
        for path in sorted(self.nodes):
            n = self.nodes[path]
            wid = getattr(n.proto, "id", "") if n.kind == "element" else ""
            if wid.startswith("$$ID-"):
                out.append(
                    Widget(
                        wid,
                        widget_key(wid),
                        n.type,
                        getattr(n.proto, "label", ""),
                        _options(n.type, n.proto),
                        n.fragment_id,
                        path,
                        n.proto,
                    )
                )
        return out

    def widget(self, key_or_label: str) -> Widget:
        """The widget with this user key, else with this label.

        Raises:
            LookupError: no such widget is shown; the message lists those that are.
        """
        shown = self.widgets()
        for w in shown:
            if w.key == key_or_label:
                return w
        for w in shown:
            if w.label == key_or_label:
                return w
        names = ", ".join(f"{w.key} ({w.type})" for w in shown) or "none"
        raise LookupError(f"no widget {key_or_label!r} on the page; shown: {names}")

    def value(self, key_or_label: str) -> Any:
        """What a widget holds now, as plain Python (a list for multi-value widgets)."""
        st = self.states.get(self.widget(key_or_label).id)
        if st is None:
            return None
        field = st.WhichOneof("value")
        v = getattr(st, field)
        return list(v.data) if hasattr(v, "data") else v

    def texts(self, root: int | None = MAIN, kinds: tuple[str, ...] = ()) -> list[str]:
        """The text of every markdown, heading, html, code, alert and exception shown,
        in page order; ``root`` MAIN or SIDEBAR, None for all; ``kinds`` only those
        element types (e.g. ``("heading",)``)."""
        out = []
        for path in sorted(self.nodes):
            n = self.nodes[path]
            if (
                n.kind == "element"
                and n.type in TEXT_FIELDS
                and (root is None or path[0] == root)
                and (not kinds or n.type in kinds)
            ):
                out.append(getattr(n.proto, TEXT_FIELDS[n.type]))
        return out

    def exceptions(self) -> list[str]:
        """Messages of the exception boxes shown (a script error)."""
        return [n.proto.message for n in self.nodes.values() if n.type == "exception"]

    def widget_states(self) -> list[WidgetState]:
        """The states the browser sends with a rerun (every widget shown)."""
        return list(self.states.values())
