"""Grid-artifact figures of the shipped CIFAR-10 pair for the README (issue 11).

Measures the shipped transpose and upsample checkpoints and the two baselines (PCA with
256 components, a 9x9x3 downsample) on the full test split with
:func:`convae.compare.per_class_table` (the same figures as ``python -m convae compare
A B --baselines``), the tiles over training from the checkpoints' snapshots, and how
long a PCA fit of the training split takes. Prints the tables and writes
bench/results/artifacts.json.

    CONVAE_DATA=./data .venv/bin/python bench/artifacts.py [--over-training-images 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_out_argument, run_stamp, write_results  # noqa: E402
from convae.baselines import (  # noqa: E402
    DownsampleBaseline,
    downsample_config,
    fit_pca,
    pca_baseline,
)
from convae.checkpoints import load_checkpoint, snapshot_models  # noqa: E402
from convae.compare import ARTIFACTS, per_class_table, scores_over_training  # noqa: E402
from convae.data import load_dataset  # noqa: E402
from convae.metrics import block_steps  # noqa: E402
from convae.recon import reconstruct  # noqa: E402
from convae.train import configure_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--over-training-images", type=int, default=1000)
    p.add_argument("--no-fit", action="store_true", help="skip timing a fresh PCA fit")
    add_out_argument(p, "artifacts.json")
    args = p.parse_args()
    threads = configure_threads()
    data = load_dataset("cifar10")
    cks = {
        d: load_checkpoint(ROOT / "checkpoints" / f"cifar10-{d}.pt")
        for d in ("transpose", "upsample")
    }
    out = run_stamp(threads=threads)
    out["data_fingerprint"] = data.fingerprint
    if not args.no_fit:
        t0 = time.perf_counter()
        fresh = fit_pca(data.train)
        out["pca_fit_seconds"] = time.perf_counter() - t0
        out["pca_explained_variance"] = fresh.explained_variance()
        print(f"PCA fit of {len(data.train)} training images: {out['pca_fit_seconds']:.1f} s")
    t0 = time.perf_counter()
    pca = pca_baseline(data)  # cached in <data root>/cache after the first fit
    out["pca_load_seconds"] = time.perf_counter() - t0
    down = DownsampleBaseline(downsample_config(3, 32))
    models = {
        "transpose": cks["transpose"].model,
        "upsample": cks["upsample"].model,
        pca.config.label: pca,
        down.config.label: down,
    }
    t0 = time.perf_counter()
    rows = per_class_table(models, data.test)
    out["table_seconds"] = time.perf_counter() - t0
    out["rows"] = rows
    print(
        f"{'class':<12}{'model':<18}{'PSNR':>7}{'SSIM':>7}" + "".join(f"{a:>22}" for a in ARTIFACTS)
    )
    for r in rows:
        cells = "".join(f"{r[a]:>13.2f} ({r[a + '_floor']:>5.2f})" for a in ARTIFACTS)
        print(f"{r['class']:<12}{r['model']:<18}{r['psnr']:>7.2f}{r['ssim']:>7.3f}{cells}")

    # The issue's own reading of the tiles: mean step across 4x4 tile edges over mean step
    # inside tiles, pooled over the split, relative to the input's.
    x_all = data.test.floats()
    edge0, inside0 = block_steps(x_all, 4)
    base = float(edge0.mean() / inside0.mean())
    out["edge_inside_ratio4"] = {}
    for name, model in models.items():
        edge, inside = block_steps(reconstruct(model, x_all), 4)
        out["edge_inside_ratio4"][name] = float(edge.mean() / inside.mean()) / base
    print(
        "edge/inside step ratio at 4x4 tile edges, relative to the input's:",
        {k: round(v, 3) for k, v in out["edge_inside_ratio4"].items()},
    )

    x = data.test.images[: args.over_training_images]
    curves = {}
    for name, ck in cks.items():
        curves[name] = scores_over_training(snapshot_models(ck.snapshots, ck.config), x)
        print(
            f"{name} over training (tiles4 on {len(x)} images): "
            + ", ".join(f"step {q['step']}: {q['blockiness4']:.2f}" for q in curves[name])
        )
    out["over_training_images"] = len(x)
    out["over_training"] = curves
    out["training_seconds"] = {n: ck.history[-1]["elapsed_s"] for n, ck in cks.items()}
    out["test_metrics"] = {n: ck.test_metrics for n, ck in cks.items()}
    out["load_average_end"] = os.getloadavg()
    write_results(args.out, out)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
