"""Where a test pass's CPU goes: one pass of ./dev test (by default pass 2, the browser
tests as on a fresh machine; ``--pass 1``, the main pass) run once
while every process on the machine is sampled, its CPU seconds summed by kind (Chromium's
renderers, its browser and GPU processes, the app servers, pytest, Playwright's driver,
HAProxy, redis-server), beside the machine's busy CPU seconds from /proc/stat.

    .venv/bin/python bench/test_processes.py [--pass 1|2] [--out FILE]
    (default: bench/results/test_processes.json, test_processes-pass1.json for pass 1)

Run it with nothing else running: every process on the machine is counted. A process is
sampled every 0.5 s, so one that lives less than that is missed (the total beside the
machine's busy seconds says how much was).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from bench.common import ROOT, add_out_argument, run_stamp, write_results  # noqa: E402
from bench.test_times import FRESH_PASS, MAIN_PASS, fresh_pass_env, run_pytest  # noqa: E402

EVERY_S = 0.5
CHROMIUM_TYPES = ("renderer", "gpu-process", "utility", "zygote")


def kind(p: psutil.Process) -> str:
    """What a process is, for the sums."""
    name, cmd = p.name(), " ".join(p.cmdline())
    if "chrom" in name:
        return next(
            (f"chromium {t}" for t in CHROMIUM_TYPES if f"--type={t}" in cmd), "chromium browser"
        )
    if "node" in name:
        return "playwright driver (node)"
    if "serve.py" in cmd or "streamlit" in cmd:
        return "app servers"
    if "pytest" in cmd or "exec(eval(sys.stdin.readline()))" in cmd:  # xdist's workers
        return "pytest and its workers"
    if "-m convae" in cmd or "torch.distributed.run" in cmd:
        return "convae command line runs (and torchrun's workers)"
    if name in ("haproxy", "redis-server"):
        return name
    if "python" in name:
        return "other python"
    return "other"


def busy_cpu_s() -> float:
    """The machine's busy CPU seconds since boot (all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Every EVERY_S, each process's CPU seconds; a process is counted from its first
    sample when it was there at the start, else from its birth."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.t0 = time.time()
        self.seen: dict[tuple[int, float], list] = {}  # (pid, birth): [kind, first, last]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for p in psutil.process_iter():
                try:
                    t = p.cpu_times()
                    key = (p.pid, p.create_time())
                    if key not in self.seen:
                        self.seen[key] = [kind(p), t.user + t.system, 0.0]
                    self.seen[key][2] = t.user + t.system
                except psutil.Error:
                    continue
            self.done.wait(EVERY_S)

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (_, born), (k, first, last) in self.seen.items():
            out[k] = out.get(k, 0.0) + last - (first if born < self.t0 else 0.0)
        return dict(sorted(((k, round(v, 1)) for k, v in out.items()), key=lambda kv: -kv[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pass", dest="which", type=int, choices=(1, 2), default=2)
    add_out_argument(p, "test_processes.json")
    args = p.parse_args()
    if args.which == 1 and args.out.endswith("/test_processes.json"):
        args.out = args.out.replace("test_processes.json", "test_processes-pass1.json")
    pytest_args = MAIN_PASS if args.which == 1 else FRESH_PASS
    result = run_stamp(
        command=f"python bench/test_processes.py --pass {args.which}", pytest_args=pytest_args
    )
    with tempfile.TemporaryDirectory(prefix="processes-data-") as root:
        # pass 1 reads the shared data unpacked into ./data (./dev sets CONVAE_DATA so)
        env = (
            {**os.environ, "CI": "true", "CONVAE_DATA": str(ROOT / "data")}
            if args.which == 1
            else fresh_pass_env(root)
        )
        sampler = Sampler()
        busy0, t0 = busy_cpu_s(), time.monotonic()
        sampler.start()
        proc = run_pytest(pytest_args, env)
        sampler.done.set()
        sampler.join()
        wall, busy = time.monotonic() - t0, busy_cpu_s() - busy0
    by_kind = sampler.totals()
    lines = proc.stdout.splitlines()
    result.update(
        failures=[ln for ln in lines if ln.startswith("FAILED")],
        exit_status=proc.returncode,
        summary=proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "",
        wall_s=round(wall, 1),
        machine_busy_cpu_s=round(busy, 1),
        cores_busy=round(busy / wall, 2),
        sampled_cpu_s=round(sum(by_kind.values()), 1),
        cpu_s_by_kind=by_kind,
    )
    if proc.returncode:  # what a failure said, to find its cause
        result["output_tail"] = (proc.stdout + proc.stderr)[-30000:]
    for k, v in by_kind.items():
        if v >= 0.5:
            print(f"{v:8.1f} s  {k}")
    print(f"{result['summary']}; machine busy {busy:.0f} CPU s in {wall:.0f} s")
    write_results(args.out, result)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
