"""Checkpoints: a plain dict written atomically, read with ``weights_only=True`` only.

Layout (FORMAT_VERSION 1)::

    {"format": "convae-checkpoint", "format_version": 1,
     "model_config": AEConfig dict, "train_config": TrainConfig dict or None,
     "state_dict": {...}, "history": [per-epoch dicts], "test_metrics": {...},
     "data_fingerprint": str, "data_source": str, "created": ISO time,
     "snapshots": [{"step", "epoch", "state_dict"}]  (optional, train --snapshots K)}

Only tensors, numbers, strings, lists and dicts: ``torch.load(weights_only=True)``
reads it and refuses anything that could run code. A bare ``state_dict`` saved
from the course notebooks loads too; its architecture is inferred from its keys.
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypedDict, Unpack

import torch

from .atomic import write_atomic
from .models import AEConfig, ConvAutoencoder, infer_config

FORMAT = "convae-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that cannot be used as a checkpoint; the message says why and what to do."""


@dataclass
class Checkpoint:
    model: ConvAutoencoder
    config: AEConfig
    train_config: dict | None = None
    history: list[dict] = field(default_factory=list)
    test_metrics: dict = field(default_factory=dict)
    data_fingerprint: str = ""
    data_source: str = ""
    created: str = ""
    bare: bool = False  # loaded from a bare course-notebook state_dict
    snapshots: list[dict] = field(default_factory=list)  # raw; see snapshot_models()

    @classmethod
    def from_training(cls, result, data_source: str) -> Checkpoint:
        """The in-memory checkpoint of a finished ``convae.train.fit`` run (its model,
        settings, history, scores and snapshots), stamped with the time now.

        Args:
            result: a ``convae.train.TrainResult``.
            data_source: the data set's source name, e.g. "cifar10".
        """
        return cls(
            result.model,
            result.model.config,
            result.train_config.to_dict(),
            result.history,
            result.test_metrics,
            result.data_fingerprint,
            data_source,
            datetime.now(UTC).isoformat(timespec="seconds"),
            snapshots=result.snapshots,
        )

    def _meta(self) -> CheckpointMeta:
        """The rest of this checkpoint, for :func:`save_checkpoint` / :func:`checkpoint_bytes`."""
        return {k: getattr(self, k) for k in CheckpointMeta.__annotations__}  # type: ignore[return-value]

    def save(self, path: str | os.PathLike) -> Path:
        """Write this checkpoint to ``path`` atomically (see :func:`save_checkpoint`).

        Returns:
            ``path`` as a Path.
        """
        return save_checkpoint(path, self.model, **self._meta())

    def to_bytes(self) -> bytes:
        """This checkpoint as the bytes of a ``.pt`` file, e.g. for a download button."""
        return checkpoint_bytes(self.model, **self._meta())


class CheckpointMeta(TypedDict, total=False):
    """What a checkpoint holds besides the weights (each optional)."""

    train_config: dict | None  # TrainConfig.to_dict() of the run
    history: list[dict] | None  # fit()'s per-epoch dicts
    test_metrics: dict | None  # the final test scores
    data_fingerprint: str  # DataSet.fingerprint of the training data
    data_source: str  # e.g. "cifar10"
    snapshots: list[dict] | None  # TrainResult.snapshots, stored under "snapshots"


