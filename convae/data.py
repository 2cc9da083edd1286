"""Data sources, decoded once into uint8 tensors and cached on disk.

A source is ``cifar10``, ``mnist``, ``fashion-mnist`` (torchvision data sets in the
data root, downloaded when online), ``cifar10-sample`` and ``fashion-mnist-sample`` (a
small real sample shipped in ``convae/sample_data/``, for machines with no data set and no
network) or ``folder:PATH`` (``PATH/train/<class>/*`` and ``PATH/test/<class>/*``, read
with torchvision's ImageFolder). Whatever the source,
the result is an :class:`ImageSet` per split: uint8 images (N, C, H, W), int64
labels, and class names. Training then slices these tensors directly; there is no
per-image PIL work after the first decode.

The data root is ``$CONVAE_DATA``, else ``./data``. Decoded tensors are cached in
``<root>/cache/`` so a second start is a memory map, not 60,000 JPEG decodes.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tarfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import save_or_notice

# The embedded samples (convae/sample_data/, rebuilt by its build.py): the first 300 train
# and 100 test images of every class, with the full sets' classes and order.
SAMPLE_SOURCES = ("cifar10-sample", "fashion-mnist-sample")
SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
# The sample to fall back to when a full set is not on disk.
SAMPLE_FOR = {"cifar10": "cifar10-sample", "fashion-mnist": "fashion-mnist-sample"}
SOURCES = ("cifar10", "mnist", "fashion-mnist", *SAMPLE_SOURCES)
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
        if not classes or set(classes) == set(self.classes):
            return self  # every class: the same pictures in the same order, not a copy
        keep = self.positions(classes)
        return ImageSet(self.images[keep], self.labels[keep], self.classes)

    def positions(self, classes: list[str]) -> torch.Tensor:
        """Where the images of the named classes are, in order (indices into this set):
        a class's i-th picture without copying the class's pictures (a page that shows
        one picture of a class does this on every run).

        Raises:
            ValueError: a name that is not one of this set's classes.
        """
        unknown = [c for c in classes if c not in self.classes]
        if unknown:
            raise ValueError(f"unknown class {unknown}; this data set has {self.classes}")
        wanted = torch.tensor([self.classes.index(c) for c in classes])
        return torch.isin(self.labels, wanted).nonzero().squeeze(1)

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
    # One line for the user when the data loaded but its disk cache could not be written
    # (read-only or full data root): the app still works, the next start decodes again.
    notice: str = ""

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


def _decode_file(path: str | io.BytesIO, channels: int, size: int) -> np.ndarray | None:
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
    sample = ""
    if name in SAMPLE_FOR:
        sample = f" Meanwhile the embedded sample '{SAMPLE_FOR[name]}' works offline."
    return (
        f"Data set '{name}' not found{why}. Looked in: {', '.join(str(p) for p in looked)}. "
        f"The data root is $CONVAE_DATA, now '{root}'. To fix it, either (1) go online once "
        f"so torchvision can download '{name}' into the data root, or (2) point at an image-"
        "folder tree with the source 'folder:PATH' (PATH/train/<class>/*, PATH/test/<class>/*)"
        f", or set CONVAE_DATA to a folder that holds the data.{sample}"
    )


# ------------------------------------------------------------- embedded samples


def sample_archive(name: str) -> Path:
    """The archive that holds an embedded sample source (``convae/sample_data/NAME.tar.gz``)."""
    return SAMPLE_DIR / f"{name}.tar.gz"


def _read_sample_archive(name: str) -> bytes:
    path = sample_archive(name)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataNotFoundError(
            f"the embedded sample '{name}' is missing at {path} ({exc.strerror}); it ships with "
            "the code: restore it with `git checkout -- convae/sample_data`."
        ) from None


def _sample_members(name: str, blob: bytes) -> dict[str, bytes]:
    """The files of a sample archive, name -> bytes (the archives are about 1.5 MB)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataNotFoundError(
            f"the embedded sample {sample_archive(name)} is damaged ({exc}); restore it with "
            "`git checkout -- convae/sample_data`."
        ) from None


