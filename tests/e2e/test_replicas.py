"""Two app replicas behind HAProxy (``serve.py --replicas 2``) in a real Chromium.

A live class across them: the teacher and the students land on different replicas and
share the class through a real redis-server started by the test (CONVAE_CLASS_STORE);
stopped mid-class, the teacher's screen says so in one line, the students explore with a
notice and nothing crashes; started again, following resumes.

A browser session stays on its replica across reruns: one websocket for the whole
session, held open on the replica its cookie names (HAProxy's own counters say so), the
cookie unchanged, and every picture (served from the memory of the replica that drew it)
loads. Sessions are spread: a second browser lands on the other replica. Stopping one
replica: HAProxy takes it out, a new browser lands on the other one, the session already
there keeps working, and a browser whose replica went away reconnects to the survivor.
SIGTERM to serve.py stops HAProxy and every replica.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from bench.common import serve_command

from ..redistools import RedisServer
from .conftest import _RUN_COUNTER, FOLLOW_MS, ROOT, App, _free_port, chromium_path, people_on

COOKIE = "CONVAE_REPLICA"
START_S = 180  # two replicas import torch at once on a busy 2-core machine


class Replicas:
    """A running ``serve.py --replicas 2`` and what its log says about it."""

    def __init__(self, proc: subprocess.Popen, log: Path, url: str) -> None:
        self.proc, self.log, self.url = proc, log, url

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        return {
            m[0]: int(m[1]) for m in re.findall(r"\[serve\] (\S+) started: pid (\d+)", self.text())
        }

    def stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's ``show stat`` per replica: status (UP/DOWN) and scur (open sessions)."""
        sock = re.search(r"HAProxy admin socket: (\S+)\)", self.text())[1]
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(sock)
            s.sendall(b"show stat\n")
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        lines = raw.decode().splitlines()
        head = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(head, line.split(","), strict=False)) for line in lines[1:] if line]
        return {r["svname"]: r for r in rows if r["pxname"] == "replicas"}

    def wait_for(self, what: str, cond, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not reached in {timeout:.0f} s; log:\n{self.text()[-4000:]}")
            time.sleep(0.25)


@pytest.fixture(scope="module")
def class_redis(redis_binary, tmp_path_factory) -> Iterator[RedisServer]:
    """The class store the replicas share: a real redis-server this module starts (and
    stops mid-class), so serve.py does not start its own."""
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("class_redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(app_data, class_redis, tmp_path_factory) -> Iterator[Replicas]:
    if chromium_path() is None:
        pytest.skip("no Chromium found: ./dev test installs it with apt")
    if not (shutil.which("haproxy") or os.access("/usr/sbin/haproxy", os.X_OK)):
        pytest.skip("HAProxy is not installed: ./dev serve installs it (apt-get install haproxy)")
    port = _free_port()
    log = tmp_path_factory.mktemp("replicas") / "serve.log"
    env = {**os.environ, **app_data["env"], "CONVAE_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env["CONVAE_CLASS_STORE"] = class_redis.url
    cmd = serve_command(port, launcher=[sys.executable, "serve.py", "--replicas", "2"])
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    r = Replicas(proc, log, f"http://127.0.0.1:{port}")
    try:
        r.wait_for(
            "serve.py: '2 replicas behind HAProxy'",
            lambda: proc.poll() is not None or "replicas behind HAProxy" in r.text(),
            START_S,
        )
        assert proc.poll() is None, r.text()[-4000:]
        yield r
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for pid in r.pids().values():  # nothing may be left behind, whatever the test did
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def chrome(replicas, browser):
    """The suite's one Chromium (conftest's ``browser``): a second sync_playwright() in
    the same process fails while the first one is open, i.e. in a whole-suite run."""
    return browser


class Visitor:
    """One browser context (one student) on the balanced address."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.add_init_script(_RUN_COUNTER)
        self.page = self.context.new_page()
        self.sockets: list = []
        self.page.on("websocket", lambda ws: self.sockets.append(ws))
        self.app = App(self.page, url)
        self.app.open()

    def replica(self) -> str:
        values = [c["value"] for c in self.context.cookies() if c["name"] == COOKIE]
        assert len(values) == 1, self.context.cookies()
        return values[0]

    def streams(self) -> list:
        return [ws for ws in self.sockets if ws.url.endswith("/_stcore/stream")]

    def rerun(self) -> None:
        """Rerun the script the way a user can on any page: the "r" shortcut."""
        self.app.act(lambda: self.page.keyboard.press("r"))

    def pictures_loaded(self) -> None:
        """Every picture on the page is drawn. A picture lives in the memory of the
        replica that made it (/media/...): it loads only if its request reached that
        replica."""
        self.page.wait_for_function(
            "() => { const im = [...document.querySelectorAll("
            '\'[data-testid="stMain"] [data-testid="stImage"] img\')];'
            " return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 0); }",
            timeout=60_000,
        )

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def people(chrome, replicas, request):
    yield from people_on(chrome, replicas.url, request)


def _replica(person) -> str:
    return next(c["value"] for c in person.context.cookies() if c["name"] == COOKIE)


def _both_up(replicas) -> bool:
    try:
        stats = replicas.stats()
    except OSError:  # HAProxy's admin socket is not there yet
        return False
    return {stats["r1"]["status"], stats["r2"]["status"]} == {"UP"}


@pytest.mark.e2e
def test_a_class_spans_replicas_through_redis_and_survives_its_outage(
    replicas, people, class_redis, app_data
):
    """Runs first in this module: the next test stops a replica."""
    replicas.wait_for("both replicas UP in HAProxy", lambda: _both_up(replicas), 30)
    key = app_data["teacher_key"]
    teacher = people()
    teacher.open("class", f"teacher={key}")
    teacher.click("Start a class")
    code = teacher.main.locator(".cae-code").inner_text().replace(" ", "")
    students = [people(), people(width=390, height=844, touch=True)]
    for s in students:
        s.open("class", f"join={code}")
        s.sees(f"Class {code}.")
    homes = {_replica(s) for s in students}
    assert homes - {_replica(teacher)}, "least-connections: a student on the other replica"
    teacher.sees("2 students present, 2 following", timeout=30_000)

    teacher.act(lambda: teacher.sidebar.get_by_role("link", name="Layers").click())
    teacher.click("Next ▶")
    for s in students:  # followed across replicas: the view went through Redis
        expect(s.main.get_by_text(re.compile(r"^relu1 \("))).to_be_visible(timeout=FOLLOW_MS)

    class_redis.stop(save=True)  # mid-class (the class survives in dump.rdb)
    teacher.sees("The class store cannot be reached", timeout=30_000)
    for s in students:
        s.sees("The class cannot be reached right now")
    teacher.click("Next ▶")  # the teacher goes on; nobody can follow for now
    students[0].click("◀ Prev")  # a student explores meanwhile
    for p in (teacher, *students):
        p.no_exception()

    class_redis.start()
    for s in students:  # following resumes at the teacher's step
        expect(s.main.get_by_text(re.compile(r"^pool1 \("))).to_be_visible(timeout=FOLLOW_MS)
        expect(s.page.get_by_text("The class cannot be reached right now")).to_have_count(0)
    teacher.click("Next ▶")
    for s in students:
        expect(s.main.get_by_text(re.compile(r"^conv2 \("))).to_be_visible(timeout=FOLLOW_MS)
    for p in (teacher, *students):
        p.no_exception()
    # The key is printed once, for the teacher; HAProxy logs the teacher's request to
    # /class?teacher=... by its path alone.
    after = replicas.text().split("[serve] Teacher link", 1)[1].split("\n", 1)[1]
    assert re.search(r"\[haproxy\] .*\"GET /class HTTP", after), after[-2000:]
    assert key not in after


@pytest.mark.e2e
def test_sessions_stick_to_their_replica_and_survive_the_loss_of_the_other(replicas, chrome):
    # Just started, HAProxy may still be making its socket or counting health checks
    # ("UP 1/2"): both must be fully UP within its check interval; the class test's
    # websockets must be gone.
    replicas.wait_for("both replicas UP in HAProxy", lambda: _both_up(replicas), 30)
    replicas.wait_for(
        "no session left open",
        lambda: {replicas.stats()[r]["scur"] for r in ("r1", "r2")} == {"0"},
    )

    a = Visitor(chrome, replicas.url)
    home_a = a.replica()
    assert home_a in ("r1", "r2")
    a.pictures_loaded()
    for _ in range(3):
        a.rerun()
        a.app.no_exception()
        a.pictures_loaded()
    assert a.replica() == home_a
    # One websocket for the whole session, still open, and HAProxy counts it on home_a.
    assert len(a.streams()) == 1 and not a.streams()[0].is_closed()
    replicas.wait_for(
        f"A's websocket counted on {home_a}",
        lambda: replicas.stats()[home_a]["scur"] == "1",
    )

    b = Visitor(chrome, replicas.url)
    home_b = b.replica()
    assert home_b != home_a, "least-connections balancing puts the 2nd session on the other"
    b.pictures_loaded()

    # Stop A's replica as a crash or an admin would: SIGTERM to that process alone.
    os.kill(replicas.pids()[home_a], signal.SIGTERM)
    replicas.wait_for(
        f"HAProxy marking {home_a} DOWN",
        lambda: replicas.stats()[home_a]["status"].startswith("DOWN"),
    )

    c = Visitor(chrome, replicas.url)
    assert c.replica() == home_b
    c.pictures_loaded()
    c.app.no_exception()

    # B, already on the surviving replica, keeps working in the same session.
    for _ in range(2):
        b.rerun()
        b.app.no_exception()
        b.pictures_loaded()
    assert b.replica() == home_b
    assert len(b.streams()) == 1 and not b.streams()[0].is_closed()

    # A lost its server: Streamlit's page reconnects, HAProxy redispatches it to the
    # survivor (a fresh session there), and it works again.
    a.page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')"
        "?.dataset.testScriptState === 'notRunning'",
        timeout=60_000,
    )
    a.rerun()
    a.app.no_exception()
    a.pictures_loaded()
    assert a.replica() == home_b
    for v in (a, b, c):
        v.close()


@pytest.mark.e2e
def test_sigterm_stops_haproxy_and_every_replica(replicas, chrome):
    """Runs last in this module (pytest keeps file order): stopping serve.py stops all."""
    pids = replicas.pids()
    assert set(pids) >= {"r1", "r2", "haproxy"}
    replicas.proc.send_signal(signal.SIGTERM)
    assert replicas.proc.wait(30) == 0
    for name, pid in pids.items():
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and _alive(pid):
            assert time.monotonic() < deadline, f"{name} (pid {pid}) still running"
            time.sleep(0.1)
    assert "[serve] stopping" in replicas.text()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, already dead, counts as stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
