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

    def start(self) -> None:
        """Open the window: read both CPU clocks, the wall clock and the server's memory."""
        self.t0 = time.perf_counter()
        self.server0 = cpu_s(self.server_pid)
        self.gen0 = self.generator_cpu()
        self.memory_start = memory_mb(self.server_pid)

    def stop(self, clicks: int) -> dict:
        """Close the window.

        Args:
            clicks: requests that finished inside it.

        Returns:
            Seconds, CPU seconds of server and generator, per-click figures, memory.
        """
        wall = time.perf_counter() - self.t0
        server = cpu_s(self.server_pid) - self.server0
        gen = self.generator_cpu() - self.gen0
        per = 1000 / clicks if clicks else float("nan")
        return {
            "window_s": wall,
            "clicks": clicks,
            "clicks_per_s": clicks / wall,
            "server_cpu_s": server,
            "server_cpu_ms_per_click": server * per,
            "server_cpu_share": server / wall,  # cores busy on average
            "generator_cpu_s": gen,
            "generator_cpu_ms_per_click": gen * per,
            "generator_cpu_share": gen / wall,
            "server_memory_mb_start": self.memory_start,
            "server_memory_mb_end": memory_mb(self.server_pid),
        }
