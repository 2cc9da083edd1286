"""docs/training.md's figures agree with bench/results/train_speed.json: every table the
benchmark prints from that file stands in the page as printed, and the figures the prose
quotes are the file's (the way tests/test_readme.py checks the README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.train_speed import TARGET_DB, markdown, summarise

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "train_speed.json"
DOC = ROOT / "docs" / "training.md"


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads(RESULTS.read_text())


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def _blocks(text: str) -> list[str]:
    """The Markdown tables of ``text``, each as its lines joined."""
    blocks, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            rows.append(line.rstrip())
        elif rows:
            blocks.append("\n".join(rows))
            rows = []
    return blocks


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_every_table_is_the_results_files(report, doc):
    printed = _blocks(markdown(report))
    assert printed, "the results file has no section to print"
    shown = _blocks(doc)
    for table in printed:
        assert table in shown, f"docs/training.md lacks, or changed, the table:\n{table}"


def test_the_summary_is_derived_from_the_sections(report):
    """The file's summary is what the sections give (nobody edited one without the other)."""
    assert report["summary"] == json.loads(json.dumps(summarise(report)))


def test_the_prose_quotes_the_results_file(report, doc):
    text = _flat(doc)
    s = report["summary"]
    assert f"{s['flops_per_image']:,.0f} FLOPs" in text
    for precision in ("fp32", "bf16"):
        assert f"{s['peak'][f'conv3x3_{precision}']['machine']:,.0f} GFLOP/s" in text
    for key in ("quiet", "one core busy"):
        t = report["time"][key]
        assert f"{t['ours']['train_s']['median']:.1f} s" in text
        assert f"{t['course_over_ours_medians']:.1f}x" in text
    assert f"{TARGET_DB:g} dB" in text
    recipes = report["recipes"]
    for r in recipes.values():
        assert f"{r['final_psnr']['median']:.2f} dB" in text
    if "throughput" in report:  # measured in a run of its own (--only throughput,page)
        quiet = s["throughput"]["quiet"]
        ours = next(v for k, v in quiet.items() if k.startswith("ours ("))
        assert f"{ours['of_machine_peak']:.1%}" in text
        assert f"{ours['of_copy_bandwidth']:.0%}" in text
        assert f"{ours['vs_course']:.1f}x" in text
    if "page" in report:
        page = report["page"]["quiet"]
        assert f"{page['seconds_to_target']['median']:.1f} s" in text
    for section in report["sections"]:
        measured = report[f"{section}_measured"]
        assert measured["date"][:10] in text
        assert str(measured["load_average_before"][0]) in text, section
