"""docs/capacity.md's class table agrees with its results file: every row of
bench/results/capacity-class.json is in the table with the same figures (as
``bench/capacity.py --scenario class`` prints them), the table has no row the file lacks,
and the page names each part's date and command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "capacity.md"
RESULTS = ROOT / "bench" / "results" / "capacity-class.json"
FIRST_CELLS = ("students", "trainings", "server CPU per poll")  # the class table's header


def _class_table(doc: Path = DOC, first: tuple[str, ...] = FIRST_CELLS) -> dict:
    """{(students, trainings): {column: cell}} from the table whose header starts so."""
    rows, header = {}, None
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            header = None
        elif tuple(cells[: len(first)]) == first:
            header = cells
        elif header is not None and cells[0].isdigit():
            rows[(int(cells[0]), int(cells[1]))] = dict(zip(header, cells, strict=True))
    return rows


def _ms(d: dict) -> str:
    return f"{d['p50_ms']:,.0f} / {d['p95_ms']:,.0f} ms" if d.get("count") else "- / - ms"


def _sizes() -> list[dict]:
    return json.loads(RESULTS.read_text())["sizes"]


def test_the_class_table_has_exactly_the_measured_sizes():
    assert set(_class_table()) == {(r["students"], r["trainings"]) for r in _sizes()}


@pytest.mark.parametrize("r", _sizes(), ids=lambda r: f"n{r['students']}-t{r['trainings']}")
def test_a_class_row_is_the_results_files(r):
    row = _class_table()[(r["students"], r["trainings"])]
    w, a = r["window"], r["answers"]
    assert row["server CPU per click or jump"] == f"{w['server_cpu_ms_per_run']:.0f} ms"
    assert row["student click p50 / p95"] == _ms(r["student_clicks_ms"])
    assert row["teacher to student p50 / p95"] == _ms(r["follow_ms"])
    assert row["answers lost of sent"] == f"{a['lost']} of {a['sent']}"
    assert row["errors"] == str(r["errors"]["total"])
    assert row["server RSS"] == f"{w['server_memory_mb_end']['rss']:,.0f} MB"
    assert row["load average"] == f"{r['load_average_before'][0]:.1f}"


def test_the_page_names_every_parts_date_and_command():
    text = DOC.read_text()
    for r in _sizes():
        assert r["when"][:16].replace("T", " ") in text, r["when"]
        assert r["command"].split(" ", 1)[1] in text, r["command"]


README_FIRST_CELLS = ("students", "trainings", "student click p50 / p95")


@pytest.mark.parametrize("r", _sizes(), ids=lambda r: f"n{r['students']}-t{r['trainings']}")
def test_the_readme_class_table_is_the_results_files(r):
    """The README's short class table: the same figures for every measured size."""
    table = _class_table(ROOT / "README.md", README_FIRST_CELLS)
    assert set(table) == {(s["students"], s["trainings"]) for s in _sizes()}
    row = table[(r["students"], r["trainings"])]
    assert row["student click p50 / p95"] == _ms(r["student_clicks_ms"])
    assert row["teacher to student p50 / p95"] == _ms(r["follow_ms"])
    assert row["answers lost of sent"] == f"{r['answers']['lost']} of {r['answers']['sent']}"
    assert row["errors"] == str(r["errors"]["total"])
