"""The embedded data sample (convae/sample_data/): it loads with no data root, no network and
no ../shared, holds what the README promises, is the shared copy's data bit for bit, trains
a model, and the shipped checkpoints reconstruct it as well as they do the full test split."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from torchvision.datasets import FashionMNIST

from convae import data as data_mod
from convae.checkpoints import load_checkpoint
from convae.data import (
    SAMPLE_SOURCES,
    SOURCES,
    DataNotFoundError,
    available_full_source,
    load_dataset,
)
from convae.models import AEConfig, ConvAutoencoder
from convae.train import TrainConfig, evaluate, fit

from .conftest import ROOT, SHARED

CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
# The full set's class names as torchvision names them, not convae/sample_data/build.py's
# copy: the sample must carry the full set's names, and a slip in the build's list would
# pass a test that read them from there.
FASHION_CLASSES = list(FashionMNIST.classes)
SAMPLE_DIR = ROOT / "convae" / "sample_data"


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict:
    """Both samples, loaded once into a fresh data root (module-wide: decoding costs ~1 s)."""
    root = tmp_path_factory.mktemp("sample-root")
    return {s: load_dataset(s, root=root) for s in SAMPLE_SOURCES}


@pytest.mark.parametrize(
    ("source", "classes", "shape"),
    [
        ("cifar10-sample", CIFAR_CLASSES, (3, 32, 32)),
        ("fashion-mnist-sample", FASHION_CLASSES, (1, 28, 28)),
    ],
)
def test_sample_loads_from_an_empty_data_root(source, classes, shape, data_root):
    assert source in SOURCES  # offered wherever the full sources are
    seen = []
    ds = load_dataset(source, progress=lambda d, t, w: seen.append((d, t)))
    assert ds.source == source and ds.classes == classes and ds.skipped == ()
    assert ds.train.images.shape == (3000, *shape) and ds.test.images.shape == (1000, *shape)
    assert ds.train.images.dtype == torch.uint8 and ds.train.labels.dtype == torch.int64
    assert ds.train.class_counts() == {c: 300 for c in classes}
    assert ds.test.class_counts() == {c: 100 for c in classes}
    assert len(ds.fingerprint) == 16
    # decoded into the same uint8 cache as the full sets; a second load only reads it
    assert [p.name.startswith(source) for p in (data_root / "cache").iterdir()] == [True]
    again = load_dataset(source, progress=lambda *a: seen.append(("again", a)))
    assert not [s for s in seen if s[0] == "again"]
    assert torch.equal(again.test.images, ds.test.images)
    assert again.fingerprint == ds.fingerprint


def test_cifar10_sample_keeps_the_full_sets_interleaved_order(samples):
    # as the folder loader orders the full set: the k-th image of every class, then the next
    labels = samples["cifar10-sample"].train.labels
    assert labels[:20].tolist() == list(range(10)) * 2
    assert labels[-10:].tolist() == list(range(10))


def test_sample_loads_when_the_data_root_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    root = blocker / "data"  # mkdir under a regular file fails, for root users too
    ds = load_dataset("fashion-mnist-sample", root=root)
    assert len(ds.train) == 3000 and not root.exists()


@pytest.mark.slow
def test_sample_needs_nothing_outside_the_package(tmp_path):
    """A copy of convae/ alone, run from elsewhere with an empty data root and no ../shared
    beside it, loads both samples: nothing is read from the repo, ./data or ../shared."""
    pkg = tmp_path / "fresh" / "app"
    shutil.copytree(ROOT / "convae", pkg / "convae", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "empty").mkdir()
    code = (
        "from convae.data import load_dataset\n"
        "for s in ('cifar10-sample', 'fashion-mnist-sample'):\n"
        "    d = load_dataset(s)\n"
        "    print(s, len(d.train), len(d.test), len(d.classes))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(pkg),
        "CONVAE_DATA": str(tmp_path / "empty"),
        "CONVAE_SHARED": str(tmp_path / "no-shared"),
        "CONVAE_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[:2] == [
        "cifar10-sample 3000 1000 10",
        "fashion-mnist-sample 3000 1000 10",
    ]
    assert not (tmp_path / "data").exists()  # nothing written beside the working directory


def test_cifar10_sample_channels_are_in_rgb_order(samples):
    """CIFAR-10's published per-channel means (R, G, B) = (0.4914, 0.4822, 0.4465): blue
    is clearly the darkest, so swapped channels or a grey decode fail here, even with no
    shared copy to compare against (measured on the sample: 0.490, 0.481, 0.445)."""
    x = samples["cifar10-sample"].train.floats()
    mean = x.mean((0, 2, 3))
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.01)
    assert mean[0] - mean[2] > 0.03


def test_fashion_mnist_sample_has_dark_backgrounds(samples):
    """Fashion-MNIST's published mean and std (0.2860, 0.3530): white garments on black,
    so an inverted or mis-scaled decode fails (measured on the sample: 0.286, 0.354)."""
    x = samples["fashion-mnist-sample"].train.floats()
    assert float(x.mean()) == pytest.approx(0.2860, abs=0.01)
    assert float(x.std()) == pytest.approx(0.3530, abs=0.01)


def test_sample_size_within_budget():
    """At most 5 MB in all, counted as the repo's check does: ``du -k`` per file, so a
    1 kB file costs a whole 4 kB block (thousands of small files would blow the budget)."""
    files = [p for p in SAMPLE_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    out = subprocess.run(["du", "-k", *map(str, files)], capture_output=True, text=True, check=True)
    kb = sum(int(line.split()[0]) for line in out.stdout.splitlines())
    assert {p.name for p in files} >= {"cifar10-sample.tar.gz", "fashion-mnist-sample.tar.gz"}
    assert kb <= 5 * 1024, f"the embedded sample takes {kb} kB, over 5 MB"


@pytest.mark.shared_data
def test_cifar10_sample_is_the_shared_copy(samples, cifar, shared_root):
    """The sample's first 300 / 100 images of each class are the full set's, with the same
    labels, order and pixels, and the archive holds the shared copy's JPEG bytes."""
    import tarfile

    sample = samples["cifar10-sample"]
    assert sample.classes == cifar.classes
    for split, n in (("train", 3000), ("test", 1000)):
        mine, full = getattr(sample, split), getattr(cifar, split)
        assert torch.equal(mine.labels, full.labels[:n])
        assert torch.equal(mine.images, full.images[:n])
    with tarfile.open(SAMPLE_DIR / "cifar10-sample.tar.gz") as tar:
        members = [m for m in tar if m.isfile()]
        assert len(members) == 4000
        for m in members:
            assert tar.extractfile(m).read() == (shared_root / "cifar10-jpeg" / m.name).read_bytes()


