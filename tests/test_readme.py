"""The README's and docs/'s figures agree with their sources: every checkpoint table's
training time is the elapsed time stored in that checkpoint, as ``python -m convae info``
prints it; the decoder family's tables are bench/results/family.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from convae.__main__ import main
from convae.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _training_times() -> dict[str, int]:
    """{checkpoint file: seconds} from every table with a "training time" column in the
    README and docs/."""
    times, column = {}, None
    lines = [
        ln for p in [README, *sorted(DOCS.glob("*.md"))] for ln in [*p.read_text().splitlines(), ""]
    ]
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            column = None
        elif "training time" in cells:
            column = cells.index("training time")
        elif column is not None and (m := re.fullmatch(r"`([\w.-]+\.pt)`", cells[0])):
            times[m[1]] = int(re.fullmatch(r"([\d,]+) s", cells[column])[1].replace(",", ""))
    return times


def test_readme_lists_the_training_time_of_every_shipped_checkpoint():
    shipped = {p.name for p in (ROOT / "checkpoints").glob("*.pt")}
    assert set(_training_times()) == shipped


@pytest.mark.parametrize("name", sorted(_training_times()))
def test_readme_training_time_is_the_checkpoints_own(name, capsys):
    assert main(["info", str(ROOT / "checkpoints" / name)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["epochs_done"] == info["train_config"]["epochs"]
    assert _training_times()[name] == round(info["training_s"])


def test_readme_training_table_shows_the_shipped_pair_as_stored():
    """The training section's row for the shipped pair: each checkpoint's own test PSNR and
    training time, at or above the targets (tests/test_shipped.py scores them again on
    the real test split)."""
    table = next(t for t in _tables(_section("Training")) if t[0][-1] == "target")
    row = next(r for r in table if r[0].startswith("the shipped CIFAR-10 pair"))
    for decoder, target in (("transpose", 22.0), ("upsample", 23.0)):
        ck = load_checkpoint(ROOT / "checkpoints" / f"cifar10-{decoder}.pt")
        psnr = ck.test_metrics["psnr"]
        assert psnr >= target
        assert f"{decoder} {psnr:.2f} dB" in row[1]
        assert f"{round(ck.history[-1]['elapsed_s'])} s" in row[1]
        assert f"{target:.1f}" in row[2]


# ------------------------------------------------------------------ the decoder family

FAMILY_JSON = ROOT / "bench" / "results" / "family.json"


def _section(title: str, doc: Path = README) -> list[str]:
    """The lines of the section of ``doc`` with this heading (to the next heading of its
    level or above)."""
    lines = doc.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.lstrip("#").strip() == title)
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) <= level
        ),
        len(lines),
    )
    return lines[start:end]


def _tables(lines: list[str]) -> list[list[list[str]]]:
    """Every Markdown table in ``lines``: rows of cells, header first, separator left out."""
    tables, rows = [], []
    for ln in [*lines, ""]:
        if ln.startswith("|"):
            cells = [c.strip().strip("*") for c in ln.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def _cell(value: float, floor: float) -> str:
    return f"{value:.2f} ({floor:.2f})"


def test_readme_family_table_is_the_results_file():
    """The family table's every figure, and its command, come from bench/results/family.json."""
    res = json.loads(FAMILY_JSON.read_text())
    section = _section("The decoder family")
    assert any(res["command"].split(" bench/")[0] in ln for ln in section)
    assert any("bench/results/family.json" in ln for ln in section)
    table = next(t for t in _tables(section) if "tiles 4 (floor)" in t[0])
    head, body = table[0], table[1:]
    rows = {r["model"]: r for r in res["rows"]}
    assert [b[0].strip("`") for b in body] == list(rows)
    for cells in body:
        r, got = rows[cells[0].strip("`")], dict(zip(head, cells, strict=True))
        assert got["parameters"] == f"{r['parameters']:,}"
        assert got["PSNR"] == f"{r['psnr']:.2f} dB" and got["SSIM"] == f"{r['ssim']:.3f}"
        for key, name in (("blockiness4", "tiles 4"), ("blockiness2", "tiles 2")):
            assert got[f"{name} (floor)"] == _cell(r[key], r[key + "_floor"])
        assert got["checker (floor)"] == _cell(r["checkerboard"], r["checkerboard_floor"])
    # the same table in docs/family.md, with each variant's sentence as the command and
    # the Compare page write it
    details = _section("The decoder family", DOCS / "family.md")
    assert next(t for t in _tables(details) if "tiles 4 (floor)" in t[0]) == table
    text = " ".join(" ".join(details).split())
    assert all(r["sentence"] in text for r in res["rows"])


def test_readme_family_over_training_is_the_results_file():
    res = json.loads(FAMILY_JSON.read_text())
    section = _section("The decoder family", DOCS / "family.md")
    table = next(t for t in _tables(section) if t[0][0] == "step")
    names = table[0][1:]
    for cells in table[1:]:
        step = int(cells[0].replace(",", ""))
        for name, cell in zip(names, cells[1:], strict=True):
            q = next(q for q in res["over_training"][name] if q["step"] == step)
            assert cell == _cell(q["checkerboard"], q["checkerboard_floor"]), (name, step)


# ------------------------------------------------------------------ the code space

CODESPACE_JSON = ROOT / "bench" / "results" / "codespace.json"


def test_readme_code_space_tables_are_the_results_file():
    """The probe, neighbour and channel figures are bench/results/codespace.json's."""
    res = json.loads(CODESPACE_JSON.read_text())["per_model"]
    section = _section("What the code holds")
    assert any("bench/codespace.py" in ln and "CONVAE_DATA" in ln for ln in section)
    probe, channels = _tables(section)
    t, u = res["cifar10-transpose"], res["cifar10-upsample"]
    rows = {r[0]: r[1:] for r in probe[1:]}

    def pc(x: float) -> str:
        return f"{100 * x:.1f} %"

    assert rows["linear probe: test pictures classed right"] == [
        pc(t["probe"]["code"]["accuracy"]),
        pc(u["probe"]["code"]["accuracy"]),
        pc(t["probe"]["pixels"]["accuracy"]),
        pc(t["probe"]["PCA 256 of pixels"]["accuracy"]),
    ]
    assert rows["8 nearest neighbours of the same class"] == [
        pc(t["neighbour_rates"]["code"]),
        pc(u["neighbour_rates"]["code"]),
        pc(t["neighbour_rates"]["pixel"]),
        pc(t["neighbour_rates"]["PCA 256"]),
    ]
    for cells in channels[1:]:
        name, what = cells[0].split(": ")
        m = res[name]["channels"]
        if what == "PSNR lost when it is off":
            assert cells[1:] == [f"{s['drop']:.2f} dB" for s in m["switch_off"]]
        else:
            prop = what.removeprefix("correlation with ")
            assert cells[1:] == [f"{r:+.2f}" for r in m["correlations"][prop]]
    assert len(channels) == 7
