"""Data sources, decoded once into uint8 tensors and cached on disk.

A source is ``cifar10``, ``mnist``, ``fashion-mnist`` (torchvision data sets in the
data root, downloaded when online) or ``folder:PATH`` (``PATH/train/<class>/*`` and
``PATH/test/<class>/*``, read with torchvision's ImageFolder). Whatever the source,
the result is an :class:`ImageSet` per split: uint8 images (N, C, H, W), int64
labels, and class names. Training then slices these tensors directly; there is no
per-image PIL work after the first decode.

The data root is ``$CONVAE_DATA``, else ``./data``. Decoded tensors are cached in
``<root>/cache/`` so a second start is a memory map, not 60,000 JPEG decodes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SOURCES = ("cifar10", "mnist", "fashion-mnist")
CACHE_VERSION = 2
# Folder copies of CIFAR-10 we look for inside the data root before trying to download
# (the shared JPEG copy unpacked as <root>/cifar10-jpeg/{train,test}/<class>/).
CIFAR10_FOLDER_NAMES = ("cifar10-jpeg", "cifar10")

ProgressFn = Callable[[int, int, str], None]  # (done, total, what)


class DataNotFoundError(FileNotFoundError):
    """A data source is not on disk and could not be downloaded."""


@dataclass
class ImageSet:
    """One split of a data set, held as uint8 tensors.

    Attributes:
        images: (N, C, H, W) uint8.
        labels: (N,) int64 class indices into ``classes``.
        classes: class names, index = label.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def filter(self, classes: list[str] | None) -> ImageSet:
        """Keep only images of the named classes (None or empty list keeps all).

        Raises:
            ValueError: a name that is not one of this set's classes.
        """
        if not classes:
            return self
        unknown = [c for c in classes if c not in self.classes]
        if unknown:
            raise ValueError(f"unknown class {unknown}; this data set has {self.classes}")
        wanted = torch.tensor([self.classes.index(c) for c in classes])
        keep = torch.isin(self.labels, wanted)
        return ImageSet(self.images[keep], self.labels[keep], self.classes)

    def head(self, n: int | None) -> ImageSet:
        """The first ``n`` images (all when n is None)."""
        if n is None:
            return self
        return ImageSet(self.images[:n], self.labels[:n], self.classes)

    def floats(self, index: slice | torch.Tensor | None = None) -> torch.Tensor:
        """Images (or a subset) as float32 in [0, 1]."""
        x = self.images if index is None else self.images[index]
        return x.float().div_(255)

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))


@dataclass
class DataSet:
    """Both splits of a source, plus a fingerprint that checkpoints record."""

    source: str
    train: ImageSet
    test: ImageSet
    fingerprint: str
    # Files of an image-folder source that could not be read as pictures and were left
    # out (paths relative to the folder), so the app can say so instead of hiding it.
    skipped: tuple[str, ...] = ()

    @property
    def classes(self) -> list[str]:
        return self.train.classes


