"""What the benchmark scripts share: where results go, how they are written, the app's
environment for a benchmark server, and the markdown tables the docs quote.

A script run as ``python bench/<name>.py`` puts the repository root on ``sys.path`` and
then imports this module as ``bench.common``.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def add_out_argument(parser: argparse.ArgumentParser, filename: str) -> None:
    """Add ``--out``: the results file, by default bench/results/``filename``.

    The value stays a string (not a Path) so that scripts that store ``vars(args)`` in
    their results can still write them as JSON.

    Args:
        parser: the script's argument parser.
        filename: the results file's name under bench/results/.
    """
    parser.add_argument(
        "--out",
        default=str(RESULTS / filename),
        help=f"where the JSON goes (default: bench/results/{filename})",
    )


def write_results(path: str | Path, result: dict, indent: int = 2) -> Path:
    """Write ``result`` as JSON (one trailing newline) to ``path``, creating its folder,
    and say so on stdout ("wrote <path>").

    Args:
        path: the results file.
        result: JSON-serialisable results.
        indent: JSON indentation (each script keeps the one its committed file has, so a
            rerun's diff shows only changed figures).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent) + "\n")
    print(f"wrote {path}")
    return path


def run_stamp(**fields: object) -> dict:
    """The start of a results dict: when the run began, ``fields`` (command, versions,
    threads, ...), and the load average at the start (the machine is shared; a figure
    measured under load is read with it).

    Args:
        fields: more entries, kept in their order between the two.

    Returns:
        {"when": ISO time, **fields, "load_average_start": os.getloadavg()}.
    """
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        **fields,
        "load_average_start": os.getloadavg(),
    }


def app_env() -> dict[str, str]:
    """Environment for an app server under benchmark: the real CIFAR-10 copy (the data
    root is $CONVAE_DATA, else ./data), the shipped checkpoints, no downloads."""
    return {
        "CONVAE_DATA": str(Path(os.environ.get("CONVAE_DATA") or ROOT / "data")),
        "CONVAE_SOURCE": "cifar10",
        "CONVAE_CHECKPOINTS": str(ROOT / "checkpoints"),
        "CONVAE_OFFLINE": "1",
    }


def markdown_header(*columns: str) -> list[str]:
    """A markdown table's first two lines: the column titles and the separator.

    Args:
        columns: the column titles.

    Returns:
        ["| a | b |", "| --- | --- |"]; the caller appends the rows.
    """
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
