"""Where the suite's time goes: each test's wall time and CPU time, written as JSON.

On this shared 2-core machine a test's wall time says as much about the other jobs as
about the test (the load average runs 5 to 12), while its CPU time barely moves with the
load. So for every test, phase by phase (setup, call, teardown), this records the wall
seconds and the CPU seconds of the pytest process and of everything it started: the
children it has waited for (``getrusage(RUSAGE_CHILDREN)``) and the ones still running,
read from ``/proc/<pid>/stat`` (the session's app server, Chromium and its helpers,
torchrun's workers). A long-lived server's CPU goes to the test during which it was spent.

Switched on by ``CONVAE_TEST_CPU=FOLDER`` (tests/conftest.py registers it then; off, it
costs nothing): each pytest run writes ``FOLDER/pass1.json`` (or ``pass2.json`` in the
fresh-machine pass, ``CONVAE_FRESH_PASS=1``), and each pytest-xdist worker its tests to
``pass1-gw0.json``, ... ``bench/test_times.py`` runs both passes
with it and sums them up (slowest tests, per-file totals, load average).
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import pytest

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process and of its waited-for children)."""
    table: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone between the listing and the read
            continue
        # The command name (field 2) may hold spaces and parentheses: split after its ")".
        rest = stat[stat.rindex(b")") + 2 :].split()
        ppid = int(rest[1])
        utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
        table[int(name)] = (ppid, (utime + stime + cutime + cstime) / _TICK)
    return table


def descendants_cpu(root: int) -> float:
    """CPU seconds of the live processes below ``root`` (each with its reaped children).

    When one of them ends, its parent's wait moves its seconds into that parent's
    ``cutime`` (or into ``root``'s RUSAGE_CHILDREN), so the sum of this and root's own
    counters only ever grows.
    """
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        total += table[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def sample() -> tuple[float, float, float]:
    """(wall clock, CPU of this process, CPU of everything it started), in seconds."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = me.ru_utime + me.ru_stime
    started = kids.ru_utime + kids.ru_stime + descendants_cpu(os.getpid())
    return time.perf_counter(), own, started


class CpuTimes:
    """A pytest plugin that records each test's phases and writes them at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tests: dict[str, dict] = {}
        self.start = sample()
        self.load_start = os.getloadavg()
        self.loads: list[float] = []

    def _phase(self, item: pytest.Item, when: str, before: tuple) -> None:
        after = sample()
        rec = self.tests.setdefault(item.nodeid, {"outcome": "passed"})
        rec[when] = {
            "wall": round(after[0] - before[0], 3),
            "cpu": round(after[1] - before[1], 3),
            "cpu_children": round(after[2] - before[2], 3),
        }

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item):
        self.loads.append(os.getloadavg()[0])
        before = sample()
        try:
            return (yield)
        finally:
            self._phase(item, "setup", before)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        before = sample()
        try:
            return (yield)
        finally:
            self._phase(item, "call", before)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem):
        before = sample()
        try:
            return (yield)
        finally:
            self._phase(item, "teardown", before)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rec = self.tests.setdefault(report.nodeid, {"outcome": "passed"})
        if report.failed:
            rec["outcome"] = "failed"
        elif report.skipped and rec["outcome"] == "passed":
            rec["outcome"] = "skipped"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        end = sample()
        name = "pass2" if os.environ.get("CONVAE_FRESH_PASS") == "1" else "pass1"
        # Under pytest-xdist each worker writes its tests to pass1-gw0.json, ...; the
        # controller, which runs no test, writes pass1.json: the pass's wall time and the
        # CPU of everything it started (the workers and what they started).
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker:
            name = f"{name}-{worker}"
        self.folder.mkdir(parents=True, exist_ok=True)
        doc = {
            "pass": name,
            "args": [str(a) for a in session.config.args],
            "torch_threads": os.environ.get("CONVAE_TEST_THREADS") or "1",
            "wall": round(end[0] - self.start[0], 1),
            "cpu": round(end[1] - self.start[1], 1),
            "cpu_children": round(end[2] - self.start[2], 1),
            # the whole process, its start (imports before this plugin was made) included
            "cpu_process": round(end[1], 1),
            "load_start": self.load_start,
            "load_end": os.getloadavg(),
            "load_mean_1min": round(sum(self.loads) / max(len(self.loads), 1), 2),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tests": self.tests,
        }
        (self.folder / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
