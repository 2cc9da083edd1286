"""Shared fixtures: small real image-folder trees and tiny trained models, built per test
session, and the real CIFAR-10 / Fashion-MNIST copies from ../shared/data."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CONVAE_SHARED", ROOT.parent / "shared" / "data"))
CLASSES = ("circle", "square", "stripes")

os.environ.setdefault("CONVAE_OFFLINE", "1")  # tests never try to download
torch.set_num_threads(2)


def _draw(kind: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A small synthetic RGB picture of one of three visibly different kinds."""
    yy, xx = np.mgrid[:size, :size]
    colour = rng.integers(60, 255, 3)
    bg = rng.integers(0, 60, 3)
    img = np.broadcast_to(bg, (size, size, 3)).copy()
    cx, cy, r = rng.integers(10, 22, 2).tolist() + [int(rng.integers(5, 10))]
    if kind == "circle":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    elif kind == "square":
        mask = (abs(xx - cx) < r) & (abs(yy - cy) < r)
    else:
        mask = (xx // int(rng.integers(2, 5))) % 2 == 0
    img[mask] = colour
    return img.astype(np.uint8)


def make_image_tree(root: Path, n_train: int = 16, n_test: int = 6, seed: int = 0) -> Path:
    """PATH/train/<class>/NNNN.png and PATH/test/<class>/NNNN.png with synthetic images."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for cls in CLASSES:
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(_draw(cls, rng)).save(d / f"{i:04d}.png")
    return root


def _idx(data: np.ndarray) -> bytes:
    """The idx format of the (Fashion-)MNIST files: magic (0, 0, 0x08 = uint8, ndim),
    then each dimension as a big-endian int32, then the bytes."""
    head = bytes([0, 0, 8, data.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in data.shape)
    return head + data.astype(np.uint8).tobytes()


def make_fashion_mnist_root(root: Path, n_train: int = 30, n_test: int = 12) -> Path:
    """A data root with ``FashionMNIST/raw/*-ubyte`` in the original idx format, holding
    28x28 grey pictures of the three synthetic kinds (labels 0-2 of Fashion-MNIST's ten),
    so the real ``fashion-mnist`` source (torchvision's reader) runs on a 1-channel set
    without the shared copy."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % len(CLASSES)
        grey = [_draw(CLASSES[k], rng, 28).mean(axis=2) for k in labels]
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(np.stack(grey)))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(labels))
    return root


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    return make_image_tree(tmp_path / "shapes")


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "dataroot"
    root.mkdir()
    monkeypatch.setenv("CONVAE_DATA", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory):
    """The synthetic tree loaded through the real folder source (session-wide)."""
    from convae.data import load_dataset

    base = tmp_path_factory.mktemp("tiny")
    tree = make_image_tree(base / "shapes", n_train=24, n_test=8)
    return load_dataset(f"folder:{tree}", root=base / "root")


@pytest.fixture(scope="session")
def tiny_models(tiny_data):
    """One model per decoder, trained for 2 epochs on the tiny set (real fit())."""
    from convae.train import TrainConfig, fit

    return {
        dec: fit(TrainConfig(decoder=dec, epochs=2, batch_size=16, warmup_steps=2), tiny_data)
        for dec in ("transpose", "upsample")
    }


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the real CIFAR-10 JPEG copy and Fashion-MNIST: ./data when
    `./dev` has unpacked them there, else unpacked from ../shared/data for this run."""
    for root in (Path(os.environ.get("CONVAE_DATA", "")), ROOT / "data"):
        if str(root) and (root / "cifar10-jpeg" / "test").is_dir():
            return root
    tar = SHARED / "cifar10-jpeg.tar.gz"
    if not tar.is_file():
        pytest.skip(f"the shared CIFAR-10 copy is not at {tar}")
    root = tmp_path_factory.mktemp("shared")
    with tarfile.open(tar) as t:
        t.extractall(root / "cifar10-jpeg", filter="data")
    return root


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _shared_root(tmp_path_factory)


@pytest.fixture(scope="session")
def cifar(shared_root: Path):
    from convae.data import load_dataset

    return load_dataset("cifar10", root=shared_root)