def _jpeg_tree_sample(
    name: str, members: dict[str, bytes], progress: ProgressFn | None
) -> tuple[ImageSet, ImageSet, list[str]]:
    """Splits from ``train|test/<class>/NNNN.jpg`` members, in the folder loader's order."""
    splits = []
    for split in ("train", "test"):
        by_class: dict[str, list[str]] = {}
        for path in members:
            parts = path.split("/")
            if len(parts) == 3 and parts[0] == split:
                by_class.setdefault(parts[1], []).append(path)
        classes = sorted(by_class)
        # What ImageFolder + _decode_folder_split give for the unpacked tree: class folders
        # and file names sorted, then the k-th image of every class before any (k+1)-th.
        order = sorted(
            (rank, label, path)
            for label, c in enumerate(classes)
            for rank, path in enumerate(sorted(by_class[c]))
        )
        images = np.empty((len(order), 3, 32, 32), dtype=np.uint8)
        bad: list[str] = []

        def work(start: int, images=images, order=order, bad=bad) -> None:
            for i in range(start, min(start + 500, len(order))):
                arr = _decode_file(io.BytesIO(members[order[i][2]]), 3, 32)
                if arr is None:
                    bad.append(order[i][2])
                else:
                    images[i] = arr

        # PIL releases the GIL while decoding, so threads use every core (as for folders).
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            for done, _ in enumerate(pool.map(work, range(0, len(order), 500)), 1):
                if progress:
                    n = min(done * 500, len(order))
                    progress(n, len(order), f"decoding the {name} {split} images")
        if bad:
            raise DataNotFoundError(
                f"the embedded sample {sample_archive(name)} holds an unreadable image "
                f"{bad[0]}; restore it with `git checkout -- convae/sample_data`."
            )
        labels = torch.tensor([label for _, label, _ in order], dtype=torch.int64)
        splits.append(ImageSet(torch.from_numpy(images), labels, classes))
    if splits[0].classes != splits[1].classes or not len(splits[0]):
        raise DataNotFoundError(f"the embedded sample {sample_archive(name)} is incomplete")
    return splits[0], splits[1], []


