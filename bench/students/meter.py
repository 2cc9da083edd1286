"""What a load costs: CPU time and memory of processes, read from /proc, over a window.

The server's CPU time per click is the figure that carries over to another machine (a
core gives 1000 ms of CPU a second). Both load generators (Locust's simulated students and
the Chromium driver of ``bench/capacity.py --validate``) open a :class:`Window` once every
session is open and its first run is done, and close it after a fixed time: the window
holds only steady clicking, not the sessions' first (full) runs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) used so far by process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu_s(pid: int, name_has: tuple[str, ...] = ()) -> float:
    """CPU seconds of ``pid`` and every live descendant (optionally only those whose
    command name contains one of ``name_has``, e.g. Chromium's)."""
    parent: dict[int, int] = {}
    name: dict[int, str] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        p = int(entry.name)
        name[p] = stat[stat.index("(") + 1 : stat.rindex(")")].lower()
        fields = stat.rsplit(")", 1)[1].split()
        parent[p], ticks[p] = int(fields[1]), int(fields[11]) + int(fields[12])

    def under(p: int) -> bool:
        while p > 1:
            if p == pid:
                return True
            p = parent.get(p, 0)
        return False

    total = sum(
        t
        for p, t in ticks.items()
        if under(p) and (not name_has or any(n in name[p] for n in name_has))
    )
    return total / TICKS


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (every core, every process: user,
    nice, system, irq, softirq, steal from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def family(pid: int) -> list[int]:
    """``pid`` and its live descendants: the server, or with ``serve.py --replicas`` the
    whole deployment (HAProxy, the replicas, the local redis-server)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [pid], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def niced_threads_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid`` that runs at a lower priority than the
    process (a higher nice value): the server's trainings, which nice their own thread
    (convae/training_queue.py, ``training_resources``) and do their torch work in it.

    Returns:
        Thread id -> CPU seconds so far.
    """
    base = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        if int(fields[16]) > base:  # field 19 of stat: nice
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


def memory_mb(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private clean + dirty) of process ``pid``, in MB."""
    kb: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        kb[key] = int(value.split()[0])
    return {
        "rss": kb["Rss"] / 1024,
        "pss": kb["Pss"] / 1024,
        "uss": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024,
    }


@dataclass
class Window:
    """CPU of the server and of this load generator over a stretch of steady load.

    Args:
        server_pid: the app server's process.
        generator_cpu: how to read the generator's CPU seconds (its own process for
            Locust; Chromium's processes for the browser driver).
    """

    server_pid: int
    generator_cpu: object  # Callable[[], float]

    def _server(self) -> tuple[float, dict[tuple[int, int], float]]:
        """CPU seconds of the server's processes, and of each of their niced threads."""
        cpu, niced = 0.0, {}
        for p in family(self.server_pid):
            try:
                cpu += cpu_s(p)
                niced.update({(p, tid): c for tid, c in niced_threads_cpu_s(p).items()})
            except OSError:  # ended meanwhile
                continue
        return cpu, niced

    def _memory(self) -> dict[str, float]:
        total = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
        for p in family(self.server_pid):
            try:
                for k, v in memory_mb(p).items():
                    total[k] += v
            except OSError:
                continue
        return total

    def start(self) -> None:
        """Open the window: read both CPU clocks, the wall clock and the server's memory
        (the server: its process and their children, e.g. replicas behind HAProxy)."""
        self.t0 = time.perf_counter()
        self.server0, self.trainings0 = self._server()
        self.gen0 = self.generator_cpu()
        self.machine0 = machine_cpu_s()
        self.memory_start = self._memory()

    def stop(self, clicks: int) -> dict:
        """Close the window.

        Args:
            clicks: requests that finished inside it.

        Returns:
            Seconds, CPU seconds of server and generator, per-click figures, memory.
        """
        wall = time.perf_counter() - self.t0
        server, niced = self._server()
        server -= self.server0
        gen = self.generator_cpu() - self.gen0
        trainings = sum(c - self.trainings0.get(tid, 0.0) for tid, c in niced.items())
        machine = machine_cpu_s() - self.machine0
        per = 1000 / clicks if clicks else float("nan")
        return {
            "window_s": wall,
            "clicks": clicks,
            "clicks_per_s": clicks / wall,
            "server_cpu_s": server,
            "server_cpu_ms_per_click": server * per,
            "server_cpu_share": server / wall,  # cores busy on average
            # of which the trainings' own (niced) threads: their torch work
            "server_training_threads_cpu_s": trainings,
            "generator_cpu_s": gen,
            "generator_cpu_ms_per_click": gen * per,
            "generator_cpu_share": gen / wall,
            # everything else on the machine (other people's work on a shared one)
            "other_cpu_share": max(0.0, machine - server - gen) / wall,
            "server_memory_mb_start": self.memory_start,
            "server_memory_mb_end": self._memory(),
        }
