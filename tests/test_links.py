"""Shareable links: a URL's query parameters open exactly that view; bad values open the
defaults with a notice naming what was ignored."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from .test_app import APP, TIMEOUT, app_env  # noqa: F401  (fixture)


@pytest.fixture
def env(app_env, monkeypatch):  # noqa: F811
    for k, v in app_env.items():
        monkeypatch.setenv(k, v)


def _run(params: dict[str, str], page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_link_opens_that_view(env):
    at = _run(
        {
            "models": "shipped:shapes-upsample.pt",
            "classes": "square",
            "class": "square",
            "i": "2",
            "step": "conv4",
            "colour": "model",
        },
        "layers",
    )
    assert at.sidebar.multiselect(key="sidebar_models").value == ["shipped:shapes-upsample.pt"]
    assert at.sidebar.multiselect(key="sidebar_classes").value == ["square"]
    assert at.selectbox(key="layers_class").value == "square"
    assert at.number_input(key="layers_index").value == 2
    assert at.select_slider(key="layers_step").value == "conv4"
    assert not at.warning


def test_the_address_bar_follows_the_choices(env):
    at = _run({}, "layers")
    at.button(key="layers_next").click().run()
    assert at.query_params["step"] == "relu1"
    assert "shipped:shapes-transpose.pt" in at.query_params["models"]


def test_invalid_values_open_defaults_with_a_notice(env):
    at = _run({"models": "shipped:nope.pt", "classes": "airplane", "i": "x", "colour": "rainbow"})
    notice = " ".join(w.value for w in at.warning)
    for bad in ("models=shipped:nope.pt", "classes=airplane", "i=x", "colour=rainbow"):
        assert bad in notice
    assert len(at.sidebar.multiselect(key="sidebar_models").value) == 2  # the defaults
    assert at.sidebar.multiselect(key="sidebar_classes").value == []


def test_index_beyond_the_class_does_not_break_the_page(env):
    at = _run({"class": "circle", "i": "999999"}, "layers")
    assert any("channel maps" in h.proto.body for h in at.get("html"))  # the maps are drawn


def test_copy_link_shows_the_current_choices(env):
    at = _run({}, "layers")
    at.button(key="layers_next").click().run()
    # On Layers the link box is in the page, inside the stepping fragment (it follows
    # the step); the sidebar has none there.
    assert not at.sidebar.code
    link = at.main.code[-1].value
    assert link.startswith("?") and "step=relu1" in link and "colour=layer" in link
    assert "models=shipped:shapes-transpose.pt" in link


def test_a_link_picks_the_measure_over_training(env):
    at = _run({"tab": "training", "measure": "checkerboard"}, "compare")
    assert at.session_state["compare_curve_measure"] == "checkerboard"
    bad = _run({"measure": "moire"})
    assert "measure=moire" in " ".join(w.value for w in bad.warning)
