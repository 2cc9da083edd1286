"""Rules the page code keeps, read from its source."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRAW = ROOT / "pages" / "glue" / "draw.py"


def test_every_fragment_is_made_by_draw_fragment():
    """A fragment straight from ``st.fragment`` can have the element after it drawn over
    when its rerun crosses a full run (pages.glue.draw.fragment says why, and
    tests/e2e/test_fragment_crossing.py shows it): pages make theirs with draw.fragment."""
    found = []
    for path in sorted((ROOT / "pages").rglob("*.py")):
        if path == DRAW:
            continue
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            direct = (
                isinstance(n, ast.Attribute)
                and n.attr == "fragment"
                and isinstance(n.value, ast.Name)
                and n.value.id == "st"
            )
            if direct:
                found.append(f"{path.relative_to(ROOT)}:{n.lineno}")
    assert not found, f"st.fragment used directly: {found}"
    assert "st.fragment(" in DRAW.read_text(encoding="utf-8")
