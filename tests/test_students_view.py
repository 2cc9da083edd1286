"""The simulated students' page model (bench/students/view.py) on hand-made deltas: the
widget states a browser would send, and what a finished run leaves on the page."""

from __future__ import annotations

from streamlit.proto.Delta_pb2 import Delta
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.Slider_pb2 import Slider

from bench.students.view import View, widget_state

RUN1, RUN2, FRAG = "run-1", "run-2", "frag-a"


def _delta(fragment: str = "", **element) -> Delta:
    return Delta(new_element=Element(**element), fragment_id=fragment)


def _sid(key: str) -> str:
    return f"$$ID-0123abcd-{key}"


def test_widget_states_are_what_the_browser_sends() -> None:
    el = Element()
    el.selectbox.id, el.selectbox.default = _sid("pick"), 1
    el.selectbox.options.extend(["cat", "dog"])
    assert widget_state("selectbox", el.selectbox).string_value == "dog"  # the option's text
    el.selectbox.set_value, el.selectbox.raw_value = True, "cat"
    assert widget_state("selectbox", el.selectbox).string_value == "cat"  # the server's value

    el.number_input.id, el.number_input.default = _sid("n"), 3
    assert widget_state("number_input", el.number_input).int_value == 3  # INT: int_value

    el.slider.id, el.slider.type = _sid("step"), Slider.SELECT_SLIDER
    el.slider.options.extend(["input", "conv1", "relu1"])
    el.slider.default.append(1)
    assert list(widget_state("slider", el.slider).string_array_value.data) == ["conv1"]

    el.button.id = _sid("go")
    assert widget_state("button", el.button) is None  # a trigger, sent only when clicked


def test_a_fragment_run_clears_only_its_fragment_and_its_gone_widgets() -> None:
    view = View()
    outside = _delta(checkbox={"id": _sid("present"), "default": True})
    inside = _delta(FRAG, checkbox={"id": _sid("values"), "label": "Values"})
    text = _delta(FRAG, markdown={"body": "**conv1**"})
    view.apply_delta((1, 0), outside, RUN1, "app")
    view.apply_delta((0, 0), inside, RUN1, "page")
    view.apply_delta((0, 1), text, RUN1, "page")
    assert set(view.states) == {_sid("present"), _sid("values")}

    # The fragment reruns and draws only its text: its checkbox is gone, the one
    # outside the fragment stays, with the value the user gave it.
    view.states[_sid("present")].bool_value = False
    view.apply_delta((0, 0), _delta(FRAG, markdown={"body": "**relu1**"}), RUN2, "page")
    view.clear_stale(RUN2, [FRAG])
    assert view.texts() == ["**relu1**"]
    assert set(view.states) == {_sid("present")}
    assert view.value("present") is False

    # A full run that draws nothing in the main area clears it all.
    view.apply_delta((1, 0), outside, "run-3", "app")
    view.clear_stale("run-3", [])
    assert view.texts() == [] and [w.key for w in view.widgets()] == ["present"]
    assert view.value("present") is False  # set_value is off: the browser keeps its own
