"""Train the decoder family's new members on CIFAR-10 with one recipe and one seed.

    nice -n 10 .venv/bin/python bench/train_family.py [DECODER ...] [--data cifar10]

The recipe is TrainConfig's defaults of the day they were trained (MSE, 12 epochs, batch
32, Adam lr 2e-3 with a 500-step warm-up and cosine decay, float32, seed 0), pinned here
(:data:`FAMILY_RECIPE`) so that a rerun trains the shipped models' recipe, the same for
every variant; the two seed
decoders keep their own longer recipe (checkpoints/cifar10-transpose.pt and -upsample.pt).
Each checkpoint stores its weights at step 0, at convae.family.FAMILY_SNAPSHOT_STEPS and
at the last step, so that the over-training view shows when an artifact appears or fades.
One thread, one model at a time: the machine is shared.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convae.checkpoints import save_checkpoint  # noqa: E402
from convae.data import load_dataset  # noqa: E402
from convae.family import (  # noqa: E402
    FAMILY_RECIPE,
    FAMILY_SNAPSHOT_STEPS,
    merge_snapshots,
    snapshot_callback,
)
from convae.models import DECODERS, SEED_DECODERS  # noqa: E402
from convae.train import TrainConfig, configure_threads, fit  # noqa: E402

NEW = tuple(d for d in DECODERS if d not in SEED_DECODERS)


def train_one(decoder: str, data, source: str, out: Path) -> None:
    """Train one decoder with the family recipe and write its checkpoint."""
    cfg = TrainConfig(decoder=decoder, seed=0, **FAMILY_RECIPE)
    extra: list[dict] = []
    on_step = snapshot_callback(FAMILY_SNAPSHOT_STEPS, extra)

    def callback(ev) -> None:
        on_step(ev)
        if ev.kind == "epoch":
            print(
                f"{decoder} epoch {ev.epoch}/{ev.epochs}: test PSNR {ev.test_psnr:.2f} dB, "
                f"{ev.images_per_s:.0f} img/s, {ev.elapsed_s:.0f} s",
                flush=True,
            )

    # snapshots=1: step 0 and the final step, from fit() itself.
    result = fit(cfg, data, callback, snapshots=1)
    snaps = merge_snapshots(result.snapshots, extra)
    save_checkpoint(
        out,
        result.model,
        cfg.to_dict(),
        result.history,
        result.test_metrics,
        data.fingerprint,
        source,
        snapshots=snaps,
    )
    m = result.test_metrics
    print(
        f"wrote {out}: test PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, "
        f"{result.seconds:.0f} s, snapshots at {[s['step'] for s in snaps]}",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("decoders", nargs="*", default=list(NEW), help="default: the five new ones")
    p.add_argument("--data", default="cifar10", help="data source (default: %(default)s)")
    p.add_argument("--out-dir", default="checkpoints", help="default: %(default)s")
    args = p.parse_args()
    configure_threads(1)
    data = load_dataset(args.data)
    for d in args.decoders:
        train_one(d, data, args.data, Path(args.out_dir) / f"{args.data}-{d}.pt")


if __name__ == "__main__":
    main()
