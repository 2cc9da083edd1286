"""What N following students' polls cost the app server, through Streamlit itself.

bench/class_store.py measures the class store's call alone (one GET); a student's screen
does more: every 1.5 s (``POLL_S``) its browser asks the server to rerun the poll fragment
(``st.fragment(run_every=..., key="class_poll")`` in pages/glue/classroom.py), and the
server runs it (one ``svc.version()``, a heartbeat every 10 s, the sidebar's class lines)
and sends its elements back. This starts the app as ``./dev app`` does (``serve.py``, one
process), opens a class as the teacher and seats N students, each a protocol-level client
(tests/streamclient.py: Streamlit's websocket protocol, no browser, so the machine's CPU
goes to the server), and then, in alternating windows of ``--window`` seconds:

* idle: the N sessions open, nobody polls (the server's baseline);
* polling: each student sends its poll fragment's rerun at the interval the server set,
  staggered, as N browsers would, and waits for the run to finish.

The server's CPU time is read from /proc/<pid>/stat (user + system) over each window; a
poll costs (CPU of a polling window - the idle rate x its length) / polls done. With
``--store redis`` the app uses a redis-server started here, whose CPU per poll is read the
same way. Medians over the rounds, with the load average before and after (the machine is
shared); results in bench/results/class_poll.json.

Usage::

    python bench/class_poll.py [--students 20] [--rounds 3] [--window 15] [--store memory]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402

from tests.streamclient import StreamSession  # noqa: E402

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis() -> tuple[subprocess.Popen, str]:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def start_app(env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "serve.py", "--server.headless", "true", "--server.port", str(port)]
    cmd += ["--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2):
                return proc, base
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the app did not start")


def open_class(base: str, key: str) -> tuple[StreamSession, str]:
    """The teacher signs in with the key, starts a class; returns it and the join code."""
    teacher = StreamSession(base)
    teacher.rerun(query=f"teacher={key}", page="class")
    start = WidgetState(id=teacher.widgets["class_start"], trigger_value=True)
    msgs = teacher.rerun(page="class", widgets=[start])
    for m in msgs:
        if m.WhichOneof("type") == "delta" and m.delta.new_element.WhichOneof("type") == "html":
            found = re.search(r"join=([0-9A-Z]{6})", m.delta.new_element.html.body)
            if found:
                return teacher, found[1]
    raise RuntimeError("no join code on the teacher's page")


def poll_window(
    students: list[tuple[StreamSession, str]], seconds: float, every: float
) -> list[float]:
    """Every student polls every ``every`` s (staggered) for ``seconds``, as the poll
    fragment's timer in a browser does; returns each poll's wall time (request to the
    end of its run)."""
    walls: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def run(i: int, s: StreamSession, fid: str) -> None:
        next_at = time.monotonic() + every * i / len(students)
        while next_at < end:
            time.sleep(max(0.0, next_at - time.monotonic()))
            t0 = time.perf_counter()
            s.rerun(page="class", fragment_id=fid)
            with lock:
                walls.append(time.perf_counter() - t0)
            next_at += every

    threads = [
        threading.Thread(target=run, args=(i, s, fid)) for i, (s, fid) in enumerate(students)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return walls


def measure(store: str, n: int, rounds: int, window: float) -> dict:
    key = secrets.token_urlsafe(24)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONVAE_TEACHER_KEY": key}
    env.update({"CONVAE_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    redis_proc = None
    if store == "redis":
        redis_proc, env["CONVAE_CLASS_STORE"] = start_redis()
    app, base = start_app(env)
    sessions = []
    try:
        teacher, code = open_class(base, key)
        sessions.append(teacher)
        students = []
        for _ in range(n):
            s = StreamSession(base)
            sessions.append(s)
            s.rerun(query=f"join={code}", page="class")
            # A student's page has one polling fragment: the poll (its interval: the app's).
            ((fid, every),) = s.fragments.items()
            students.append((s, fid))
        poll_window(students, 2 * every, every)  # warm: first polls, caches
        out = {"idle_cpu_s_per_s": [], "cpu_ms_per_poll": [], "polls": [], "redis_ms": []}
        walls: list[float] = []
        for _ in range(rounds):
            c0, t0 = cpu_s(app.pid), time.monotonic()
            time.sleep(window)
            idle = (cpu_s(app.pid) - c0) / (time.monotonic() - t0)
            r0 = cpu_s(redis_proc.pid) if redis_proc else 0.0
            c0, t0 = cpu_s(app.pid), time.monotonic()
            got = poll_window(students, window, every)
            spent = cpu_s(app.pid) - c0 - idle * (time.monotonic() - t0)
            out["idle_cpu_s_per_s"].append(idle)
            out["cpu_ms_per_poll"].append(1000 * spent / len(got))
            out["polls"].append(len(got))
            if redis_proc:
                out["redis_ms"].append(1000 * (cpu_s(redis_proc.pid) - r0) / len(got))
            walls += got
        walls.sort()
        return {
            "store": store,
            "students": n,
            "poll_every_s": every,
            "window_s": window,
            "rounds": rounds,
            "server_cpu_ms_per_poll_median": statistics.median(out["cpu_ms_per_poll"]),
            "server_cpu_ms_per_poll": out["cpu_ms_per_poll"],
            "redis_server_cpu_ms_per_poll_median": (
                statistics.median(out["redis_ms"]) if out["redis_ms"] else None
            ),
            "idle_server_cpu_s_per_s": out["idle_cpu_s_per_s"],
            "polls_per_window": out["polls"],
            "poll_wall_ms_p50": 1000 * walls[len(walls) // 2],
            "poll_wall_ms_p95": 1000 * walls[int(len(walls) * 0.95)],
        }
    finally:
        for s in sessions:
            s.close()
        app.terminate()
        app.wait(20)
        if redis_proc:
            redis_proc.terminate()
            redis_proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=20, help="students polling (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="idle/polling rounds (default 3)")
    ap.add_argument("--window", type=float, default=15.0, help="seconds a window (default 15)")
    ap.add_argument("--store", default="memory,redis", help="memory, redis or both")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "class_poll.json"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    results = [
        measure(store, args.students, args.rounds, args.window) for store in args.store.split(",")
    ]
    report = {
        "what": "server CPU per student poll of a live class (Streamlit fragment rerun)",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
