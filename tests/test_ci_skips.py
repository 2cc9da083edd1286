"""The suite's skip rules (tests/conftest.py), run on a small test folder in a separate
pytest process: outside CI skips stay skips; under CI=true a skipped browser, shared-data
or service (redis-server) test fails with a reason saying why; the fresh-machine pass
allows only the shared-data skips; a browser-test folder skipped as a whole fails the
session."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

# Each test starts pytest in a new process (about 3 CPU seconds a run).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = """
import pytest

@pytest.fixture
def browser():
    pytest.skip("no Chromium found (/usr/bin/chromium, $CONVAE_CHROMIUM or PATH)")

@pytest.fixture(scope="session")
def redis_binary():
    pytest.skip("no redis-server found (/usr/bin/redis-server or PATH)")

@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.service)])
def store(request):
    if request.param == "redis":
        pytest.skip("no redis-server found")
    return request.param
"""

TESTS = """
import pytest

def test_plain_skip():
    pytest.skip("needs something optional")

def test_runs():
    pass

@pytest.mark.e2e
def test_marked_browser_skip():
    pytest.skip("no Chromium found")

def test_browser_by_fixture(browser):
    pass

def test_shared_by_fixture(shared_root):
    pass

def test_cifar_by_fixture(cifar):
    pass

@pytest.mark.shared_data
def test_marked_shared_skip():
    pytest.skip("Fashion-MNIST not unpacked in this data root")

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

def test_service_by_fixture(redis_server):
    pass

@pytest.mark.service
def test_marked_service_skip():
    pytest.skip("no redis-server found")

def test_service_by_param(store):
    pass
