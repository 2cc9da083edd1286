"""Accessible to every student (issue 16): axe-core's WCAG 2.0/2.1 A and AA rules find no
violation on any page, in the normal and the presentation look (checked by test_pages.py,
which opens every page), nor in the class views (test_accessibility_presenting.py), every
picture has a text alternative, and Layers can be stepped end to end with the keyboard
alone, with a visible focus."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe

from .conftest import App

WCAG_AA = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}
# Streamlit-owned markup that the app cannot change and that axe flags, by rule and CSS
# selector of exactly that element (README, "Accessibility"). Empty: the app draws its own
# page links instead of Streamlit's sidebar menu, whose <ul> of <div>s failed "list".
STREAMLIT_OWNED: dict[str, list[str]] = {}


def violations(app: App) -> list[str]:
    # Every picture decoded and every widget drawn: Streamlit shows a skeleton while a
    # widget's code loads, which a fresh browser on a busy machine can still be doing
    # after the run has ended (axe then checks a half-drawn page).
    app.page.wait_for_function(
        "() => Array.from(document.images).every(i => i.complete)"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')",
        timeout=60_000,
    )
    context = {"exclude": [[sel] for sels in STREAMLIT_OWNED.values() for sel in sels]}
    result = (
        Axe()
        .run(app.page, context=context if context["exclude"] else None, options=WCAG_AA)
        .response
    )
    return [
        f"{v['id']}: {n['target']} {n['html'][:120]}"
        for v in result["violations"]
        for n in v["nodes"]
    ]


def assert_accessible(app: App, where: str) -> None:
    """No axe-core WCAG 2.1 AA violation on the page as it is now, and every picture of
    its main area with a text alternative (an alt)."""
    found = violations(app)
    assert not found, f"{where}:\n" + "\n".join(found)
    missing = app.page.locator('[data-testid="stMain"] img:not([alt])').count()
    assert missing == 0, f"{where}: {missing} pictures without alt"


# Every page is checked where test_pages.py opens it anyway
# (test_page_renders_and_its_main_control_works: axe-core and every picture's alt text on
# the page as it opens, again with the presentation switch on, then its main control), so
# a page is opened and drawn once for all the checks (it was three times until
# 2026-12-06). The class views are in test_accessibility_presenting.py (a file runs on one
# pytest-xdist worker).


@pytest.mark.e2e
def test_layers_step_by_step_with_the_keyboard_alone(app):
    app.open("layer-by-layer")
    page = app.page
    nxt = app.main.get_by_role("button", name="Next ▶")
    for _ in range(80):  # Tab through the page until Next has the focus
        page.keyboard.press("Tab")
        if nxt.evaluate("b => b === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the Next button")
    # The focus is visible: an outline or a box shadow, not nothing.
    ring = nxt.evaluate(
        "b => { const s = getComputedStyle(b);"
        " return [s.outlineStyle, s.outlineWidth, s.boxShadow]; }"
    )
    assert ring[0] != "none" or ring[2] != "none", ring
    where = app.main.get_by_text(re.compile(r", step \d+ of \d+\)"))
    seen = [where.inner_text()]
    while "sigmoid" not in seen[-1]:
        assert len(seen) < 20, seen
        app.act(lambda: page.keyboard.press("Enter"))
        seen.append(where.inner_text())
        # The rerun keeps the focus on Next, so the next Enter steps again.
        assert nxt.evaluate("b => b === document.activeElement"), seen
    names = [s.split()[0] for s in seen]
    assert names[0] == "conv1" and names[-1] == "sigmoid" and len(set(names)) == len(names)
    # Shift+Tab reaches Prev, and Enter there steps back.
    page.keyboard.press("Shift+Tab")
    app.act(lambda: page.keyboard.press("Enter"))
    assert where.inner_text().split()[0] == names[-2]
