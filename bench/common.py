"""What the benchmark scripts share: where results go, how they are written, the app's
environment for a benchmark server, and the markdown tables the docs quote.

A script run as ``python bench/<name>.py`` puts the repository root on ``sys.path`` and
then imports this module as ``bench.common``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
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


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(
    port: int, extra: Sequence[str] = (), launcher: Sequence[str] | None = None
) -> list[str]:
    """The command that starts the app as ``./dev app`` does, on ``127.0.0.1:port``,
    headless and without usage statistics.

    Args:
        port: the port to serve on.
        extra: more ``streamlit run`` options.
        launcher: the command that starts one server and takes ``streamlit run`` options
            (default: serve.py with this Python).

    Returns:
        The argument list for :class:`subprocess.Popen` (run it in the repository root).
    """
    return [
        *(launcher or [sys.executable, str(ROOT / "serve.py")]),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        *extra,
    ]


def wait_healthy(
    url: str,
    proc: subprocess.Popen,
    timeout_s: float,
    log: Path | None = None,
    poll_s: float = 0.2,
) -> None:
    """Wait until the app at ``url`` answers ``/_stcore/health`` with 200.

    Args:
        url: the app's base address ("http://127.0.0.1:PORT").
        proc: the server process (an exit stops the wait at once).
        timeout_s: how long to wait at most.
        log: the server's output file; its end goes into the error.
        poll_s: the pause between two tries (it bounds a timed start's resolution).

    Raises:
        RuntimeError: the server exited, or did not answer in ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:  # not listening yet, or not answering yet
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            why = (
                f"exited with code {proc.returncode}"
                if proc.returncode is not None
                else f"did not answer /_stcore/health in {timeout_s:.0f} s"
            )
            tail = f":\n{log.read_text()[-3000:]}" if log is not None else ""
            raise RuntimeError(f"the server did not start ({why}){tail}")
        time.sleep(poll_s)


def markdown_header(*columns: str) -> list[str]:
    """A markdown table's first two lines: the column titles and the separator.

    Args:
        columns: the column titles.

    Returns:
        ["| a | b |", "| --- | --- |"]; the caller appends the rows.
    """
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
