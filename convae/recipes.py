"""Training recipes the app and the command line share, so no page builds a TrainConfig.

- :func:`classroom_config`: the Train page's run, with a warm-up that suits a short run;
- :func:`snapshot_pair`: Compare's quick pair of both decoders with snapshots.
"""

from __future__ import annotations

import math

from .models import SEED_DECODERS
from .train import TrainConfig

# The trainer's default warm-up (500 steps) is tuned for full runs; a short classroom run
# gets a tenth of its steps, so that the learning rate reaches its peak.
FULL_WARMUP = 500


def warmup_for(total_steps: int) -> int:
    """Warm-up steps for a run of ``total_steps``: a tenth of it, at most 500, at least 1."""
    return min(FULL_WARMUP, max(1, total_steps // 10))


def classroom_config(
    decoder: str,
    *,
    epochs: int,
    limit: int,
    batch_size: int,
    lr: float,
    loss: str = "mse",
    seed: int = 0,
    noise: float = 0.0,
    classes: tuple[str, ...] = (),
    device: str = "auto",
) -> TrainConfig:
    """The Train page's recipe: the settings a person chose, with :func:`warmup_for`.

    Raises:
        ValueError: a setting TrainConfig refuses (e.g. a batch size under 1).
    """
    steps = epochs * math.ceil(limit / max(batch_size, 1))
    return TrainConfig(
        decoder=decoder,
        loss=loss,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=warmup_for(steps),
        classes=classes,
        limit=limit,
        noise=noise,
        seed=seed,
        device=device,
    )


# Compare's quick pair: both decoders, same seed and data order, a few thousand pictures,
# snapshots along the way (about a minute on a 2-core CPU).
PAIR_EPOCHS, PAIR_LIMIT, PAIR_BATCH, PAIR_WARMUP = 3, 4000, 64, 20
PAIR_TEST_IMAGES = 1000  # scored per epoch (not all 10,000)


def snapshot_pair(classes: tuple[str, ...] = (), device: str = "auto") -> list[TrainConfig]:
    """Compare's quick pair of recipes, one per seed decoder."""
    return [
        TrainConfig(
            decoder=d,
            epochs=PAIR_EPOCHS,
            batch_size=PAIR_BATCH,
            limit=PAIR_LIMIT,
            seed=0,
            classes=classes,
            warmup_steps=PAIR_WARMUP,
            device=device,
        )
        for d in SEED_DECODERS
    ]
