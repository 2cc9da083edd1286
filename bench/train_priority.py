"""How a training inside one server thread should share the CPU with viewers' threads.

A Streamlit server runs every session's script in its own thread of one process, and the
Train page runs ``fit()`` in its session's thread. This measures, in one process as on
the server, what the training's thread settings do to the viewers beside it:

1. Facts: does ``torch.set_num_threads`` called in one thread change the thread count of
   threads that already ran torch work, and of threads started later (Streamlit starts a
   thread per session run)? Does ``convae.training_queue.set_thread_num_threads`` stay in its
   thread? Does a per-thread setting of 1 really use one core (process CPU / wall)?
2. Viewer latency: ``--viewers`` threads each repeat a Layers-like action (trace one
   test image through a shipped model, build one step's activation figure and serialise
   it as Streamlit does) with a short think time, while one real ``fit()`` on CIFAR-10
   runs in another thread under each setting below. Per setting: the viewers' p50/p95
   action latency and the training's images/s, in alternating rounds (medians).

Settings: no training; training with the server's default (all cores, nice 0); one
thread set process-wide (``torch.set_num_threads(1)``); one thread for the training
thread only; nice 10 on the training thread; one thread + nice 10
(``convae.training_queue.training_resources()``, the default).

Usage: python bench/train_priority.py [--rounds 3] [--window 6] [--viewers 2]
Writes bench/results/train_priority.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convae.checkpoints import load_checkpoint  # noqa: E402
from convae.data import load_dataset  # noqa: E402
from convae.figures import activation_grid  # noqa: E402
from convae.models import trace  # noqa: E402
from convae.train import TrainConfig, configure_threads, fit  # noqa: E402
from convae.training_queue import (  # noqa: E402
    set_thread_num_threads,
    training_resources,
    usable_cores,
)

THINK_S = 0.05  # a viewer's pause between actions: clicks, not a tight loop


def _thread_ticks() -> dict[str, int]:
    """utime + stime (clock ticks) of each thread of this process."""
    ticks = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        ticks[task.name] = int(fields[11]) + int(fields[12])
    return ticks


def _thread_nices() -> dict[str, int]:
    """The nice value of each thread of this process."""
    nices = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            nices[task.name] = int((task / "stat").read_text().rsplit(")", 1)[1].split()[16])
        except OSError:
            continue
    return nices


def facts() -> dict:
    """What torch's thread settings do across threads (see the module docstring)."""
    out: dict[str, int | float] = {}
    torch.set_num_threads(2)
    ready, go = threading.Event(), threading.Event()

    def earlier() -> None:
        torch.get_num_threads()  # has run torch's per-thread first use
        ready.set()
        go.wait()
        out["earlier thread, after another thread's torch.set_num_threads(1)"] = (
            torch.get_num_threads()
        )

    def later(key: str) -> None:
        out[key] = torch.get_num_threads()

    def run(fn: Callable[[], None]) -> None:
        t = threading.Thread(target=fn)
        t.start()
        t.join()

    e = threading.Thread(target=earlier)
    e.start()
    ready.wait()

    def global_setter() -> None:
        torch.set_num_threads(1)
        run(lambda: later("thread started later, after torch.set_num_threads(1)"))

    run(global_setter)
    go.set()
    e.join()
    torch.set_num_threads(2)

    def local_setter() -> None:
        set_thread_num_threads(1)
        out["the setting thread, after set_thread_num_threads(1)"] = torch.get_num_threads()
        run(lambda: later("thread started later, after set_thread_num_threads(1)"))

    run(local_setter)

    # Is the per-thread setting obeyed by the convolutions? Count the threads of this
    # process that did the work of a conv loop started from a fresh thread (CPU ticks per
    # thread from /proc: independent of how busy the rest of the machine is).
    x = torch.rand(256, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(16, 16, 3, padding=1).to(memory_format=torch.channels_last)

    def busy(n: int) -> None:
        set_thread_num_threads(n)
        with torch.no_grad():
            for _ in range(3):
                conv(x)
            before = _thread_ticks()
            for _ in range(40):
                conv(x)
            after = _thread_ticks()
        spent = sorted((after[k] - before.get(k, 0) for k in after), reverse=True)
        out[f"threads that ran a conv loop with per-thread {n}"] = sum(
            1 for d in spent if d >= 0.2 * spent[0]
        )

    run(lambda: busy(1))
    run(lambda: busy(2))

    # nice is per thread on Linux: does it stay on the training thread, and do the
    # OpenMP workers it starts get it too?
    def niced() -> None:
        with training_resources(threads=2, nice=10), torch.no_grad():
            before = _thread_ticks()
            for _ in range(40):
                conv(x)
            after = _thread_ticks()
            nices = _thread_nices()
        me = str(threading.get_native_id())
        workers = [k for k in after if k != me and after[k] - before.get(k, 0) > 0]
        out["nice of the training thread inside training_resources(nice=10)"] = nices[me]
        out["nice of the busiest other thread (its OpenMP worker)"] = nices[
            max(workers, key=lambda k: after[k] - before.get(k, 0))
        ]
        out["nice of the training thread after training_resources"] = _thread_nices()[me]

    run(niced)
    out["nice of the main thread meanwhile"] = _thread_nices()[str(threading.get_native_id())]
    return out


class Viewer(threading.Thread):
    """Repeats a Layers-like action until told to stop; records each action's seconds."""

    def __init__(self, model, images: torch.Tensor, seed: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.model, self.images, self.seed, self.stop = model, images, seed, stop
        self.times: list[float] = []

    def run(self) -> None:
        i = self.seed
        steps = None
        while not self.stop.is_set():
            t = time.perf_counter()
            x = self.images[i % len(self.images)][None].float() / 255
            acts = trace(self.model, x)
            steps = steps or len(acts)
            name, a = acts[i % steps]
            activation_grid(a, name, "layer").to_json()  # what st.plotly_chart sends
            self.times.append(time.perf_counter() - t)
            i += 1
            time.sleep(THINK_S)


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


SETTINGS: dict[str, Callable[[], AbstractContextManager] | None] = {
    "no training": None,
    "training, server default (all cores, nice 0)": nullcontext,
    "training, torch.set_num_threads(1) process-wide": None,  # special-cased below
    "training, 1 thread for its own thread": lambda: training_resources(threads=1, nice=0),
    "training, nice 10 (all cores)": lambda: training_resources(threads=usable_cores(), nice=10),
    "training, 1 thread + nice 10 (training_resources())": training_resources,
}


def one_window(setting: str, data, model, window: float, viewers: int) -> dict:
    """Viewers for ``window`` seconds beside a training under ``setting``."""
    configure_threads()  # the server's start: all cores (app.py)
    stop = threading.Event()
    seen = [0]  # images trained so far, read at the window's start and end
    cfg = TrainConfig(decoder="transpose", epochs=50, limit=50_000, batch_size=32)

    def trainer() -> None:
        def cb(ev) -> bool:
            if ev.kind == "step" and not stop.is_set():
                seen[0] += cfg.batch_size
            return stop.is_set()

        if setting.endswith("process-wide"):
            torch.set_num_threads(1)
            ctx = nullcontext()
        else:
            ctx = SETTINGS[setting]()
        with ctx:
            fit(cfg, data, cb)

    tr = None
    if SETTINGS[setting] is not None or setting.endswith("process-wide"):
        tr = threading.Thread(target=trainer, daemon=True)
        tr.start()
        time.sleep(1.0)  # past fit()'s set-up, into its steady steps
    images = data.test.images[:200]
    vs = [Viewer(model, images, k * 7, stop) for k in range(viewers)]
    for v in vs:
        v.start()
    seen0, t0 = seen[0], time.perf_counter()
    time.sleep(window)
    trained = (seen[0] - seen0) / (time.perf_counter() - t0)
    stop.set()
    for v in vs:
        v.join()
    if tr is not None:
        tr.join()
    torch.set_num_threads(usable_cores())
    times = [t for v in vs for t in v.times[1:]]  # each viewer's first action warms up
    return {
        "viewer_p50_ms": 1000 * statistics.median(times),
        "viewer_p95_ms": 1000 * _percentile(times, 0.95),
        "actions": len(times),
        "train_images_per_s": trained if tr is not None else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--window", type=float, default=6.0, help="seconds per window (default 6)")
    ap.add_argument("--viewers", type=int, default=2, help="viewer threads (default 2)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/train_priority.json"))
    args = ap.parse_args()

    f = facts()
    print("Facts:")
    for k, v in f.items():
        print(f"  {v:>5}  {k}")

    data = load_dataset("cifar10")
    model = load_checkpoint(ROOT / "checkpoints/cifar10-transpose.pt").model.eval()
    runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    for r in range(args.rounds):
        order = list(SETTINGS) if r % 2 == 0 else list(reversed(SETTINGS))
        for s in order:
            res = one_window(s, data, model, args.window, args.viewers)
            runs[s].append(res)
            print(f"round {r + 1} {s}: {res}", flush=True)

    rows = []
    for s, rs in runs.items():
        ips = [x["train_images_per_s"] for x in rs if x["train_images_per_s"] is not None]
        rows.append(
            {
                "setting": s,
                "viewer_p50_ms": statistics.median(x["viewer_p50_ms"] for x in rs),
                "viewer_p95_ms": statistics.median(x["viewer_p95_ms"] for x in rs),
                "train_images_per_s": statistics.median(ips) if ips else None,
            }
        )
    print(f"\n{'setting':55s} {'viewer p50':>10s} {'p95':>8s} {'train img/s':>11s}")
    for row in rows:
        ips = row["train_images_per_s"]
        print(
            f"{row['setting']:55s} {row['viewer_p50_ms']:8.1f}ms {row['viewer_p95_ms']:6.1f}ms "
            f"{'-' if ips is None else f'{ips:,.0f}':>11s}"
        )
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": usable_cores(),
        "load_before": os.getloadavg(),
        "args": vars(args),
        "facts": f,
        "rows": rows,
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"\nwrote {args.out}; load average now {os.getloadavg()}")


if __name__ == "__main__":
    main()
