"""Checkpoints: a plain dict written atomically, read with ``weights_only=True`` only.

Layout (FORMAT_VERSION 1)::

    {"format": "convae-checkpoint", "format_version": 1,
     "model_config": AEConfig dict, "train_config": TrainConfig dict or None,
     "state_dict": {...}, "history": [per-epoch dicts], "test_metrics": {...},
     "data_fingerprint": str, "data_source": str, "created": ISO time}

Only tensors, numbers, strings, lists and dicts: ``torch.load(weights_only=True)``
reads it and refuses anything that could run code. A bare ``state_dict`` saved
from the course notebooks loads too; its architecture is inferred from its keys.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import torch

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


def save_checkpoint(
    path: str | os.PathLike,
    model: ConvAutoencoder,
    train_config: dict | None = None,
    history: list[dict] | None = None,
    test_metrics: dict | None = None,
    data_fingerprint: str = "",
    data_source: str = "",
) -> Path:
    """Write a checkpoint atomically: a temp file in the same folder, then os.replace.

    A crash or kill mid-write leaves the previous file at ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = checkpoint_dict(model, train_config, history, test_metrics, data_fingerprint,
                           data_source)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(blob, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def checkpoint_dict(model, train_config=None, history=None, test_metrics=None,
                    data_fingerprint="", data_source="") -> dict:
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "train_config": train_config,
        "state_dict": state,
        "history": list(history or []),
        "test_metrics": dict(test_metrics or {}),
        "data_fingerprint": data_fingerprint,
        "data_source": data_source,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def checkpoint_bytes(model: ConvAutoencoder, **meta) -> bytes:
    """The checkpoint as bytes, for a download button."""
    buf = io.BytesIO()
    torch.save(checkpoint_dict(model, **meta), buf)
    return buf.getvalue()


def load_checkpoint(src: str | os.PathLike | bytes | BinaryIO, name: str | None = None
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
            raise CheckpointError(f"{name}: no such file (or it is a folder). Give the path "
                                  "of a .pt checkpoint file.")
        data: BinaryIO = io.BytesIO(p.read_bytes())
    elif isinstance(src, (bytes, bytearray)):
        data = io.BytesIO(bytes(src))
    else:
        data = io.BytesIO(src.read())
    name = name or "the checkpoint"
    if data.getbuffer().nbytes == 0:
        raise CheckpointError(f"{name} is empty (0 bytes). Choose a checkpoint saved by "
                              "ConvAE Explorer or torch.save(model.state_dict()).")
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
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{name} is not a readable PyTorch file: it is truncated, corrupt or of another "
            f"kind ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}). Re-save or "
            "re-download it."
        ) from None
    return _from_blob(blob, name)


def _from_blob(blob: object, name: str) -> Checkpoint:
    if not isinstance(blob, dict):
        raise CheckpointError(f"{name} holds a {type(blob).__name__}, not a checkpoint "
                              "dict or a state_dict.")
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
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{name} has NaN or infinite weights in {', '.join(bad)}: the "
                              "training run that wrote it diverged. Use another checkpoint.")
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
        model, config,
        train_config=blob.get("train_config"),
        history=list(blob.get("history") or []),
        test_metrics=dict(metrics),
        data_fingerprint=str(blob.get("data_fingerprint", "")),
        data_source=str(blob.get("data_source", "")),
        created=str(blob.get("created", "")),
    )


def is_finite_number(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