def data_root() -> Path:
    """``$CONVAE_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("CONVAE_DATA") or "data")


def _fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    # Hashing every byte of 180 MB costs ~0.3 s; a strided sample plus shapes and a
    # label hash identifies the data set just as well for our purpose.
    h = hashlib.sha256()
    h.update(str(tuple(images.shape)).encode())
    flat = images.reshape(-1)
    step = max(1, flat.numel() // 1_000_000)
    h.update(flat[::step].contiguous().numpy().tobytes())
    h.update(labels.numpy().tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- folder source


def _folder_signature(path: Path) -> str:
    """Cheap identity of an image-folder tree: its path and the mtimes and sizes of its
    class directories (adding or removing a file changes its directory's mtime)."""
    h = hashlib.sha256(str(path.resolve()).encode())
    for split in ("train", "test"):
        split_dir = path / split
        for d in sorted(split_dir.iterdir()) if split_dir.is_dir() else []:
            st = d.stat()
            h.update(f"{split}/{d.name}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _decode_file(path: str, channels: int, size: int) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if channels == 3 else "L")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _decode_folder_split(
    split_dir: Path, progress: ProgressFn | None, channels: int = 3, size: int = 32
) -> tuple[ImageSet, list[str]]:
    from torchvision.datasets import ImageFolder

    # allow_empty: a class folder with no images is kept (with zero images) instead of
    # failing the whole data set.
    folder = ImageFolder(str(split_dir), allow_empty=True)
    paths = [p for p, _ in folder.samples]
    labels = [t for _, t in folder.samples]
    total = len(paths)
    out = np.empty((total, channels, size, size), dtype=np.uint8)
    ok = np.zeros(total, dtype=bool)
    chunk = 2000

    def work(i: int) -> None:
        for j in range(i, min(i + chunk, total)):
            arr = _decode_file(paths[j], channels, size)
            if arr is not None:
                out[j] = arr
                ok[j] = True

    # PIL releases the GIL while decoding, so two threads use both cores.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        done = 0
        for _ in pool.map(work, range(0, total, chunk)):
            done = min(done + chunk, total)
            if progress:
                progress(done, total, f"decoding {split_dir.name} images")
    bad = [str(Path(paths[j]).relative_to(split_dir.parent)) for j in np.flatnonzero(~ok)]
    keep = torch.from_numpy(ok)
    images = torch.from_numpy(out)[keep]
    label_t = torch.tensor(labels, dtype=torch.int64)[keep]
    # ImageFolder lists class by class; interleave the classes (k-th image of every class,
    # then the (k+1)-th, ...) so "the first N images" is a balanced sample, as in the
    # original CIFAR-10 order. Order within a class is kept.
    rank = torch.zeros_like(label_t)
    for c in range(len(folder.classes)):
        idx = (label_t == c).nonzero().squeeze(1)
        rank[idx] = torch.arange(len(idx))
    order = torch.argsort(rank * len(folder.classes) + label_t, stable=True)
    return ImageSet(images[order].contiguous(), label_t[order], list(folder.classes)), bad


def _load_folder(path: Path, progress: ProgressFn | None) -> tuple[ImageSet, ImageSet, list[str]]:
    missing = [str(path / s) for s in ("train", "test") if not (path / s).is_dir()]
    if missing:
        raise DataNotFoundError(
            f"folder source {path} is not an image-folder tree: missing {', '.join(missing)}. "
            "Expected PATH/train/<class>/*.jpg|png and PATH/test/<class>/*.jpg|png."
        )
    train, bad_train = _decode_folder_split(path / "train", progress)
    test, bad_test = _decode_folder_split(path / "test", progress)
    if train.classes != test.classes:
        raise ValueError(
            f"{path}: train and test have different class folders "
            f"({train.classes} vs {test.classes}); they must match."
        )
    if len(train) == 0:
        raise ValueError(f"{path}/train holds no readable images (.jpg, .png, ...).")
    return train, test, bad_train + bad_test


# ------------------------------------------------------------ torchvision sources


def _find_cifar_folder(root: Path) -> Path | None:
    for name in CIFAR10_FOLDER_NAMES:
        p = root / name
        if (p / "train").is_dir() and (p / "test").is_dir():
            return p
    return None


def _load_torchvision(name: str, root: Path) -> tuple[ImageSet, ImageSet]:
    from torchvision import datasets

    cls = {
        "cifar10": datasets.CIFAR10,
        "mnist": datasets.MNIST,
        "fashion-mnist": datasets.FashionMNIST,
    }[name]
    splits = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=False)
        except RuntimeError:  # not on disk
            if os.environ.get("CONVAE_OFFLINE"):  # set by tests and offline set-ups
                raise DataNotFoundError(_missing_message(name, root, offline=True)) from None
            try:
                ds = cls(str(root), train=train, download=True)
            except Exception as exc:  # no network, disk full, ...: one clear message
                raise DataNotFoundError(_missing_message(name, root, exc)) from None
        data = torch.as_tensor(np.asarray(ds.data))
        images = data.permute(0, 3, 1, 2) if data.ndim == 4 else data[:, None]
        labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        splits.append(ImageSet(images.contiguous(), labels, list(ds.classes)))
    return splits[0], splits[1]


