"""The README's figures agree with their sources: every checkpoint table's training time is
the elapsed time stored in that checkpoint, as ``python -m convae info`` prints it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from convae.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def _training_times() -> dict[str, int]:
    """{checkpoint file: seconds} from every README table with a "training time" column."""
    times, column = {}, None
    for line in (ROOT / "README.md").read_text().splitlines():
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
