"""Rebuild the embedded data sample in this folder from the shared offline copies.

The app ships a small real sample so that a machine with no data set and no network still
shows real pictures and can train a demo model. This script cuts it, deterministically,
from the development copies in ``../shared/data``:

- ``cifar10-sample.tar.gz``: the first 300 train and 100 test images of every CIFAR-10
  class (files ``0000.jpg`` ... in each class folder; the shared copy numbers them in the
  data set's own order), as the original JPEG bytes of the shared copy, bit for bit.
- ``fashion-mnist-sample.tar.gz``: the first 300 train and 100 test images of every
  Fashion-MNIST class in the idx files' order (kept in that order, so classes stay
  interleaved as in the original), written as idx files plus ``classes.txt``.

Both archives are gzip (not xz: zlib is in every Python build, lzma is not always) with
fixed member metadata and a zero gzip timestamp, so the same inputs give the same bytes.

Run: ``.venv/bin/python convae/sample_data/build.py [--shared DIR] [--out DIR] [--check]``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import struct
import sys
import tarfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parents[2] / "shared" / "data"
# Images per class and split: 300 train images a class are enough to train a demo model
# that reaches about 20 dB in a few epochs; 100 test images a class fill every page's grid.
# Both data sets together stay near 3 MB, under the 5 MB the design allows.
PER_CLASS = {"train": 300, "test": 100}
# The Fashion-MNIST class names, in label order, as torchvision's FashionMNIST.classes
# has them (so the sample's classes equal the full set's).
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_CIFAR_NAME = re.compile(r"^(train|test)/([a-z]+)/(\d{4})\.jpg$")


def _write_tar_gz(path: Path, files: dict[str, bytes]) -> None:
    """A gzip'd tar of ``files`` (name -> bytes) in name order, with no timestamps or owners,
    so that rebuilding from the same inputs gives the same bytes."""
    buf = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode, info.mtime = 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    path.write_bytes(buf.getvalue())


def cifar10_files(shared: Path) -> dict[str, bytes]:
    """The sample's CIFAR-10 members (``train|test/<class>/NNNN.jpg`` -> JPEG bytes) read
    from ``shared/cifar10-jpeg.tar.gz``.

    Raises:
        FileNotFoundError: the shared archive is missing.
        ValueError: a class has fewer images than the sample takes.
    """
    src = shared / "cifar10-jpeg.tar.gz"
    if not src.is_file():
        raise FileNotFoundError(f"the shared CIFAR-10 copy is not at {src}; pass --shared DIR")
    files: dict[str, bytes] = {}
    with tarfile.open(src, "r:gz") as tar:
        for m in tar:
            match = _CIFAR_NAME.match(m.name)
            if m.isfile() and match and int(match[3]) < PER_CLASS[match[1]]:
                files[m.name] = tar.extractfile(m).read()
    for split, n in PER_CLASS.items():
        counts: dict[str, int] = {}
        for name in files:
            if name.startswith(split + "/"):
                counts[name.split("/")[1]] = counts.get(name.split("/")[1], 0) + 1
        short = {c: k for c, k in counts.items() if k != n}
        if len(counts) != 10 or short:
            raise ValueError(
                f"{src}: expected {n} {split} images in each of 10 classes, got {counts}"
            )
    return files


def _read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) as an idx file: magic 0x0000 08 NDIM, big-endian dims, data."""
    head = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def fashion_mnist_files(shared: Path) -> dict[str, bytes]:
    """The sample's Fashion-MNIST members: four idx files (the original names, without .gz)
    holding the first images of every class in the original order, and ``classes.txt``.

    Raises:
        FileNotFoundError: a shared idx file is missing.
    """
    files: dict[str, bytes] = {"classes.txt": "\n".join(FASHION_CLASSES).encode() + b"\n"}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        paths = [
            shared / "fashion-mnist" / f"{prefix}-{k}-idx{d}-ubyte.gz"
            for k, d in (("images", 3), ("labels", 1))
        ]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"the shared Fashion-MNIST file {missing[0]} is missing")
        images, labels = _read_idx(paths[0]), _read_idx(paths[1])
        n = PER_CLASS[split]
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in range(10)]))
        files[f"{prefix}-images-idx3-ubyte"] = _idx_bytes(images[keep])
        files[f"{prefix}-labels-idx1-ubyte"] = _idx_bytes(labels[keep])
    return files


def build(shared: Path, out: Path) -> dict[str, str]:
    """Write both sample archives into ``out``.

    Returns:
        archive file name -> its sha256.
    """
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, files in (
        ("cifar10-sample.tar.gz", cifar10_files(shared)),
        ("fashion-mnist-sample.tar.gz", fashion_mnist_files(shared)),
    ):
        _write_tar_gz(out / name, files)
        digests[name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    return digests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--shared",
        type=Path,
        default=DEFAULT_SHARED,
        help=f"folder with the shared copies (default: {DEFAULT_SHARED})",
    )
    p.add_argument("--out", type=Path, default=HERE, help=f"output folder (default: {HERE})")
    p.add_argument(
        "--check",
        action="store_true",
        help="rebuild into a temporary folder and compare with the archives in --out",
    )
    args = p.parse_args(argv)
    if not args.check:
        for name, digest in build(args.shared, args.out).items():
            print(f"{digest}  {name}  ({(args.out / name).stat().st_size:,} bytes)")
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fresh = build(args.shared, Path(tmp))
        ok = True
        for name, digest in fresh.items():
            have = args.out / name
            same = have.is_file() and hashlib.sha256(have.read_bytes()).hexdigest() == digest
            print(f"{'same' if same else 'DIFFERENT'}  {name}")
            ok &= same
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