"""

WHOLE_FOLDER = """
import pytest
pytest.importorskip("no_such_module_for_this_test", reason="playwright is not installed")
"""


def _run(tmp_path: Path, env: dict, folder: str = "cases") -> tuple[int, dict, str]:
    """pytest on ``tmp_path/folder`` with tests/conftest.py loaded as a plugin; returns
    the exit code, {test name: passed|failed|skipped} and the output."""
    xml = tmp_path / f"{folder}-{len(list(tmp_path.glob('*.xml')))}.xml"
    # Not the suite's own run settings: a recording folder (CONVAE_TEST_CPU) would get
    # this inner run's tests written over a worker's record (PYTEST_XDIST_WORKER).
    outer = ("CI", "CONVAE_FRESH_PASS", "CONVAE_TEST_CPU", "PYTEST_XDIST_WORKER")
    full_env = {k: v for k, v in os.environ.items() if k not in outer}
    full_env.update(
        PYTHONPATH=str(ROOT),
        CONVAE_SHARED=str(tmp_path / "no-shared"),
        CONVAE_DATA=str(tmp_path / "empty-root"),
        **env,
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            f"--junitxml={xml}",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path / folder),
        ],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcomes = {}
    if xml.is_file():
        for case in ET.parse(xml).getroot().iter("testcase"):
            kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
            outcomes[case.get("name")] = {"failure": "failed", "error": "failed"}.get(
                kinds[0] if kinds else "", kinds[0] if kinds else "passed"
            )
    return proc.returncode, outcomes, proc.stdout + proc.stderr


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    (tmp_path / "empty-root").mkdir()
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "conftest.py").write_text(CONFTEST)
    (tmp_path / "cases" / "test_cases.py").write_text(TESTS)
    return tmp_path


ALWAYS = {
    "test_plain_skip": "skipped",
    "test_runs": "passed",
    "test_xfail": "skipped",
    "test_service_by_param[memory]": "passed",
}
SERVICE = ("test_service_by_fixture", "test_marked_service_skip", "test_service_by_param[redis]")


def test_outside_ci_skips_stay_skips(cases):
    code, got, out = _run(cases, {})
    assert code == 0, out
    assert got == {
        **ALWAYS,
        "test_marked_browser_skip": "skipped",
        "test_browser_by_fixture": "skipped",
        "test_shared_by_fixture": "skipped",
        "test_cifar_by_fixture": "skipped",
        "test_marked_shared_skip": "skipped",
        **dict.fromkeys(SERVICE, "skipped"),
    }


def test_under_ci_browser_and_shared_data_skips_fail(cases):
    code, got, out = _run(cases, {"CI": "true"})
    assert code == 1, out
    assert got == {
        **ALWAYS,
        "test_marked_browser_skip": "failed",
        "test_browser_by_fixture": "failed",  # marked e2e by the fixture it uses
        "test_shared_by_fixture": "failed",  # marked shared_data by its fixture
        "test_cifar_by_fixture": "failed",  # ... also through another fixture
        "test_marked_shared_skip": "failed",
        # a real redis-server: marked by the fixture (through redis_server), by hand, or
        # by the parameter of a fixture that runs a test on several stores
        **dict.fromkeys(SERVICE, "failed"),
    }
    # the reason says what happened and what to do
    assert "CI=true and a browser test skipped (no Chromium found" in out
    assert "CI=true and a shared-data test skipped (the shared data copy is missing" in out
    assert "CI=true and a service test skipped (no redis-server found" in out


def test_the_fresh_machine_pass_allows_only_shared_data_skips(cases):
    code, got, out = _run(cases, {"CI": "true", "CONVAE_FRESH_PASS": "1"})
    assert code == 1, out
    assert got == {
        **ALWAYS,
        "test_marked_browser_skip": "failed",
        "test_browser_by_fixture": "failed",
        "test_shared_by_fixture": "skipped",
        "test_cifar_by_fixture": "skipped",
        "test_marked_shared_skip": "skipped",
        **dict.fromkeys(SERVICE, "failed"),  # ./dev test installs redis-server
    }


def test_a_browser_folder_skipped_as_a_whole_fails_under_ci(tmp_path):
    e2e = tmp_path / "suite" / "e2e"  # collected from above, as tests/e2e is
    e2e.mkdir(parents=True)
    (e2e / "conftest.py").write_text(WHOLE_FOLDER)
    (e2e / "test_page.py").write_text("def test_page():\n    pass\n")
    (tmp_path / "suite" / "test_other.py").write_text("def test_other():\n    pass\n")
    code, _, out = _run(tmp_path, {}, "suite")
    assert code == 0 and "1 passed, 1 skipped" in out, out  # outside CI: a skip
    code, got, out = _run(tmp_path, {"CI": "true"}, "suite")
    assert code == 1 and got["test_other"] == "passed", out  # the rest still ran
    assert "browser tests were skipped as a whole" in out and "playwright is not installed" in out


def test_the_fresh_machine_pass_may_not_read_the_shared_data(tmp_path):
    """In that pass, opening or listing ./data or ../shared fails the test that did it.
    In the main pass the same holds for the in-process app tests that pin their own data
    (test_app*.py, test_links.py, test_data.py), which the fresh pass no longer repeats."""
    (tmp_path / "peek").mkdir()
    (tmp_path / "peek" / "test_app_peek.py").write_text(
        "import os\n"
        "from pathlib import Path\n"
        f"ROOT = Path({str(ROOT)!r})\n"
        "def test_lists_data():\n"
        "    os.listdir(ROOT / 'data')\n"
        "def test_opens_shared():\n"
        "    open(ROOT.parent / 'shared' / 'data' / 'cifar10-jpeg.tar.gz', 'rb')\n"
        "def test_own_files():\n"
        "    os.listdir(ROOT / 'checkpoints')\n"
    )
    (tmp_path / "peek" / "test_other_peek.py").write_text(
        "import os\n"
        "from pathlib import Path\n"
        f"ROOT = Path({str(ROOT)!r})\n"
        "def test_main_pass_may_list_data():\n"
        "    try:\n"
        "        os.listdir(ROOT / 'data')\n"
        "    except FileNotFoundError:  # a clone without ./data: the listing was tried\n"
        "        pass\n"
    )
    want = {"test_lists_data": "failed", "test_opens_shared": "failed", "test_own_files": "passed"}
    code, got, out = _run(tmp_path, {"CONVAE_FRESH_PASS": "1"}, "peek")
    assert code == 1, out
    assert got == {**want, "test_main_pass_may_list_data": "failed"}
    assert "the fresh-machine pass read" in out
    # the main pass: only the pinned app tests are guarded
    code, got, out = _run(tmp_path, {}, "peek")
    assert code == 1, out
    assert got == {**want, "test_main_pass_may_list_data": "passed"}
    assert "a test that pins its own data read" in out