@pytest.mark.shared_data
def test_fashion_mnist_sample_is_the_original(samples, shared_root):
    if not (shared_root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
        pytest.skip("Fashion-MNIST not unpacked in this data root (./dev test does it)")
    full = load_dataset("fashion-mnist", root=shared_root)
    sample = samples["fashion-mnist-sample"]
    assert sample.classes == full.classes
    for split, n in (("train", 300), ("test", 100)):
        mine, whole = getattr(sample, split), getattr(full, split)
        # the first n images of every class, in the original order
        keep = np.sort(
            np.concatenate([np.flatnonzero(whole.labels.numpy() == c)[:n] for c in range(10)])
        )
        assert torch.equal(mine.labels, whole.labels[keep])
        assert torch.equal(mine.images, whole.images[keep])


@pytest.mark.shared_data
@pytest.mark.slow
def test_build_script_rebuilds_the_same_archives(tmp_path):
    """The committed archives are exactly what build.py makes from ../shared/data."""
    if not (SHARED / "cifar10-jpeg.tar.gz").is_file():
        pytest.skip(f"the shared copies are not at {SHARED}")
    sys.path.insert(0, str(SAMPLE_DIR))
    try:
        import build  # convae/sample_data/build.py, a script rather than a module
    finally:
        sys.path.remove(str(SAMPLE_DIR))
    digests = build.build(SHARED, tmp_path)
    for name in digests:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), name