def _missing_message(
    name: str, root: Path, exc: Exception | None = None, offline: bool = False
) -> str:
    looked = {
        "cifar10": [root / "cifar-10-batches-py"] + [root / n for n in CIFAR10_FOLDER_NAMES],
        "mnist": [root / "MNIST" / "raw"],
        "fashion-mnist": [root / "FashionMNIST" / "raw"],
    }[name]
    why = f" (download failed: {type(exc).__name__}: {str(exc)[:120]})" if exc else ""
    if offline:
        why = " (CONVAE_OFFLINE is set, so no download was tried)"
    return (
        f"Data set '{name}' not found{why}. Looked in: {', '.join(str(p) for p in looked)}. "
        f"The data root is $CONVAE_DATA, now '{root}'. To fix it, either (1) go online once "
        f"so torchvision can download '{name}' into the data root, or (2) point at an image-"
        "folder tree with the source 'folder:PATH' (PATH/train/<class>/*, PATH/test/<class>/*)"
        ", or set CONVAE_DATA to a folder that holds the data."
    )


# ------------------------------------------------------------------- entry point


def load_dataset(
    source: str, root: Path | str | None = None, progress: ProgressFn | None = None
) -> DataSet:
    """Load a source as uint8 tensors, decoding it only the first time.

    Args:
        source: "cifar10", "mnist", "fashion-mnist" or "folder:PATH".
        root: data root (default: :func:`data_root`).
        progress: called as progress(done, total, what) during a first decode.

    Raises:
        DataNotFoundError: the source is not on disk and cannot be downloaded.
        ValueError: an unknown source name or an unusable folder.
    """
    root = Path(root) if root is not None else data_root()
    if source.startswith("folder:"):
        folder = Path(source[len("folder:") :]).expanduser()
        if not folder.is_dir():
            raise DataNotFoundError(
                f"folder source '{folder}' does not exist. Give 'folder:PATH' with "
                "PATH/train/<class>/* and PATH/test/<class>/*, or use cifar10 / mnist / "
                "fashion-mnist."
            )
        key = f"folder-{_folder_signature(folder)}"
        loader = lambda: _load_folder(folder, progress)  # noqa: E731
    elif source in SOURCES:
        cifar_folder = _find_cifar_folder(root) if source == "cifar10" else None
        if cifar_folder is not None and not (root / "cifar-10-batches-py").is_dir():
            key = f"cifar10-folder-{_folder_signature(cifar_folder)}"
            loader = lambda: _load_folder(cifar_folder, progress)  # noqa: E731
        else:
            key = source
            loader = lambda: (*_load_torchvision(source, root), [])  # noqa: E731
    else:
        raise ValueError(
            f"unknown data source {source!r}: use one of {', '.join(SOURCES)} or folder:PATH"
        )
    cache = root / "cache" / f"{key}-v{CACHE_VERSION}.pt"
    cached = _read_cache(cache)
    if cached is not None:
        return DataSet(
            source, cached["train"], cached["test"], cached["fingerprint"], cached["skipped"]
        )
    train, test, skipped = loader()
    fp = _fingerprint(train.images, train.labels)
    _write_cache(cache, train, test, fp, skipped)
    return DataSet(source, train, test, fp, tuple(skipped))


def _read_cache(path: Path) -> dict | None:
    """The cached splits, or None when the cache is missing or unreadable (then rebuilt)."""
    if not path.is_file():
        return None
    try:
        # mmap: the 180 MB of CIFAR-10 are mapped, not read, so a warm load is ~10 ms.
        blob = torch.load(path, weights_only=True, mmap=True)
        out = {
            "fingerprint": str(blob["fingerprint"]),
            "skipped": tuple(str(p) for p in blob.get("skipped", ())),
        }
        for split in ("train", "test"):
            s = blob[split]
            out[split] = ImageSet(s["images"], s["labels"], list(s["classes"]))
            if s["images"].dtype != torch.uint8 or s["images"].ndim != 4:
                return None
        return out
    except Exception:
        return None


def _write_cache(
    path: Path, train: ImageSet, test: ImageSet, fingerprint: str, skipped: list[str]
) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        blob = {"fingerprint": fingerprint, "skipped": list(skipped)}
        for split, s in (("train", train), ("test", test)):
            blob[split] = {"images": s.images, "labels": s.labels, "classes": s.classes}
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only data root only costs speed: the next start decodes again


# ------------------------------------------------------------ input corruptions


def add_gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None):
    """x + N(0, std^2), clipped to [0, 1] (the denoising set-up of the course notes).

    The noise is drawn on the CPU (``generator`` is a CPU generator) and then moved to
    ``x``'s device: a CPU generator cannot fill a CUDA tensor, and this way a seed gives
    the same noise on any device.
    """
    if std <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return (x + std * noise).clamp_(0, 1)
