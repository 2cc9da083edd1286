"""What a live class costs the server per call: a student's poll above all.

A following student's screen polls the class's version (``ClassService.version``: one
dict lookup in the in-process store, one GET in Redis) and reads the whole state only
when it changed; it also sends a heartbeat every few polls, and an answer now and then.
This measures each of those calls on both stores, in this process, against a real
redis-server on a free loopback port (no persistence), with one class of ``--students``
seats and an open question:

* wall time per call (``perf_counter``), what a page waits;
* the app process's CPU time per call (``process_time``): what N students polling cost the
  app server (N x polls per second x this);
* for Redis, the redis-server process's CPU per call, from /proc/<pid>/stat (user +
  system clock ticks over the whole batch).

Stores alternate round by round so background load hits both alike; medians over the
rounds are reported, with the load average before and after (this is a shared machine).

Usage::

    python bench/class_store.py [--rounds 5] [--students 30] [--out bench/results/class_store.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.common import add_out_argument, write_results  # noqa: E402
from bench.students.meter import cpu_s  # noqa: E402
from convae.classroom import ClassService, TeacherKey, choice_question, open_store  # noqa: E402

KEY = "bench-teacher-key-0123456789abcdef"
# calls per batch: enough that a batch lasts well over the clock's and /proc's resolution
CALLS = {"memory": 100_000, "redis": 10_000}


def start_redis(folder: Path) -> tuple[subprocess.Popen, int]:
    """redis-server on a free port; returns once it answers PING."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, "--dir", str(folder)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            return proc, port
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def setup(spec: str, students: int) -> dict[str, Callable[[], object]]:
    """A class with ``students`` seats and an open question; the calls to measure."""
    key = TeacherKey(KEY)
    svc = ClassService(open_store(spec), key)
    lead = svc.start(key.verify(KEY))
    seats = [svc.join(lead.info.code) for _ in range(students)]
    svc.publish(lead, {"page": "layer-by-layer", "params": {"step": "conv1", "i": "3"}})
    asked = svc.ask(lead, choice_question("Ready?", ["yes", "no"]))
    seat = seats[0]
    return {
        "poll (svc.version)": lambda: svc.version(seat),
        "poll, store only (store.version)": lambda: svc.store.version(seat.info.class_id),
        "state (svc.state)": lambda: svc.state(seat),
        "heartbeat (svc.heartbeat)": lambda: svc.heartbeat(seat, True),
        "answer (svc.answer)": lambda: svc.answer(seat, asked.qid, "yes"),
        "teacher's tally (svc.tally)": lambda: svc.tally(lead),
    }


def batch(call: Callable[[], object], n: int, server_pid: int | None) -> dict[str, float]:
    """One batch of ``n`` calls: microseconds per call (wall, app CPU, server CPU)."""
    server0 = cpu_s(server_pid) if server_pid else 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        call()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    out = {"wall_us": wall / n * 1e6, "app_cpu_us": cpu / n * 1e6}
    if server_pid:
        out["redis_cpu_us"] = (cpu_s(server_pid) - server0) / n * 1e6
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds per store (default: 5)")
    p.add_argument("--students", type=int, default=30, help="seats in the class (default: 30)")
    add_out_argument(p, "class_store.json")
    args = p.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp))
        try:
            stores = {
                "memory": (setup("memory", args.students), None),
                "redis": (setup(f"redis://127.0.0.1:{port}/0", args.students), proc.pid),
            }
            runs: dict[str, dict[str, list[dict]]] = {s: {} for s in stores}
            for _ in range(args.rounds):
                for store, (calls, pid) in stores.items():
                    for name, call in calls.items():
                        n = CALLS[store] // (1 if "poll" in name else 5)
                        runs[store].setdefault(name, []).append(batch(call, n, pid))
            version = redis.Redis(port=port).info("server")["redis_version"]
        finally:
            proc.terminate()
            proc.wait()
    medians = {
        store: {
            name: {k: round(statistics.median(r[k] for r in rs), 2) for k in rs[0]}
            for name, rs in per.items()
        }
        for store, per in runs.items()
    }
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), "
        f"Python {platform.python_version()}",
        "redis_server": version,
        "redis_py": redis.__version__,
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "rounds": args.rounds,
        "students": args.students,
        "calls_per_batch": {"poll": CALLS, "others": {k: v // 5 for k, v in CALLS.items()}},
        "median_per_call": medians,
    }
    print(json.dumps(result, indent=2))
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
