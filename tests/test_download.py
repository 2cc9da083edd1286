"""Downloading a full data set: the real download code against a real HTTP server run here
(http.server in a thread on 127.0.0.1), serving small archives this test builds in the
official formats (CIFAR-10's python pickles, Fashion-MNIST's gzipped idx files)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import pickle
import socket
import struct
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from convae import download as dl
from convae.data import available_full_source, load_dataset
from convae.download import (
    DownloadError,
    DownloadSpec,
    RemoteFile,
    download_source,
    is_online,
    official_spec,
)

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
CIFAR_NAMES.append("truck")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the test's folder; ``/broken/NAME`` promises the whole file but sends half
    of it and hangs up (a transfer that breaks off)."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.startswith("/broken/"):
            body = (Path(self.directory) / self.path.removeprefix("/broken/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server(tmp_path):
    """(base URL, folder it serves): a real HTTP server on a free local port."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Handler, directory=str(folder))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_cifar_archive(folder: Path, per_batch: int = 4) -> tuple[Path, dict, np.ndarray]:
    """``cifar-10-python.tar.gz`` in the real layout: cifar-10-batches-py/ with five
    data_batch_N and a test_batch (pickled dicts, "data" uint8 (N, 3072) as R, G, B planes
    and "labels"), batches.meta with "label_names". Returns the archive, each file's md5
    and the test images (N, 32, 32, 3)."""
    rng = np.random.default_rng(0)
    files, test_images = {}, None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        hwc = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        entry = {
            "batch_label": name,
            "labels": rng.integers(0, 10, per_batch).tolist(),
            "data": hwc.transpose(0, 3, 1, 2).reshape(per_batch, 3072),
            "filenames": [f"{name}_{i}.png" for i in range(per_batch)],
        }
        files[name] = pickle.dumps(entry, protocol=2)
        if name == "test_batch":
            test_images = hwc
    files["batches.meta"] = pickle.dumps({"label_names": CIFAR_NAMES}, protocol=2)
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    md5s = {name: hashlib.md5(blob).hexdigest() for name, blob in files.items()}
    return archive, md5s, test_images


def _idx(array: np.ndarray) -> bytes:
    return (
        bytes([0, 0, 8, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + (array.astype(np.uint8).tobytes())
    )


def make_fashion_files(folder: Path, n: int = 6) -> tuple[list[Path], np.ndarray]:
    """The four Fashion-MNIST .gz idx files with ``n`` random images each; returns them and
    the test images."""
    rng = np.random.default_rng(1)
    paths, test = [], None
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            p = folder / f"{prefix}-{kind}-ubyte.gz"
            p.write_bytes(gzip.compress(_idx(arr)))
            paths.append(p)
        test = images
    return paths, test


def _cifar_spec(base: str, archive: Path, md5: str | None = None) -> DownloadSpec:
    return DownloadSpec(
        (RemoteFile(f"{base}/{archive.name}", md5 or _md5(archive)),), "tar", "cifar-10-batches-py"
    )


def test_official_spec_is_torchvisions():
    from torchvision import datasets

    cifar = official_spec("cifar10")
    assert cifar.files == (RemoteFile(datasets.CIFAR10.url, datasets.CIFAR10.tgz_md5),)
    assert cifar.folder == "cifar-10-batches-py" and cifar.unpack == "tar"
    fashion = official_spec("fashion-mnist")
    assert [f.md5 for f in fashion.files] == [md5 for _, md5 in datasets.FashionMNIST.resources]
    assert all(f.url.startswith(datasets.FashionMNIST.mirrors[0]) for f in fashion.files)
    assert fashion.folder == "FashionMNIST/raw"
    assert dl.source_host("cifar10") == "www.cs.toronto.edu"
    with pytest.raises(ValueError, match="no download for data source 'cifar10-sample'"):
        official_spec("cifar10-sample")


def test_cifar10_download_streams_checks_and_unpacks(server, tmp_path, monkeypatch):
    base, served = server
    archive, md5s, test_images = make_cifar_archive(served)
    root = tmp_path / "root"
    assert not available_full_source("cifar10", root)
    seen: list[tuple[int, int, str]] = []
    out = download_source(
        "cifar10", root, lambda d, t, w: seen.append((d, t, w)), spec=_cifar_spec(base, archive)
    )
    assert out == root / "cifar-10-batches-py"
    assert available_full_source("cifar10", root)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # no temp files

    size = archive.stat().st_size
    got = [(d, t) for d, t, w in seen if w == "downloading cifar10"]
    assert got[-1] == (size, size)  # bytes, with the total from Content-Length
    assert [d for d, _ in got] == sorted(d for d, _ in got)
    unpacking = [(d, t) for d, t, w in seen if w == "unpacking cifar10"]
    assert unpacking and unpacking[-1][0] == unpacking[-1][1] == size

    # torchvision's CIFAR10 reads the result (its md5 table pointed at our small files)
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(
        CIFAR10, "train_list", [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5s["batches.meta"]})
    ds = load_dataset("cifar10", root=root)
    assert ds.classes == CIFAR_NAMES and len(ds.train) == 20
    assert torch.equal(ds.test.images, torch.from_numpy(test_images).permute(0, 3, 1, 2))


def test_fashion_mnist_download_gunzips_into_raw(server, tmp_path):
    base, served = server
    paths, test_images = make_fashion_files(served)
    spec = DownloadSpec(
        tuple(RemoteFile(f"{base}/{p.name}", _md5(p)) for p in paths), "gunzip", "FashionMNIST/raw"
    )
    root = tmp_path / "root"
    seen = []
    download_source("fashion-mnist", root, lambda d, t, w: seen.append(w), spec=spec)
    assert "downloading fashion-mnist (1/4: train-images-idx3-ubyte.gz)" in seen
    assert available_full_source("fashion-mnist", root)
    assert sorted(p.name for p in (root / "FashionMNIST" / "raw").iterdir()) == sorted(
        p.name.removesuffix(".gz") for p in paths
    )
    ds = load_dataset("fashion-mnist", root=root)
    assert torch.equal(ds.test.images[:, 0], torch.from_numpy(test_images))


def test_wrong_md5_fails_cleanly_and_keeps_nothing(server, tmp_path):
    base, served = server
    archive, _, _ = make_cifar_archive(served)
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match=r"is corrupt \(md5 [0-9a-f]{32}, expected 0{32}\)"):
        download_source("cifar10", root, spec=_cifar_spec(base, archive, md5="0" * 32))
    assert list(root.iterdir()) == []
    assert not available_full_source("cifar10", root)


@pytest.mark.parametrize("where", ["refused", "unknown-host"])
def test_offline_is_one_clear_error(where, tmp_path):
    host = "127.0.0.1" if where == "refused" else "convae-test.invalid"  # RFC 6761: never resolves
    url = f"http://{host}:{_closed_port()}/cifar-10-python.tar.gz"
    spec = DownloadSpec((RemoteFile(url, "0" * 32),), "tar", "cifar-10-batches-py")
    root = tmp_path / "root"
    with pytest.raises(DownloadError) as err:
        download_source("cifar10", root, spec=spec, timeout=5)
    assert str(err.value).startswith(f"no network: could not reach {host} (")
    assert "\n" not in str(err.value)
    assert list(root.iterdir()) == []


def test_http_error_is_one_clear_error(server, tmp_path):
    base, _ = server
    spec = DownloadSpec((RemoteFile(f"{base}/gone.tar.gz", "0" * 32),), "tar", "x")
    with pytest.raises(DownloadError, match=r"answered HTTP 404"):
        download_source("cifar10", tmp_path / "root", spec=spec)
    assert list((tmp_path / "root").iterdir()) == []


def test_transfer_that_breaks_off_keeps_nothing(server, tmp_path):
    base, served = server
    archive, _, _ = make_cifar_archive(served, per_batch=40)
    spec = DownloadSpec(
        (RemoteFile(f"{base}/broken/{archive.name}", _md5(archive)),), "tar", "cifar-10-batches-py"
    )
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match="broke off|stopped at"):
        download_source("cifar10", root, spec=spec, timeout=10)
    assert list(root.iterdir()) == []


