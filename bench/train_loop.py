"""Per-step Python overhead of the training loop: images/s of one short CPU run, compared
between two source trees (e.g. before and after a change to convae/train.py).

Each run is a fresh process with ``PYTHONPATH`` set to one tree: ``fit()`` on the first
``--limit`` CIFAR-10 training pictures (the JPEG copy in the data root, else the embedded
sample), one epoch, batch 32, seed 0, one thread, with a step callback that only reads the CPU
clock (the app and the command line always pass a callback). Two figures: the run's own training
throughput (``history[0]["images_per_s"]``: images over the epoch's wall-clock training
time, the test scoring after it left out), and images per second of this process's CPU
time from step 1 to the last step (``time.process_time``, read in the callback), which a
busy shared machine disturbs far less than the wall clock. Trees alternate run by run,
so a change in the machine's load hits both alike; the medians are compared, and the
load average is recorded next to every run (the development machine is shared).

Usage: python bench/train_loop.py --tree before=/path/to/old --tree after=. [--rounds 7]
Writes bench/results/train_loop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN = """
import json, sys, time, torch
from convae.data import available_full_source, load_dataset
from convae.train import TrainConfig, fit
torch.set_num_threads(1)
source = "cifar10" if available_full_source("cifar10") else "cifar10-sample"
data = load_dataset(source)
cfg = TrainConfig(epochs=1, batch_size=32, limit=int(sys.argv[1]), seed=0, warmup_steps=20)
cpu = {}

def on_event(ev):  # what the loop costs this process's CPU from step 1 to the last step
    if ev.kind == "step":
        cpu.setdefault("first", (ev.step, time.process_time()))
        cpu["last"] = (ev.step, time.process_time())

r = fit(cfg, data, on_event)
(s0, c0), (s1, c1) = cpu["first"], cpu["last"]
w = r.model.conv1.weight
print(json.dumps({"source": source, "images_per_s": r.history[0]["images_per_s"],
                  "images_per_cpu_s": (s1 - s0) * cfg.batch_size / (c1 - c0),
                  "weights_sum": float(w.double().sum()), "steps": r.history[0]["step"]}))
"""


def one_run(tree: Path, limit: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "CONVAE_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(limit)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["load_average"] = os.getloadavg()[0]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", action="append", required=True, help="LABEL=PATH, twice or more")
    ap.add_argument("--rounds", type=int, default=7, help="runs per tree (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=6400, help="training pictures (%(default)s)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_loop.json"))
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    runs: dict[str, list[dict]] = {label: [] for label in trees}
    for r in range(args.rounds):
        for label, path in trees.items():
            row = one_run(Path(path).resolve(), args.limit)
            runs[label].append(row)
            print(
                f"round {r + 1} {label}: {row['images_per_s']:.0f} img/s, "
                f"{row['images_per_cpu_s']:.0f} img per CPU s, load {row['load_average']:.2f}",
                file=sys.stderr,
            )
    summary = {
        label: {
            "median_images_per_s": statistics.median(r["images_per_s"] for r in rows),
            "median_images_per_cpu_s": statistics.median(r["images_per_cpu_s"] for r in rows),
            "weights_sum": rows[0]["weights_sum"],
            "load_average_median": statistics.median(r["load_average"] for r in rows),
        }
        for label, rows in runs.items()
    }
    result = {
        "what": "fit() images/s (wall, and per CPU second), 1 epoch, batch 32, seed 0, 1 thread",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "limit": args.limit,
        "trees": trees,
        "summary": summary,
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
