"""The decoder family table for the README (issue 25), from the shipped checkpoints.

Measures every shipped CIFAR-10 checkpoint of the family (checkpoints/cifar10-<decoder>.pt,
convae.family.family_checkpoints) on the full test split with convae.family.family_table:
parameters, PSNR, SSIM, tiles 4, tiles 2 and the period-2 checkerboard with their floors,
and one sentence per variant (the same as ``python -m convae compare CKPT ...`` and the
Compare page's "Decoder family" tab). Then the same measures at every weight snapshot of
each checkpoint on the first 1,000 test pictures (when an artifact appears or fades).
Prints the table and writes bench/results/family.json.

    CONVAE_DATA=./data .venv/bin/python bench/family.py [--over-training-images 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convae.checkpoints import load_checkpoint, snapshot_models  # noqa: E402
from convae.data import load_dataset  # noqa: E402
from convae.family import (  # noqa: E402
    FLAT_STEPS,
    family_checkpoints,
    family_over_training,
    family_table,
    flat_doubling,
    format_table,
    step_checkerboard,
)
from convae.train import configure_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "family.json"
COMMAND = "CONVAE_DATA=./data .venv/bin/python bench/family.py"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--over-training-images", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None, help="default: one per core")
    args = p.parse_args()
    threads = configure_threads(args.threads)
    out: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": COMMAND + " " + " ".join(sys.argv[1:]),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "threads": threads,
        "load_average_start": os.getloadavg(),
    }
    data = load_dataset("cifar10")
    out["data_fingerprint"] = data.fingerprint
    paths = family_checkpoints(ROOT / "checkpoints", "cifar10")
    cks = {d: load_checkpoint(path) for d, path in paths.items()}
    t0 = time.perf_counter()
    rows = family_table({d: ck.model for d, ck in cks.items()}, data.test)
    out["table_seconds"] = time.perf_counter() - t0
    out["test_images"] = len(data.test)
    out["rows"] = rows
    print(format_table(rows))
    out["checkpoints"] = {
        d: {
            "file": str(path.relative_to(ROOT)),
            "bytes": path.stat().st_size,
            "train_config": cks[d].train_config,
            "test_metrics": cks[d].test_metrics,
            "training_s": cks[d].history[-1]["elapsed_s"],
            "snapshot_steps": [s["step"] for s in cks[d].snapshots],
        }
        for d, path in paths.items()
    }
    # The theory on one x2 step with all-equal weights, and sub-pixel's four random kernels.
    out["flat_steps"] = {k: step_checkerboard(flat_doubling(k)) for k in FLAT_STEPS}
    torch.manual_seed(0)
    random4 = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.PixelShuffle(2))
    out["flat_steps"]["subpixel-random-kernels"] = step_checkerboard(random4)
    print("one x2 step, checkerboard (floor):", out["flat_steps"])
    x = data.test.images[: args.over_training_images]
    t0 = time.perf_counter()
    snaps = {d: snapshot_models(ck.snapshots, ck.config, d) for d, ck in cks.items()}
    curves = family_over_training(snaps, x)
    out["over_training_seconds"] = time.perf_counter() - t0
    out["over_training_images"] = len(x)
    out["over_training"] = curves
    for d, pts in curves.items():
        print(
            f"{d} over training ({len(x)} test pictures; step: checker (floor) / tiles4 / "
            "tiles2): "
            + ", ".join(
                f"{q['step']}: {q['checkerboard']:.2f} ({q['checkerboard_floor']:.2f}) / "
                f"{q['blockiness4']:.2f} / {q['blockiness2']:.2f}"
                for q in pts
            )
        )
    print(markdown(out))
    out["load_average_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


def _cell(value: float, floor: float) -> str:
    return f"{value:.2f} ({floor:.2f})"


def markdown(out: dict) -> str:
    """The README's two tables (tests/test_readme.py checks them against the file)."""
    lines = [
        "| decoder | what it does | parameters | PSNR | SSIM | tiles 4 (floor) | "
        "tiles 2 (floor) | checker (floor) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in out["rows"]:
        cells = [
            _cell(r[k], r[k + "_floor"]) for k in ("blockiness4", "blockiness2", "checkerboard")
        ]
        lines.append(
            f"| `{r['model']}` | {r['label']} | {r['parameters']:,} | {r['psnr']:.2f} dB | "
            f"{r['ssim']:.3f} | " + " | ".join(cells) + " |"
        )
    curves = {d: q for d, q in out["over_training"].items() if d not in ("transpose", "upsample")}
    names = list(curves)
    lines += ["", "| step | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for i, q in enumerate(curves[names[0]]):
        cells = [
            _cell(curves[n][i]["checkerboard"], curves[n][i]["checkerboard_floor"]) for n in names
        ]
        lines.append(f"| {q['step']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
