"""Shared fixtures: small real image-folder trees and tiny trained models, built per test
session, and the real CIFAR-10 / Fashion-MNIST copies from ../shared/data.

Also the suite's rules on skipping (see ``pytest_runtest_makereport``): under ``CI=true`` a
browser test (marker e2e), a shared-data test (marker shared_data) or a service test that
needs a real redis-server (marker service) that skips fails instead, so a Chromium or a
redis-server that did not install or a missing data copy turns CI red. The "fresh
machine" pass of ``./dev test`` (``CONVAE_FRESH_PASS=1``, shared copy out of reach) allows
the shared-data skips, never the browser or service ones. The markers are applied here
from the fixtures a test uses, so a new test cannot forget them.

That pass runs only the tests marked machine_data (``-m machine_data``): those on the data
set this machine has (fixture ``app_data``, the browser tests' server, on the embedded
sample there), and the main pass runs every other test (``-m "not machine_data"``), so
each test runs once. Every other test pins its own data (a synthetic tree, a temp data
root) or needs the shared copy, so a second run would repeat the first or skip. What the
fresh pass also showed for them, that they never read ./data or ../shared, the main pass
checks instead (see ``_guard_fresh_pass``). Both passes run in two pytest-xdist workers,
one test file per worker: session fixtures are built once per worker.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CONVAE_SHARED") or ROOT.parent / "shared" / "data")
CLASSES = ("circle", "square", "stripes")
# Fixtures that mean "this test drives a real browser" / "needs the shared data copy" /
# "needs a real service" (redis-server). A fixture that picks a service by its parameter
# marks that parameter instead (pytest.param(..., marks=pytest.mark.service)).
E2E_FIXTURES = {"browser", "server"}
SHARED_FIXTURES = {"shared_root", "cifar"}
SERVICE_FIXTURES = {"redis_binary"}
# Test files whose every test starts worker processes (torchrun, gloo): marked slow here
# (./dev test --quick leaves them out) so that the file need not say it.
SLOW_FILES = ("test_distributed.py",)
# "Runs on the data set this machine has" (marker machine_data, the fresh pass's tests).
MACHINE_DATA_FIXTURES = {"app_data"}
NO_SHARED = "the shared data copy is missing"  # how _shared_root's skip reason starts

os.environ.setdefault("CONVAE_OFFLINE", "1")  # tests never try to download
# One thread: on a busy 2-core machine (several jobs, niced) two OpenMP threads wait at
# every barrier for the one that was descheduled; one epoch of 900 images took 21-44 s
# with 2 threads against 0.5-1.1 s with 1 (load average 9). $CONVAE_TEST_THREADS overrides.
torch.set_num_threads(int(os.environ.get("CONVAE_TEST_THREADS") or 1))


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _fresh_pass() -> bool:
    return os.environ.get("CONVAE_FRESH_PASS", "") == "1"


def pytest_configure(config: pytest.Config) -> None:
    # Also in pyproject.toml; registered here too so that the rules work wherever this
    # file is loaded as a plugin (tests/test_ci_skips.py runs it on a folder of its own).
    config.addinivalue_line("markers", "e2e: drives the app in a real browser")
    config.addinivalue_line("markers", "shared_data: needs the shared CIFAR-10 / Fashion-MNIST")
    config.addinivalue_line("markers", "service: needs a real service (redis-server)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line(
        "markers", "machine_data: runs on the machine's data set (the fresh pass runs these)"
    )
    # Per-test wall and CPU seconds (tests/cputime.py), when asked for; only in the
    # outermost pytest (the suite's own pytest subprocesses inherit the variable) and in
    # its pytest-xdist workers (whose parent is that pytest).
    folder = os.environ.get("CONVAE_TEST_CPU")
    owner = os.environ.get("CONVAE_TEST_CPU_OWNER")
    xdist_worker = bool(os.environ.get("PYTEST_XDIST_WORKER")) and owner == str(os.getppid())
    if folder and (not owner or xdist_worker):
        from tests.cputime import CpuTimes

        os.environ["CONVAE_TEST_CPU_OWNER"] = str(os.getpid())
        config.pluginmanager.register(CpuTimes(Path(folder)), "convae-cputime")


# The last recorded run of the suite with its workers (bench/test_times.py): each file's
# wall seconds and test count, to start the longest files first (see below).
TIMES_OF_RECORD = ROOT / "bench" / "results" / "test_times-workers.json"


def _longest_files_first(items: list[pytest.Item]) -> None:
    """Order the files by their expected wall time, longest first, keeping each file's own
    order. A file runs on one pytest-xdist worker; a long file that starts last keeps the
    other worker idle at the end of its pass. A file's expected time is its seconds per
    test in the run of record times its tests now; a file not in that run gets its
    folder's median seconds per test. Without the record the order stays as collected."""
    try:
        doc = json.loads(TIMES_OF_RECORD.read_text())
        files = [f for p in doc["passes"].values() for f in p["files"]]
        per_test = {f["file"]: f["wall"] / max(f["tests"], 1) for f in files}
    except (OSError, ValueError, KeyError, TypeError):
        return
    first: dict[str, int] = {}
    count: dict[str, int] = {}
    for i, item in enumerate(items):
        name = item.nodeid.split("::")[0]
        first.setdefault(name, i)
        count[name] = count.get(name, 0) + 1

    def folder_median(name: str) -> float:
        near = sorted(v for k, v in per_test.items() if Path(k).parent == Path(name).parent)
        return near[len(near) // 2] if near else 0.0

    expected = {
        n: (per_test[n] if n in per_test else folder_median(n)) * c for n, c in count.items()
    }

    def order(item: pytest.Item) -> tuple[float, int]:
        name = item.nodeid.split("::")[0]
        return (-expected[name], first[name])

    items.sort(key=order)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the fixtures they use (their whole closure, so through other
    fixtures too): a browser test is e2e, a test on the shared copy is shared_data, a test
    on a real redis-server is service, a test on the machine's data set machine_data.
    Then start the longest files first (:func:`_longest_files_first`)."""
    _longest_files_first(items)
    for item in items:
        if Path(str(item.fspath)).name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
        used = set(getattr(item, "fixturenames", ()))
        for fixtures, mark in (
            (E2E_FIXTURES, pytest.mark.e2e),
            (SHARED_FIXTURES, pytest.mark.shared_data),
            (SERVICE_FIXTURES, pytest.mark.service),
            (MACHINE_DATA_FIXTURES, pytest.mark.machine_data),
        ):
            if used & fixtures and item.get_closest_marker(mark.name) is None:
                item.add_marker(mark)


def skip_is_allowed(item: pytest.Item, reason: str) -> bool:
    """Whether a skip of ``item`` may stay a skip under CI=true.

    Only tests that need neither a browser, nor the shared data, nor a real service
    (redis-server) may skip in CI; in the fresh-machine pass a shared-data test may skip
    too, unless it skipped for want of a browser or a service.
    """
    e2e = item.get_closest_marker("e2e") is not None
    shared = item.get_closest_marker("shared_data") is not None
    service = item.get_closest_marker("service") is not None
    if not (e2e or shared or service):
        return True
    return _fresh_pass() and shared and not service and "Chromium" not in reason


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    rep = yield
    if rep.skipped and _ci() and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if not skip_is_allowed(item, reason):
            if item.get_closest_marker("e2e"):
                kind = "a browser test"
            elif item.get_closest_marker("service"):
                kind = "a service test"
            else:
                kind = "a shared-data test"
            rep.outcome = "failed"
            rep.longrepr = (
                f"CI=true and {kind} skipped ({reason}). In CI it must run: install what "
                "it names (./dev test installs Chromium and redis-server; the shared data "
                "sits in ../shared/data), or run outside CI, where skips stay skips."
            )
    return rep


_COLLECT_SKIPS: list[str] = []


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A whole folder skipped at collection (tests/e2e without Playwright) has no test
    items to fail; under CI=true it fails the session instead (pytest_sessionfinish)."""
    if report.skipped and _ci() and "e2e" in report.nodeid.replace("\\", "/").split("/"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        reason = str(reason).removeprefix("Skipped: ")
        _COLLECT_SKIPS.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _COLLECT_SKIPS and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    for line in _COLLECT_SKIPS:
        terminalreporter.write_line(
            f"CI=true and the browser tests were skipped as a whole: {line}", red=True
        )


# The in-process app tests the fresh pass ran before it kept only the machine_data tests
# (AppTest pages, links, data loading): they pin their own data, so in the main pass they
# are guarded as the fresh pass guarded them (see _guard_fresh_pass).
GUARDED_IN_MAIN_PASS = ("test_app", "test_links.py", "test_data.py")
_GUARD = {"on": False}


def _guard_fresh_pass() -> None:
    """In the fresh-machine pass, opening anything under ./data or ../shared is an error:
    that pass must show what a machine without them runs (a Python audit hook sees every
    open() and listing made by Python code in this process). In the main pass the same
    holds during the in-process app tests that pin their own data
    (:data:`GUARDED_IN_MAIN_PASS`, unless marked shared_data), which the fresh pass no
    longer repeats: a page that read ./data behind their back fails there."""
    _GUARD["on"] = _fresh_pass()
    off_limits = {ROOT / "data", ROOT.parent / "shared"}
    off_limits |= {p.resolve() for p in off_limits if p.exists()}
    prefixes = tuple(str(p) + os.sep for p in off_limits)

    def hook(event: str, args: tuple) -> None:
        if not _GUARD["on"]:
            return
        if event in ("open", "os.listdir", "os.scandir") and args and args[0] is not None:
            path = args[0]
            if event == "open" and args[1] is None and not os.path.isabs(path):
                # os.open of a bare name, as shutil.rmtree walks with dir_fd (pytest
                # removing its old temp folders, which hold tests' own "data" folders):
                # the audit event leaves the folder out, so cwd would be a false guess.
                return
            if isinstance(path, (str, os.PathLike)):
                full = os.path.abspath(os.fspath(path)) + os.sep
                if full.startswith(prefixes):
                    raise RuntimeError(
                        f"the fresh-machine pass read {os.fspath(path)}"
                        if _fresh_pass()
                        else f"a test that pins its own data read {os.fspath(path)}"
                    )

    sys.addaudithook(hook)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """The main pass's guard (see _guard_fresh_pass) around one pinned app test."""
    name = Path(str(item.fspath)).name
    guard = (
        not _fresh_pass()
        and name.startswith(GUARDED_IN_MAIN_PASS)
        and item.get_closest_marker("shared_data") is None
    )
    _GUARD["on"] = guard or _fresh_pass()
    try:
        return (yield)
    finally:
        _GUARD["on"] = _fresh_pass()


_guard_fresh_pass()


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
    from tests.fixtures import train_tiny

    return {dec: train_tiny(tiny_data, decoder=dec) for dec in ("transpose", "upsample")}


def _unpack_fashion_mnist(root: Path) -> None:
    """../shared/data/fashion-mnist/*.gz into <root>/FashionMNIST/raw, as ./dev does."""
    raw = root / "FashionMNIST" / "raw"
    if (raw / "t10k-labels-idx1-ubyte").is_file() or not (SHARED / "fashion-mnist").is_dir():
        return
    raw.mkdir(parents=True, exist_ok=True)
    for gz in sorted((SHARED / "fashion-mnist").glob("*.gz")):
        with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the real CIFAR-10 JPEG copy and Fashion-MNIST: the data root
    ($CONVAE_DATA, else ./data) when `./dev` has unpacked them there, else unpacked from
    ../shared/data ($CONVAE_SHARED) for this run. Only the data root is looked at: the
    fresh-machine pass points it at an empty folder and must not find ./data."""
    root = Path(os.environ.get("CONVAE_DATA") or ROOT / "data")
    if (root / "cifar10-jpeg" / "test").is_dir():
        return root
    tar = SHARED / "cifar10-jpeg.tar.gz"
    if not tar.is_file():
        pytest.skip(
            f"{NO_SHARED}: no CIFAR-10 in the data root {root} and no {tar} "
            "($CONVAE_SHARED) to unpack"
        )
    root = tmp_path_factory.mktemp("shared")
    with tarfile.open(tar) as t:
        t.extractall(root / "cifar10-jpeg", filter="data")
    _unpack_fashion_mnist(root)
    return root


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """Debian's redis-server; skips (a failure under CI=true: marker service) without it."""
    from .redistools import find_redis_server

    exe = find_redis_server()
    if exe is None:
        pytest.skip(
            "no redis-server found (/usr/bin/redis-server or PATH): install Debian's "
            "redis-server package (./dev test does)"
        )
    return exe


@pytest.fixture(scope="session")
def redis_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory):
    """One real redis-server for the whole session, on a free loopback port; tests keep
    apart by key prefix (see ``class_store``)."""
    from .redistools import RedisServer

    server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(
    params=["memory", pytest.param("redis", marks=pytest.mark.service)],
)
def class_store(request: pytest.FixtureRequest):
    """Each class-store test twice: on the in-process store and on a real redis-server
    (its keys under a prefix of their own, so tests never see each other's classes)."""
    if request.param == "memory":
        from convae.classroom.memory_store import MemoryStore

        yield MemoryStore()
        return
    import uuid

    from convae.classroom.redis_store import RedisStore

    server = request.getfixturevalue("redis_server")
    store = RedisStore(server.url, prefix=f"test:{uuid.uuid4().hex[:8]}")
    yield store
    store.close()


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _shared_root(tmp_path_factory)


@pytest.fixture(scope="session")
def cifar(shared_root: Path):
    from convae.data import load_dataset

    return load_dataset("cifar10", root=shared_root)


@pytest.fixture(scope="session")
def shipped_test_scores(cifar):
    """``get(name)``: the per-image scores (convae.compare.score_images: MSE, PSNR, SSIM
    and the artifact measures) of the shipped checkpoint ``checkpoints/<name>`` on the
    real CIFAR-10 test split, computed once per session (10,000 pictures, 3-5 CPU
    seconds a model) for every test that reads them (test_shipped, test_artifacts)."""
    from convae.checkpoints import load_checkpoint
    from convae.compare import score_images

    done: dict = {}

    def get(name: str):
        if name not in done:
            path = ROOT / "checkpoints" / name
            if not path.is_file():
                pytest.skip(f"shipped checkpoint {path} is missing")
            done[name] = score_images(load_checkpoint(path).model, cifar.test)
        return done[name]

    return get