def save_checkpoint(
    path: str | os.PathLike, model: ConvAutoencoder, **meta: Unpack[CheckpointMeta]
) -> Path:
    """Write a checkpoint atomically (:func:`convae.atomic.write_atomic`).

    A crash or kill mid-write leaves the previous file at ``path`` untouched; the temp
    file it orphans is removed by the next save into the same folder (never one that a
    live writer, in any process, is still writing). The folder is fsynced after the
    rename.

    Args:
        path: the .pt file to write.
        model: the autoencoder whose weights are saved.
        meta: the rest of the checkpoint (:class:`CheckpointMeta`).

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    blob = checkpoint_dict(model, **meta)
    write_atomic(path, lambda f: torch.save(blob, f))
    return path


def checkpoint_dict(model: ConvAutoencoder, **meta: Unpack[CheckpointMeta]) -> dict:
    """The plain dict a checkpoint file holds (the layout in this module's docstring):
    CPU tensors in the default layout and plain values only, for weights-only loading."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    extra = {}
    snapshots = meta.get("snapshots")
    if snapshots:  # an optional key: format version 1 readers simply ignore it
        extra["snapshots"] = [
            {
                "step": int(s["step"]),
                "epoch": int(s.get("epoch", 0)),
                "state_dict": {
                    k: v.detach().cpu().contiguous().clone() for k, v in s["state_dict"].items()
                },
            }
            for s in snapshots
        ]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "train_config": meta.get("train_config"),
        "state_dict": state,
        "history": list(meta.get("history") or []),
        "test_metrics": dict(meta.get("test_metrics") or {}),
        "data_fingerprint": meta.get("data_fingerprint", ""),
        "data_source": meta.get("data_source", ""),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def checkpoint_bytes(model: ConvAutoencoder, **meta: Unpack[CheckpointMeta]) -> bytes:
    """The checkpoint as the bytes of a .pt file, for a download button."""
    buf = io.BytesIO()
    torch.save(checkpoint_dict(model, **meta), buf)
    return buf.getvalue()


def load_checkpoint(
    src: str | os.PathLike | bytes | BinaryIO, name: str | None = None
) -> Checkpoint:
    """Read a checkpoint (or a bare course state_dict) and rebuild its model.

    Args:
        src: a path, the file's bytes, or an open binary file (e.g. an upload).
        name: how to call the file in error messages.

    Raises:
        CheckpointError: not a file, not a checkpoint, truncated or corrupt, refused
            (contains code), wrong format version, NaN/inf weights, or weights that do
            not fit the architecture. The message says which and what to do.
    """
    if isinstance(src, (str, os.PathLike)):
        p = Path(src)
        name = name or str(p)
        if not p.is_file():
            raise CheckpointError(
                f"{name}: no such file (or it is a folder). Give the path of a .pt checkpoint file."
            )
        data: BinaryIO = io.BytesIO(p.read_bytes())
    elif isinstance(src, (bytes, bytearray)):
        data = io.BytesIO(bytes(src))
    else:
        data = io.BytesIO(src.read())
    name = name or "the checkpoint"
    if data.getbuffer().nbytes == 0:
        raise CheckpointError(
            f"{name} is empty (0 bytes). Choose a checkpoint saved by "
            "ConvAE Explorer or torch.save(model.state_dict())."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol chatter on foreign files
            blob = torch.load(data, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        globals_ = [ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln]
        if globals_:
            raise CheckpointError(
                f"{name} was refused: it asks to import Python code when loaded "
                f"({globals_[0][:160]}), which could run anything, so it was not loaded. "
                "Only tensors and plain values are accepted: save with "
                "torch.save(model.state_dict(), path)."
            ) from None
        raise CheckpointError(
            f"{name} is not a readable PyTorch file: not a torch.save file, or corrupt "
            "(the safe weights-only reader rejected it). Re-save or re-download it."
        ) from None
    except Exception as exc:  # noqa: BLE001
        # Any other failure of the reader on foreign bytes: besides RuntimeError, EOFError,
        # BadZipFile, OSError and ValueError, random bytes make the weights-only unpickler
        # raise IndexError or KeyError (about 7% of 3,000 random 3 kB files).
        n = data.getbuffer().nbytes
        if data.getbuffer()[:4].tobytes() == b"PK\x03\x04":  # torch.save's zip archive
            raise CheckpointError(
                f"{name} is not a readable PyTorch file: it starts as a torch.save archive "
                f"but is truncated or damaged ({n:,} bytes; an interrupted download or "
                "copy?). Re-save or re-download it."
            ) from None
        raise CheckpointError(
            f"{name} is not a readable PyTorch file: it is corrupt or of another kind "
            f"({n:,} bytes; the reader stopped with {type(exc).__name__}). Choose a .pt "
            "file written by ConvAE Explorer or torch.save."
        ) from None
    return _from_blob(blob, name)


def _non_finite(state: dict) -> list[str]:
    """Names of the floating-point tensors in ``state`` holding NaN or inf."""
    return [
        k
        for k, v in state.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()
    ]


def _from_blob(blob: object, name: str) -> Checkpoint:
    if not isinstance(blob, dict):
        raise CheckpointError(
            f"{name} holds a {type(blob).__name__}, not a checkpoint dict or a state_dict."
        )
    if blob.get("format") == FORMAT:
        version = blob.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"{name} has checkpoint format version {version}; this version of ConvAE "
                f"Explorer reads version {FORMAT_VERSION}. Update the app or re-save it."
            )
        try:
            config = AEConfig(**blob["model_config"])
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{name} has an invalid model config: {exc}") from None
        state, bare = blob.get("state_dict"), False
    elif blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
        state, bare = blob, True
        try:
            config = infer_config(state)
        except ValueError as exc:
            raise CheckpointError(f"{name} is a state_dict of another model: {exc}") from None
    else:
        raise CheckpointError(
            f"{name} is a dict but not a ConvAE checkpoint or a state_dict (keys: "
            f"{sorted(map(str, blob))[:6]})."
        )
    if not isinstance(state, dict):
        raise CheckpointError(f"{name} has no state_dict.")
    bad = _non_finite(state)
    if bad:
        raise CheckpointError(
            f"{name} has NaN or infinite weights in {', '.join(bad)}: the "
            "training run that wrote it diverged. Use another checkpoint."
        )
    model = ConvAutoencoder(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(
            f"{name}: the weights do not fit a {config.decoder} autoencoder for "
            f"{config.in_channels}-channel images ({detail})."
        ) from None
    model.eval()
    if bare:
        return Checkpoint(model, config, bare=True)
    metrics = blob.get("test_metrics") or {}
    return Checkpoint(
        model,
        config,
        train_config=blob.get("train_config"),
        history=list(blob.get("history") or []),
        test_metrics=dict(metrics),
        data_fingerprint=str(blob.get("data_fingerprint", "")),
        data_source=str(blob.get("data_source", "")),
        created=str(blob.get("created", "")),
        snapshots=list(blob.get("snapshots") or []),
    )


@dataclass
class Snapshot:
    """The model as it was after ``step`` optimizer steps (step 0: random init)."""

    step: int
    epoch: int  # 1-based epoch the step belongs to; 0 for the initial weights
    model: ConvAutoencoder


def snapshot_models(
    snapshots: list[dict], config: AEConfig, name: str = "the checkpoint"
) -> list[Snapshot]:
    """Rebuild the models of training snapshots, in step order.

    Args:
        snapshots: ``Checkpoint.snapshots`` (from a file) or ``TrainResult.snapshots``
            (from a run in this process): dicts with "step", "epoch", "state_dict".
        config: their architecture (``Checkpoint.config`` or ``result.model.config``).
        name: how to call the source in error messages.

    Returns:
        One :class:`Snapshot` per entry, each an eval-mode model on the CPU.

    Raises:
        CheckpointError: a snapshot that is malformed, non-finite or does not fit.
    """
    out = []
    order = sorted(snapshots, key=lambda s: s.get("step", 0) if isinstance(s, dict) else 0)
    for i, snap in enumerate(order):
        state = snap.get("state_dict") if isinstance(snap, dict) else None
        if not isinstance(state, dict) or "step" not in snap:
            raise CheckpointError(f"{name}: snapshot {i} has no step or state_dict.")
        if _non_finite(state):
            raise CheckpointError(
                f"{name}: snapshot at step {snap['step']} has NaN or infinite weights."
            )
        model = ConvAutoencoder(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{name}: snapshot at step {snap['step']} does not fit a "
                f"{config.decoder} autoencoder ({str(exc)[:200]})."
            ) from None
        out.append(Snapshot(int(snap["step"]), int(snap.get("epoch", 0)), model.eval()))
    return out