def _parse_idx(blob: bytes) -> np.ndarray:
    """An idx file (uint8 data, as MNIST and Fashion-MNIST ship them) as an array."""
    if len(blob) < 4 or blob[:3] != b"\0\0\x08":
        raise ValueError("not a uint8 idx file")
    ndim = blob[3]
    dims = struct.unpack(f">{ndim}I", blob[4 : 4 + 4 * ndim])
    return np.frombuffer(blob, np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def _idx_sample(name: str, members: dict[str, bytes]) -> tuple[ImageSet, ImageSet, list[str]]:
    """Splits from MNIST-style idx members (``train-*``, ``t10k-*``) and ``classes.txt``."""
    try:
        classes = members["classes.txt"].decode().splitlines()
        splits = []
        for prefix in ("train", "t10k"):
            images = _parse_idx(members[f"{prefix}-images-idx3-ubyte"])
            labels = _parse_idx(members[f"{prefix}-labels-idx1-ubyte"])
            splits.append(
                ImageSet(
                    torch.from_numpy(images)[:, None].contiguous(),
                    torch.from_numpy(labels).to(torch.int64),
                    list(classes),
                )
            )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise DataNotFoundError(
            f"the embedded sample {sample_archive(name)} is damaged ({exc}); restore it with "
            "`git checkout -- convae/sample_data`."
        ) from None
    return splits[0], splits[1], []


def _load_sample(
    name: str, blob: bytes, progress: ProgressFn | None
) -> tuple[ImageSet, ImageSet, list[str]]:
    members = _sample_members(name, blob)
    if "classes.txt" in members:
        return _idx_sample(name, members)
    return _jpeg_tree_sample(name, members, progress)


# Files whose presence means a torchvision source loads with no download (what
# torchvision's own check_exists / check_integrity look for, minus the md5s).
FULL_SOURCE_FILES = {
    "cifar10": tuple(
        f"cifar-10-batches-py/{f}"
        for f in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
    ),
    "mnist": tuple(
        f"MNIST/raw/{s}-{k}-ubyte"
        for s in ("train", "t10k")
        for k in ("images-idx3", "labels-idx1")
    ),
    "fashion-mnist": tuple(
        f"FashionMNIST/raw/{s}-{k}-ubyte"
        for s in ("train", "t10k")
        for k in ("images-idx3", "labels-idx1")
    ),
}


def available_full_source(name: str, root: Path | str | None = None) -> bool:
    """Whether ``load_dataset(name, root)`` finds its data on disk, with no download.

    Cheap (a few ``stat`` calls, no decoding, no network), so a page can ask on every
    rerun whether to load the full set or offer a download and fall back to the sample.

    Args:
        name: a source name (see ``SOURCES``) or ``folder:PATH``.
        root: data root (default: :func:`data_root`).

    Returns:
        True for the embedded samples (they ship with the code), for a folder tree with
        train/ and test/, and for a torchvision source whose decoded cache or raw files
        (or, for cifar10, an unpacked JPEG copy) are in the data root.

    Raises:
        ValueError: an unknown source name.
    """
    root = Path(root) if root is not None else data_root()
    if name.startswith("folder:"):
        folder = Path(name[len("folder:") :]).expanduser()
        return (folder / "train").is_dir() and (folder / "test").is_dir()
    if name in SAMPLE_SOURCES:
        return sample_archive(name).is_file()
    if name not in FULL_SOURCE_FILES:
        raise ValueError(
            f"unknown data source {name!r}: use one of {', '.join(SOURCES)} or folder:PATH"
        )
    # The same choice load_dataset makes: a JPEG folder copy counts only while there is no
    # cifar-10-batches-py folder (which would take precedence).
    if (
        name == "cifar10"
        and not (root / "cifar-10-batches-py").is_dir()
        and _find_cifar_folder(root) is not None
    ):
        return True
    if (root / "cache" / f"{name}-v{CACHE_VERSION}.pt").is_file():
        return True
    return all((root / rel).is_file() for rel in FULL_SOURCE_FILES[name])


# ------------------------------------------------------------------- entry point


def load_dataset(
    source: str, root: Path | str | None = None, progress: ProgressFn | None = None
) -> DataSet:
    """Load a source as uint8 tensors, decoding it only the first time.

    Args:
        source: "cifar10", "mnist", "fashion-mnist", an embedded sample
            ("cifar10-sample", "fashion-mnist-sample") or "folder:PATH".
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
    elif source in SAMPLE_SOURCES:
        blob = _read_sample_archive(source)
        # Keyed by the archive's content (2 ms to hash), so an updated sample is decoded
        # again while an unchanged one is a memory map.
        key = f"{source}-{hashlib.sha256(blob).hexdigest()[:16]}"
        loader = lambda: _load_sample(source, blob, progress)  # noqa: E731
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
    notice = _write_cache(cache, train, test, fp, skipped)
    return DataSet(source, train, test, fp, tuple(skipped), notice)


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
) -> str:
    """Write the decoded splits to ``path`` atomically (:func:`convae.atomic.save_or_notice`).

    Returns:
        "" when written, else a one-line notice saying the cache could not be written
        (the caller keeps the data in memory: a cache only saves the next start's decode).
    """
    blob = {"fingerprint": fingerprint, "skipped": list(skipped)}
    for split, s in (("train", train), ("test", test)):
        blob[split] = {"images": s.images, "labels": s.labels, "classes": s.classes}
    return save_or_notice(
        path,
        blob,
        "The data cache",
        "the data set is used from memory and will be decoded again next start.",
    )


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