@pytest.mark.slow
def test_a_model_trains_on_the_sample(samples):
    """One epoch of the real fit() on the 3,000 CIFAR-10 sample images beats both an
    untrained model and predicting the mean training image (measured: 14.0 dB against
    12.0 and 12.2)."""
    ds = samples["cifar10-sample"]
    torch.manual_seed(0)
    untrained = evaluate(ConvAutoencoder(AEConfig(3, 32)), ds.test, with_ssim=False)["psnr"]
    mean_image = ds.train.floats().mean(0, keepdim=True)
    mean_psnr = float(-10 * torch.log10(((ds.test.floats() - mean_image) ** 2).mean()))
    result = fit(TrainConfig(epochs=1, warmup_steps=20), ds)
    assert result.epochs_done == 1 and len(result.history) == 1
    assert result.history[0]["test_psnr"] > untrained + 1.5
    assert result.history[0]["test_psnr"] > mean_psnr + 1.0


@pytest.mark.parametrize(
    ("checkpoint", "source"),
    [
        ("cifar10-transpose.pt", "cifar10-sample"),
        ("cifar10-upsample.pt", "cifar10-sample"),
        ("fashion-mnist-transpose.pt", "fashion-mnist-sample"),
        ("fashion-mnist-upsample.pt", "fashion-mnist-sample"),
    ],
)
def test_shipped_checkpoints_reconstruct_the_sample(checkpoint, source, samples):
    """The shipped models reach on the sample's 1,000 test images what they reach on the
    full 10,000 (their stored test PSNR, which the README lists), within 0.3 dB (measured:
    +0.03, +0.04, -0.09, -0.14 dB). A decode that changes the pictures' statistics (scale,
    range, geometry of Fashion-MNIST: transposed is -0.6 dB) fails; channel order is not
    visible to these models (swapped: -0.06 dB), so the channel-means test guards that."""
    ck = load_checkpoint(ROOT / "checkpoints" / checkpoint)
    res = evaluate(ck.model, samples[source].test, with_ssim=False)
    assert res["n"] == 1000
    assert res["psnr"] == pytest.approx(ck.test_metrics["psnr"], abs=0.3)


def test_available_full_source_looks_only_at_files(tmp_path, image_tree):
    root = tmp_path / "root"
    for s in SAMPLE_SOURCES:
        assert available_full_source(s, root)  # ship with the code
    for s in ("cifar10", "fashion-mnist", "mnist"):
        assert not available_full_source(s, root)
    assert not root.exists()  # asking creates nothing

    shutil.copytree(image_tree, root / "cifar10-jpeg")  # an unpacked JPEG copy
    assert available_full_source("cifar10", root)
    (root / "cifar-10-batches-py").mkdir()  # ... which an incomplete download would shadow
    assert not available_full_source("cifar10", root)
    for f in data_mod.FULL_SOURCE_FILES["cifar10"]:
        (root / f).write_bytes(b"")
    assert available_full_source("cifar10", root)

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"]
    for f in names:
        (raw / f).write_bytes(b"")
    assert not available_full_source("fashion-mnist", root)  # one file short
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"")
    assert available_full_source("fashion-mnist", root)

    (root / "cache").mkdir()
    (root / "cache" / f"mnist-v{data_mod.CACHE_VERSION}.pt").write_bytes(b"")
    assert available_full_source("mnist", root)  # a decoded cache loads without raw files

    assert available_full_source(f"folder:{image_tree}", root)
    assert not available_full_source(f"folder:{tmp_path / 'nowhere'}", root)
    with pytest.raises(ValueError, match="unknown data source 'imagenet'"):
        available_full_source("imagenet", root)


def test_missing_full_set_points_at_the_sample(data_root):
    with pytest.raises(DataNotFoundError, match="embedded sample 'cifar10-sample' works offline"):
        load_dataset("cifar10")


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated"])
def test_damaged_sample_gives_one_clear_error(damage, tmp_path, monkeypatch, data_root):
    fake = tmp_path / "sample_data"
    fake.mkdir()
    original = (SAMPLE_DIR / "fashion-mnist-sample.tar.gz").read_bytes()
    if damage == "garbage":
        (fake / "fashion-mnist-sample.tar.gz").write_bytes(b"not an archive" * 100)
    elif damage == "truncated":
        (fake / "fashion-mnist-sample.tar.gz").write_bytes(original[: len(original) // 2])
    monkeypatch.setattr(data_mod, "SAMPLE_DIR", fake)
    what = "is missing" if damage == "missing" else "is damaged"
    with pytest.raises(DataNotFoundError, match=f"embedded sample .*{what}.*git checkout"):
        load_dataset("fashion-mnist-sample")
