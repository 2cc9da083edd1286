"""Training recipes: every :class:`~convae.train.TrainConfig` the app and the command line
put together, in one place.

* :func:`classroom_config` - the Train page's run: a few epochs on a few thousand
  pictures, with :func:`classroom_warmup` (a short warm-up, so the learning rate reaches
  its peak within a short run); :func:`classroom_default` is the page's run as it opens
  (:data:`CLASSROOM_EPOCHS` epochs on :data:`CLASSROOM_PICTURES` pictures, the rest
  ``TrainConfig``'s defaults: the command line's recipe).
* :data:`QUICK_PAIR` - the Compare page's "train a small pair with snapshots": both
  decoders, same seed and data order, weights kept at 8 points of the run.
* :func:`cli_config` - ``python -m convae train``'s arguments.

The library's own defaults (``TrainConfig()``) are the full recipe of the shipped models;
what a recipe here changes, and why, is said where it changes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .data import DataSet
from .models import SEED_DECODERS
from .train import TrainConfig

# The library's warm-up (500 steps) is tuned for full runs of 12 epochs; a classroom run
# of a few hundred steps would spend most of itself warming up.
MAX_WARMUP = 500
WARMUP_SHARE = 10  # a classroom run warms up over a tenth of its steps


def steps_in_run(epochs: int, limit: int, batch_size: int) -> int:
    """Optimizer steps of a run of ``epochs`` over ``limit`` pictures in batches of
    ``batch_size`` (the last batch of an epoch may be short)."""
    return int(epochs) * math.ceil(int(limit) / int(batch_size))


def classroom_warmup(steps_total: int) -> int:
    """Warm-up steps for a short run: a tenth of its steps, at least 1, at most 500.

    Args:
        steps_total: the run's optimizer steps (:func:`steps_in_run`).
    """
    return min(MAX_WARMUP, max(1, steps_total // WARMUP_SHARE))


# The Train page's run as it opens: about 15,000 pictures, a few seconds on one core.
CLASSROOM_EPOCHS = 3
CLASSROOM_PICTURES = 5000


def classroom_default(
    decoder: str, data: DataSet, seed: int = 0, device: str = "cpu"
) -> TrainConfig:
    """The Train page's recipe with the settings it opens with: all classes,
    :data:`CLASSROOM_EPOCHS` epochs on the first :data:`CLASSROOM_PICTURES` training
    pictures (fewer when the data set has fewer), and ``TrainConfig``'s batch size,
    learning rate, loss and precision, as ``python -m convae train`` uses them.

    Args:
        decoder: one of ``convae.models.DECODERS``.
        data: the data set the page trains on.
        seed: the page's seed (0 as it opens).
        device: "cpu" or "cuda".
    """
    d = TrainConfig()
    return classroom_config(
        decoder,
        epochs=CLASSROOM_EPOCHS,
        limit=min(CLASSROOM_PICTURES, len(data.train)),
        batch_size=d.batch_size,
        lr=d.lr,
        loss=d.loss,
        seed=seed,
        noise=0.0,
        classes=data.classes,
        all_classes=data.classes,
        device=device,
    )


def class_filter(picked: Sequence[str], available: Sequence[str]) -> tuple[str, ...]:
    """The ``TrainConfig.classes`` for the picked classes: () when every class is picked
    (a recipe then reads "all classes", and stays valid if the set gains one)."""
    return () if set(picked) >= set(available) else tuple(picked)


def classroom_config(
    decoder: str,
    *,
    epochs: int,
    limit: int,
    batch_size: int,
    lr: float,
    loss: str,
    seed: int,
    noise: float,
    classes: Sequence[str],
    all_classes: Sequence[str],
    device: str,
) -> TrainConfig:
    """The Train page's recipe from its settings.

    Args:
        decoder: one of ``convae.models.DECODERS``.
        epochs, limit, batch_size, lr, loss, seed, noise: as in :class:`TrainConfig`.
        classes: the classes picked in the sidebar.
        all_classes: the data set's classes (all picked: no class filter).
        device: "cpu" or "cuda".

    Raises:
        ValueError: a setting :class:`TrainConfig` refuses, with its message.
    """
    warmup = classroom_warmup(steps_in_run(epochs, limit, batch_size))
    return TrainConfig(
        decoder=decoder,
        loss=loss,
        epochs=int(epochs),
        batch_size=int(batch_size),
        lr=float(lr),
        warmup_steps=warmup,
        classes=class_filter(classes, all_classes),
        limit=int(limit),
        noise=float(noise),
        seed=int(seed),
        device=device,
    )


@dataclass(frozen=True)
class QuickPair:
    """Both decoders trained alike with snapshots, small enough to wait for (about a
    minute on a 2-core CPU): the Compare page's "over training" view when the picked
    models carry no snapshots.

    Attributes:
        epochs, limit, batch_size, seed: the run (batch 64: fewer, cheaper steps).
        warmup_steps: 20 of the run's 189 steps.
        snapshots: weights kept at step 0 and this many evenly spaced steps.
        test_images: fit() scores each epoch on the first this-many test pictures
            (not 10,000: the page waits for it).
    """

    epochs: int = 3
    limit: int = 4000
    batch_size: int = 64
    seed: int = 0
    warmup_steps: int = 20
    snapshots: int = 8
    test_images: int = 1000

    def configs(
        self, classes: Sequence[str], all_classes: Sequence[str], device: str
    ) -> list[TrainConfig]:
        """One recipe per decoder of the course (``convae.models.SEED_DECODERS``), the same
        but for it."""
        return [
            TrainConfig(
                decoder=d,
                epochs=self.epochs,
                batch_size=self.batch_size,
                limit=self.limit,
                seed=self.seed,
                classes=class_filter(classes, all_classes),
                warmup_steps=self.warmup_steps,
                device=device,
            )
            for d in SEED_DECODERS
        ]

    def data(self, data: DataSet) -> DataSet:
        """``data`` with its test split cut to the first ``test_images`` pictures."""
        return dataclasses.replace(data, test=data.test.head(self.test_images))

    def name(self, cfg: TrainConfig) -> str:
        """The name a trained model of the pair is listed under."""
        return f"{cfg.decoder}-snap{self.snapshots}-seed{cfg.seed}"


QUICK_PAIR = QuickPair()


# The train command's arguments that are TrainConfig fields as they are.
CLI_RECIPE = (
    "decoder",
    "loss",
    "epochs",
    "batch_size",
    "lr",
    "limit",
    "noise",
    "seed",
    "device",
    "corruption",
    "precision",
    "schedule",
)


def parse_classes(text: str) -> list[str]:
    """Class names from a comma-separated list ("cat, dog" -> ["cat", "dog"])."""
    return [c.strip() for c in text.split(",") if c.strip()]


def cli_config(args: argparse.Namespace, workers: int) -> TrainConfig:
    """``python -m convae train``'s recipe from its parsed arguments.

    Args:
        args: the train command's arguments (decoder, loss, epochs, batch_size, lr,
            classes, limit, noise, seed, device, corruption, precision, schedule).
        workers: the data-parallel processes that will train (``--workers`` or torchrun's).
    """
    recipe = {name: getattr(args, name) for name in CLI_RECIPE}
    return TrainConfig(**recipe, classes=tuple(parse_classes(args.classes)), workers=workers)
