"""Data sources: the real folder loader on a tree made here, the cache, filters, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from convae.data import DataNotFoundError, load_dataset

from .conftest import CLASSES, make_image_tree


def test_folder_source_decodes_tree(image_tree, data_root):
    seen = []
    ds = load_dataset(f"folder:{image_tree}", progress=lambda d, t, w: seen.append((d, t)))
    assert ds.classes == list(CLASSES)
    assert ds.train.images.shape == (48, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert ds.test.images.shape == (18, 3, 32, 32)
    assert ds.train.class_counts() == {c: 16 for c in CLASSES}
    # classes interleaved, so the first N images are a balanced sample
    assert ds.train.labels[:6].tolist() == [0, 1, 2, 0, 1, 2]
    assert seen and seen[-1][0] == seen[-1][1]  # progress reported up to the total


def test_second_load_comes_from_cache(image_tree, data_root):
    first = load_dataset(f"folder:{image_tree}")
    assert list((data_root / "cache").glob("folder-*.pt"))
    calls = []
    second = load_dataset(f"folder:{image_tree}", progress=lambda *a: calls.append(a))
    assert not calls  # nothing decoded again
    assert torch.equal(first.train.images, second.train.images)
    assert first.fingerprint == second.fingerprint


# Loads a folder source in a process whose files may not grow past a few kB (RLIMIT_FSIZE,
# with SIGXFSZ ignored so a write fails with EFBIG instead of killing the process): the
# kernel's own "disk full" for this process. torch.save then fails part-way through its
# zip writer with a RuntimeError, not an OSError, after the temp file has been created.
SMALL_DISK = """
import json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
from convae.data import load_dataset
ds = load_dataset("folder:" + sys.argv[1], root=sys.argv[2])
print(json.dumps({"train": len(ds.train), "test": len(ds.test), "notice": ds.notice}))
"""


def test_cache_that_cannot_be_written_loads_from_memory_with_a_notice(image_tree, tmp_path):
    root = tmp_path / "root"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc writes under the small file-size limit
    proc = subprocess.run(
        [sys.executable, "-c", SMALL_DISK, str(image_tree), str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["train"], out["test"]) == (48, 18)  # decoded, and used from memory
    notice = out["notice"]
    assert "\n" not in notice and "could not be written" in notice
    assert str(root / "cache") in notice and "RuntimeError" in notice
    # No temp file (or half a cache) is left behind in the cache folder.
    assert list((root / "cache").iterdir()) == []
    # A data root that can be written gets its cache as before, and no notice.
    ds = load_dataset(f"folder:{image_tree}", root=root)
    assert ds.notice == "" and len(list((root / "cache").glob("folder-*-v*.pt"))) == 1


def test_cache_folder_blocked_by_a_file_gives_a_notice(image_tree, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "cache").write_text("a file where the cache folder should be")
    ds = load_dataset(f"folder:{image_tree}", root=root)
    assert len(ds.train) == 48
    assert "could not be written" in ds.notice and "FileExistsError" in ds.notice
    assert (root / "cache").read_text().startswith("a file")  # left as it was


def test_corrupted_cache_is_rebuilt(image_tree, data_root):
    first = load_dataset(f"folder:{image_tree}")
    cache = next((data_root / "cache").glob("folder-*.pt"))
    cache.write_bytes(b"garbage")
    again = load_dataset(f"folder:{image_tree}")
    assert torch.equal(first.test.images, again.test.images)
    cache.unlink()
    assert len(load_dataset(f"folder:{image_tree}").train) == 48


def test_pixels_match_the_files(image_tree, data_root):
    from PIL import Image

    ds = load_dataset(f"folder:{image_tree}")
    png = Image.open(image_tree / "test" / "square" / "0000.png")
    expected = torch.from_numpy(np.array(png)).permute(2, 0, 1)
    # test order interleaves classes: index 1 is the first 'square'
    assert torch.equal(ds.test.images[1], expected)


def test_filter_and_head(image_tree, data_root):
    ds = load_dataset(f"folder:{image_tree}")
    only = ds.test.filter(["square"])
    assert len(only) == 6 and set(only.labels.tolist()) == {1}
    assert len(ds.train.head(5)) == 5
    with pytest.raises(ValueError, match="unknown class"):
        ds.test.filter(["airplane"])
    # Every class is the set itself (no copy); positions find a class's pictures in place.
    assert ds.test.filter(list(reversed(ds.classes))) is ds.test
    where = ds.test.positions(["square"])
    assert torch.equal(ds.test.images[where], only.images)
    assert torch.equal(ds.test.floats(where[2:3]), only.floats(slice(2, 3)))


def test_non_images_and_empty_class_folder(tmp_path, data_root):
    tree = make_image_tree(tmp_path / "t", n_train=4, n_test=2)
    (tree / "train" / "circle" / "notes.txt").write_text("not an image")
    (tree / "train" / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tree / "train" / "empty").mkdir()
    (tree / "test" / "empty").mkdir()
    ds = load_dataset(f"folder:{tree}")
    assert ds.train.class_counts() == {"circle": 4, "empty": 0, "square": 4, "stripes": 4}
    assert ds.skipped == ("train/circle/broken.png",)  # named, so the app can say so
    assert load_dataset(f"folder:{tree}").skipped == ds.skipped  # kept by the cache too


def test_missing_torchvision_source_message(data_root):
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("mnist")
    msg = str(err.value)
    assert "mnist" in msg and str(data_root / "MNIST" / "raw") in msg
    assert "CONVAE_DATA" in msg and "go online" in msg and "folder:PATH" in msg
    # offline, nothing was downloaded: torchvision's "use download=True" hint is not passed on
    assert "no download was tried" in msg and "download=True" not in msg


def test_missing_cifar_names_both_places(data_root):
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10")
    assert "cifar-10-batches-py" in str(err.value) and "cifar10-jpeg" in str(err.value)


def test_bad_folder_and_unknown_source(tmp_path, data_root):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataNotFoundError, match="missing"):
        load_dataset(f"folder:{tmp_path / 'flat'}")
    with pytest.raises(ValueError, match="unknown data source"):
        load_dataset("imagenet")


@pytest.mark.shared_data
def test_shared_cifar10_copy(cifar):
    assert cifar.train.images.shape == (50000, 3, 32, 32)
    assert cifar.test.images.shape == (10000, 3, 32, 32)
    assert cifar.classes[0] == "airplane" and cifar.classes[-1] == "truck"
    assert cifar.test.class_counts()["cat"] == 1000
    assert cifar.test.labels[0] == 0  # the first test image is an airplane


@pytest.mark.shared_data
def test_shared_fashion_mnist(shared_root):
    if not (shared_root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
        pytest.skip("Fashion-MNIST not unpacked in this data root (./dev test does it)")
    ds = load_dataset("fashion-mnist", root=shared_root)
    assert ds.train.images.shape == (60000, 1, 28, 28)
    assert ds.classes[0] == "T-shirt/top"
