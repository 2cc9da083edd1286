"""Tiny trained models and their checkpoint files, for the tests that need a real one.

A real fit() on the tiny synthetic tree (tests/conftest.py's ``tiny_data``: 72 training
pictures) with a short recipe, written by ``Checkpoint.from_training(...).save(path)``:
the same file the Train page and the command line write, with its recipe, history,
scores, fingerprint, data source and any snapshots.
"""

from __future__ import annotations

from pathlib import Path

from convae.checkpoints import Checkpoint
from convae.data import DataSet
from convae.train import TrainConfig, TrainResult, fit

# Two epochs of 5 steps: enough for a model that rebuilds the shapes better than chance,
# a fraction of a second on one thread.
TINY_RECIPE = dict(epochs=2, batch_size=16, warmup_steps=2)


def train_tiny(data: DataSet, snapshots: int = 0, **recipe: object) -> TrainResult:
    """fit() with :data:`TINY_RECIPE`, changed by ``recipe`` (e.g. decoder="upsample",
    epochs=1, corruption="mask:4-8")."""
    return fit(TrainConfig(**{**TINY_RECIPE, **recipe}), data, snapshots=snapshots)


def save_trained(path: Path, result: TrainResult, data: DataSet) -> Path:
    """A run as a real checkpoint file at ``path`` (folders made as needed)."""
    return Checkpoint.from_training(result, data.source).save(path)


def save_tiny_models(folder: Path, results: dict[str, TrainResult], data: DataSet) -> Path:
    """Each decoder's run as ``folder/shapes-<decoder>.pt`` (the app lists the folder's
    checkpoints as its shipped models); returns ``folder``."""
    for decoder, result in results.items():
        save_trained(folder / f"shapes-{decoder}.pt", result, data)
    return folder
