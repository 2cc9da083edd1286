"""What the embedded data sample costs: its size in the repo, its first decode, a warm load.

Size is counted as the repo's check counts it: ``du -k`` per file in convae/sample_data/
(a file occupies whole 4 kB blocks). "First decode" is ``load_dataset(SOURCE)`` into an
empty data root (unpack the archive, decode every image, write the uint8 cache), "warm" is
the same call once that cache exists (a memory map). Both run in this process after the
imports, in alternating rounds so background load hits both alike; medians are reported.

Usage::

    python bench/sample_data.py [--rounds 5] [--out bench/results/sample_data.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import add_out_argument, write_results  # noqa: E402
from convae.data import SAMPLE_DIR, SAMPLE_SOURCES, load_dataset  # noqa: E402


def du_k(folder: Path) -> dict[str, int]:
    """kB per file as ``du -k`` reports it (whole blocks), caches and bytecode left out."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    out = subprocess.run(["du", "-k", *map(str, files)], capture_output=True, text=True, check=True)
    return {
        Path(line.split("\t", 1)[1]).name: int(line.split()[0]) for line in out.stdout.splitlines()
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds per measurement (default: 5)")
    add_out_argument(p, "sample_data.json")
    args = p.parse_args()

    sizes = du_k(SAMPLE_DIR)
    load_before = os.getloadavg()
    timings: dict[str, dict[str, list[float]]] = {
        s: {"first": [], "warm": []} for s in SAMPLE_SOURCES
    }
    for _ in range(args.rounds):
        for source in SAMPLE_SOURCES:
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                load_dataset(source, root=tmp)
                timings[source]["first"].append(time.perf_counter() - t)
                t = time.perf_counter()
                load_dataset(source, root=tmp)
                timings[source]["warm"].append(time.perf_counter() - t)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "rounds": args.rounds,
        "size_du_k_kB": sizes,
        "size_du_k_total_kB": sum(sizes.values()),
        "size_bytes": {n: (SAMPLE_DIR / n).stat().st_size for n in sizes},
        "median_s": {
            s: {k: round(statistics.median(v), 4) for k, v in t.items()} for s, t in timings.items()
        },
        "all_s": {
            s: {k: [round(x, 4) for x in v] for k, v in t.items()} for s, t in timings.items()
        },
    }
    print(f"size (du -k): {result['size_du_k_total_kB']} kB in all: {sizes}")
    for s, m in result["median_s"].items():
        print(f"{s}: first decode {m['first']:.3f} s, warm load {m['warm'] * 1000:.1f} ms")
    print(f"load average before/after: {result['load_average_before_after']}")
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