def test_archive_without_the_data_set_is_refused(server, tmp_path):
    base, served = server
    wrong = served / "cifar-10-python.tar.gz"
    with tarfile.open(wrong, "w:gz") as tar:
        info = tarfile.TarInfo("something-else/readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match="does not hold cifar-10-batches-py/data_batch_1"):
        download_source("cifar10", root, spec=_cifar_spec(base, wrong))
    assert list(root.iterdir()) == []


def test_data_set_already_on_disk_is_not_downloaded_again(tmp_path, image_tree):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(image_tree, root / "cifar10-jpeg")
    unreachable = f"http://127.0.0.1:{_closed_port()}/x.tar.gz"
    spec = DownloadSpec((RemoteFile(unreachable, "0" * 32),), "tar", "cifar-10-batches-py")
    # would raise "no network" if it tried
    assert download_source("cifar10", root, spec=spec) == root / "cifar-10-batches-py"


def test_unwritable_data_root_is_one_clear_error(server, tmp_path):
    base, served = server
    archive, _, _ = make_cifar_archive(served)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DownloadError, match="cannot write to the data root"):
        download_source("cifar10", blocker / "data", spec=_cifar_spec(base, archive))


def test_is_online_probes_and_remembers_for_a_minute(server, monkeypatch):
    monkeypatch.delenv("CONVAE_OFFLINE", raising=False)
    monkeypatch.setattr(dl, "_ONLINE", {})
    now = [1000.0]
    monkeypatch.setattr(dl, "monotonic", lambda: now[0])
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    closed = _closed_port()
    assert is_online("127.0.0.1", timeout=2, port=port)
    assert not is_online("127.0.0.1", timeout=2, port=closed)

    # a server that starts listening on the closed port is seen only after the minute
    listener = socket.socket()
    listener.bind(("127.0.0.1", closed))
    listener.listen()
    try:
        now[0] += 59
        assert not is_online("127.0.0.1", timeout=2, port=closed)  # remembered answer
        now[0] += 2
        assert is_online("127.0.0.1", timeout=2, port=closed)  # probed again
    finally:
        listener.close()


def test_is_online_is_false_when_offline_is_set(server, monkeypatch):
    monkeypatch.setenv("CONVAE_OFFLINE", "1")
    monkeypatch.setattr(dl, "_ONLINE", {})
    base, _ = server
    assert not is_online("127.0.0.1", port=int(base.rsplit(":", 1)[1]))
