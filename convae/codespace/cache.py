"""The code space's disk cache: one file per result, keyed by content, written atomically.

Files live in ``<data root>/cache/codespace/``, beside the decoded data sets and the PCA
baseline, and are named by what they depend on::

    <kind>-<weights digest>-<split fingerprint>-<split>-<parameters digest>-v<N>.pt

* the weights digest (:func:`convae.catalog.weights_digest`; ``pixels`` for results that
  depend on the data only), so two students' models never share a file and equal weights
  always do;
* the split's own fingerprint (:func:`split_fingerprint`): ``DataSet.fingerprint`` hashes
  the training split only, and a folder source's test pictures can change without it;
* the parameters that change the result (method, seed, k, ...), hashed.

Files are plain ``torch.save`` dicts of tensors and numbers, read back with
``weights_only=True``. A missing, unreadable or foreign file is recomputed; a read-only or
full data root only costs the recomputation (the result is still returned).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..atomic import write_atomic
from ..data import ImageSet, data_root

CACHE_VERSION = 1
FOLDER = "codespace"


def split_fingerprint(images: ImageSet) -> str:
    """A short digest of one split: its shape, a strided sample of its bytes, its labels
    and class names (about a millisecond for CIFAR-10's test split)."""
    h = hashlib.sha256(str(tuple(images.images.shape)).encode())
    flat = images.images.reshape(-1)
    step = max(1, flat.numel() // 1_000_000)
    h.update(flat[::step].contiguous().numpy().tobytes())
    h.update(images.labels.contiguous().numpy().tobytes())
    h.update("\n".join(images.classes).encode())
    return h.hexdigest()[:16]


def cache_path(
    root: Path | str | None, kind: str, digest: str, fingerprint: str, split: str, params: dict
) -> Path:
    """Where one result lives.

    Args:
        root: data root (default ``$CONVAE_DATA`` or ./data).
        kind: what the result is ("codes", "map", "neighbours", "probe", ...).
        digest: the model's weights digest, or "pixels" for a data-only result.
        fingerprint: :func:`split_fingerprint` of the split.
        split: "train" or "test".
        params: everything else the result depends on (JSON-serialisable).
    """
    root = Path(root) if root is not None else data_root()
    p = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{kind}-{digest}-{fingerprint}-{split}-{p}-v{CACHE_VERSION}.pt"
    return root / "cache" / FOLDER / name


def read(path: Path) -> dict | None:
    """The cached blob, or None when missing or unreadable (then recomputed)."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True, map_location="cpu")
    except Exception:  # a truncated or foreign file: recompute rather than fail
        return None
    return blob if isinstance(blob, dict) else None


def write(path: Path, blob: dict) -> str:
    """Store a blob atomically.

    Returns:
        "" when written, else one line saying it could not be (the caller still has the
        result; only the next computation is not saved).
    """
    try:
        write_atomic(path, lambda f: torch.save(blob, f))
        return ""
    except (OSError, RuntimeError) as exc:
        why = " ".join(str(exc).split())[:160]
        return (
            f"The code-space cache could not be written to {path.parent} "
            f"({type(exc).__name__}: {why}); the result is used from memory."
        )
