"""Training speed on this machine: how close ConvAE's trainer comes to what the cores can
do, each speed change alone, and the course pipeline beside ours in one run.

Every pipeline runs in a process of its own (a *worker*: this script with ``--worker``),
started with the environment and thread count it runs with for real, and the workers
take turns: each round, every pipeline of a section trains the same number of images in
a rotating order, so load from other work on a shared machine hits all alike. Figures
are medians over the rounds with their spread (lowest-highest), by the wall clock and
per second of the worker's own CPU time (``time.process_time``), which other work on the
machine disturbs far less. The sections:

1. ``roofline``: FLOPs per training image by layer (by hand and by
   ``torch.utils.flop_counter``), bytes per image, measured peaks (bench/roofline.py).
2. ``changes``: each change to the training step alone, against the step before it:
   fused Adam, bf16 convolutions, torch.compile (its compile time counted apart),
   larger batches, and 1 or 2 threads with the OpenMP runtime's waiting threads
   spinning (its default) or sleeping, on a quiet machine and while a second process
   keeps one core busy.
3. ``throughput``: the course pipeline (in memory, and ImageFolder on the JPEG files),
   the previous default of ours and the default of ``python -m convae train``,
   quiet and with a busy core; achieved GFLOP/s and the fraction of the measured peak.
4. ``time``: time to the target PSNR (21 dB) on the full test split, the course and
   ours (the default recipe of ``python -m convae train`` and the Train page), seed
   by seed, alternating, quiet and with a busy core. The test PSNR is scored every 5,000
   training images outside the timed part, so the time is the training seconds up to
   the first scoring at or above the target.
5. ``page``: the Train page's default run (``convae.recipes.classroom_config`` with the
   page's settings, fit() with a ``convae.progress.LiveRun`` as the page draws it, one
   thread at nice +10 as the server runs it): seconds from the start to the first
   redrawn pictures whose PSNR is at least 18 dB, quiet and with a busy core.
6. ``recipes`` (run on its own with ``--only recipes``; machine-independent, so it needs
   no quiet machine): batch size and learning rate, each with its 12-epoch test PSNR and
   the training images it takes to 21 dB, over 3 seeds.

Usage: python bench/train_speed.py [--rounds 5] [--seeds 3] [--quick] [--only SECTIONS]
Writes bench/results/train_speed.json (date, torch version, load average before and
after, every round's raw figures) and prints docs/training.md's tables from it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import roofline  # noqa: E402
from course import CourseRun  # noqa: E402

from convae.__main__ import OPENMP_ENV  # noqa: E402
from convae.data import _find_cifar_folder, data_root, load_dataset  # noqa: E402
from convae.models import AEConfig, ConvAutoencoder  # noqa: E402
from convae.train import TrainConfig, Trainer, evaluate, fit  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "train_speed.json"
RECIPES = ROOT / "bench" / "results" / "train_recipes.json"
TARGET_DB = 21.0
PAGE_DB = 18.0
EVERY = 5000  # training images between two scorings of the test PSNR (time section)
SECTIONS = ("roofline", "changes", "throughput", "time", "page", "recipes")
CORES = os.cpu_count() or 1

# The step as it was before this benchmark's changes (TrainConfig of 2026-11-26).
BEFORE = {"precision": "fp32", "batch_size": 32, "lr": 2e-3}
SPIN = {"OMP_WAIT_POLICY": "ACTIVE"}  # GNU OpenMP's default, stated so it wins over ours


# ================================================================== workers


class Worker:
    """One pipeline in a process of its own, answering JSON commands on its stdin.

    Args:
        spec: what to run (see :func:`serve`), with "threads" and optional "env".
    """

    def __init__(self, spec: dict) -> None:
        env = {**os.environ, **OPENMP_ENV, **spec.get("env", {})}
        self.spec = spec
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            cwd=ROOT,
        )
        self.ready = self.ask({"op": "ready"})

    def ask(self, cmd: dict) -> dict:
        """Send one command and wait for its answer."""
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.spec} ended without an answer")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def run_once(spec: dict) -> dict:
    """Start a worker, let it do its one run, return its answer."""
    w = Worker(spec)
    try:
        return w.ask({"op": "run"})
    finally:
        w.close()


@contextlib.contextmanager
def busy_core(on: bool = True) -> Iterator[None]:
    """A second process that keeps one core busy (a Python loop) while inside."""
    if not on:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let the scheduler place it
        yield
    finally:
        proc.terminate()
        proc.wait()


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# ------------------------------------------------------------------ inside a worker


def _data(spec: dict):
    data = load_dataset(spec.get("data", "cifar10"), root=data_root())
    if spec.get("test_limit"):
        data = dataclasses.replace(data, test=data.test.head(spec["test_limit"]))
    return data


class _Chunks:
    """Our trainer, stepped ``n`` images at a time (a throughput worker)."""

    def __init__(self, spec: dict) -> None:
        data = _data(spec)
        cfg = TrainConfig(**{"epochs": 1, "seed": spec.get("seed", 0), **spec["recipe"]})
        self.trainer = t = Trainer(cfg, data, callback=lambda ev: None)
        if spec.get("adam") == "loop":  # the optimiser before fused Adam
            t.opt = torch.optim.Adam(t.model.parameters(), lr=cfg.lr, foreach=False)
            t.sched = torch.optim.lr_scheduler.LambdaLR(t.opt, lambda s: 1.0)
            t.step_fn = t.make_step()
        if spec.get("compile"):
            t.step_fn = _compiled_step(t)
        self.order = torch.randperm(len(t.train_set), generator=torch.Generator().manual_seed(0))
        self.at = 0
        w, _ = self.train(t.batch * 10)  # warm: oneDNN's kernels, and compiling if asked
        self.warm_s = w

    def train(self, n: int) -> tuple[float, float]:
        t = self.trainer
        steps = max(1, round(n / t.batch))
        w, c = time.perf_counter(), time.process_time()
        for _ in range(steps):
            if self.at + t.batch > len(self.order):
                self.at = 0
            t.train_step(self.order[self.at : self.at + t.batch])
            self.at += t.batch
        return time.perf_counter() - w, time.process_time() - c


def _compiled_step(t: Trainer):
    """The trainer's step with its loss (forward, sigmoid, MSE) through torch.compile."""
    from convae.steps import reconstruction_loss, update

    bf16 = t.precision == "bf16"
    loss_fn = torch.compile(lambda x, y: reconstruction_loss(t.model, x, y, t.cfg.loss, bf16))

    def step(x, target, batch_images, stop):
        loss = loss_fn(x, target)
        update(loss, t.opt, t.sched)
        return loss.item(), False

    return step


class _Course:
    def __init__(self, spec: dict) -> None:
        data = _data(spec)
        if spec["source"] == "folder":
            from torchvision import transforms
            from torchvision.datasets import ImageFolder

            folder = _find_cifar_folder(data_root())
            train = ImageFolder(str(folder / "train"), transform=transforms.ToTensor())
        else:
            train = data.train
        self.run = CourseRun(train, spec.get("seed", 0))
        self.warm_s = self.run.train_images(400)[0]

    def train(self, n: int) -> tuple[float, float]:
        return self.run.train_images(n)


class Scorer:
    """Training seconds (wall and CPU) of a run whose test PSNR is scored every ``every``
    training images: the clock runs only while training, not while scoring.

    Attributes:
        rows: [{"images", "psnr", "train_s", "cpu_s"}] at each scoring.
    """

    def __init__(self, test, every: int, target: float) -> None:
        self.test, self.every, self.target = test, every, target
        self.rows: list[dict] = []
        self.next_at = every
        self.train_s = self.cpu_s = 0.0
        self.skip()

    def skip(self) -> None:
        """Restart the clock here: what came since the last lap is not training."""
        self.t, self.c = time.perf_counter(), time.process_time()

    def lap(self) -> None:
        """Count the time since the clock last started as training."""
        self.train_s += time.perf_counter() - self.t
        self.cpu_s += time.process_time() - self.c
        self.skip()

    @property
    def reached(self) -> bool:
        return bool(self.rows) and self.rows[-1]["psnr"] >= self.target

    def due(self, images: int) -> bool:
        return images >= self.next_at and not self.reached

    def score(self, model, images: int) -> None:
        """Count the training so far, then score ``model`` with the clock stopped."""
        self.lap()
        psnr = evaluate(model, self.test, with_ssim=False)["psnr"]
        self.rows.append(
            {"images": images, "psnr": psnr, "train_s": self.train_s, "cpu_s": self.cpu_s}
        )
        while self.next_at <= images:
            self.next_at += self.every
        self.skip()


def _course_run(spec: dict) -> dict:
    """The course recipe until the target PSNR (or ``max_images``)."""
    data = _data(spec)
    score = Scorer(data.test, spec["every"], spec["target"])  # set-up counts, as for ours
    run = CourseRun(data.train, spec["seed"])
    images, probe = 0, ConvAutoencoder(AEConfig())
    while not score.reached and images < spec["max_images"]:
        run.train_images(spec["every"])
        images += spec["every"]
        probe.load_state_dict(run.model.state_dict())  # same names: scored by evaluate()
        score.score(probe, images)
    return {"rows": score.rows}


def _ours_run(spec: dict) -> dict:
    """fit() with a recipe, the test PSNR scored every ``every`` images until the target;
    then it stops, or with ``to_the_end`` runs the recipe to its end (its final PSNR)."""
    data = _data(spec)
    cfg = TrainConfig(**{"seed": spec["seed"], **spec["recipe"]})
    n_train = len(data.train.head(cfg.limit))
    to_the_end = spec.get("to_the_end", False)
    score = Scorer(data.test, spec["every"], spec["target"])

    def on_event(ev) -> bool:
        if ev.kind == "epoch":
            score.skip()  # fit() has just scored the epoch itself: not training
            return False
        score.lap()
        in_epoch = ev.step - (ev.epoch - 1) * ev.steps_per_epoch
        images = (ev.epoch - 1) * n_train + min(n_train, in_epoch * cfg.batch_size)
        if score.due(images):
            score.score(ev.model, images)
            return score.reached and not to_the_end
        return False

    result = fit(cfg, data, on_event)
    out = {
        "rows": score.rows,
        "history": result.history,
        "precision": result.train_config.precision,
    }
    if to_the_end:
        out["final_psnr"] = result.test_metrics.get("psnr")
    return out


def _page_run(spec: dict) -> dict:
    """The Train page's default run: seconds from the start to each redrawn picture."""
    from convae.progress import LiveRun
    from convae.recipes import classroom_default
    from convae.training_queue import training_resources

    data = _data(spec)
    cfg = classroom_default("transpose", data, seed=spec["seed"])
    live = LiveRun(cfg.decoder, data.test.filter(list(cfg.classes)))
    points: list[dict] = []
    t0 = time.perf_counter()

    def on_event(ev) -> None:
        point = live.update(ev)
        if point is not None:
            points.append({"step": point.step, "psnr": point.psnr, "s": time.perf_counter() - t0})

    with training_resources():
        result = fit(cfg, data, on_event)
    return {
        "recipe": cfg.to_dict(),
        "precision": result.train_config.precision,
        "points": points,
        "run_s": time.perf_counter() - t0,
    }


def serve(spec: dict) -> None:
    """A worker's life: set its threads, build its pipeline, answer commands."""
    from convae.train import TRAINING_THREADS, configure_threads

    # Ours: the thread count `python -m convae train` takes; the course: torch's default.
    ours_kind = spec["kind"] in ("ours", "ours_run", "page")
    configure_threads(spec.get("threads"), default=TRAINING_THREADS if ours_kind else None)
    kind, pipeline = spec["kind"], None
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "ready":
            if kind == "ours":
                pipeline = _Chunks(spec)
            elif kind == "course":
                pipeline = _Course(spec)
            reply = {
                "warm_s": getattr(pipeline, "warm_s", None),
                "threads": torch.get_num_threads(),
            }
        elif cmd["op"] == "train":
            wall, cpu = pipeline.train(cmd["images"])
            reply = {"wall_s": wall, "cpu_s": cpu}
        else:  # "run": one whole run
            run = {"course_run": _course_run, "ours_run": _ours_run, "page": _page_run}[kind]
            reply = run(spec)
        print(json.dumps(reply), flush=True)


# ================================================================== alternating rounds


def spread(values: list[float]) -> dict:
    """Median and range of one figure over the rounds."""
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def rounds(specs: dict[str, dict], n_rounds: int, images: int, loaded: bool = False) -> dict:
    """images/s and images per CPU-second of each pipeline over alternating rounds.

    Args:
        specs: pipeline name -> worker spec.
        n_rounds: rounds; each round every pipeline trains ``images`` images, in an order
            that rotates from round to round.
        loaded: a second process keeps one core busy throughout.

    Returns:
        {name: {"images_per_s": [...], "images_per_cpu_s": [...], "warm_s", ...}} plus
        "ratios_per_round" of each pipeline to the first one.
    """
    workers = {name: Worker(spec) for name, spec in specs.items()}
    out = {
        name: {"images_per_s": [], "images_per_cpu_s": [], **w.ready} for name, w in workers.items()
    }
    try:
        with busy_core(loaded):
            names = list(workers)
            for r in range(n_rounds):
                k = r % len(names)
                for name in names[k:] + names[:k]:
                    reply = workers[name].ask({"op": "train", "images": images})
                    out[name]["images_per_s"].append(images / reply["wall_s"])
                    out[name]["images_per_cpu_s"].append(images / reply["cpu_s"])
                line = ", ".join(f"{n}: {v['images_per_s'][-1]:,.0f}" for n, v in out.items())
                print(f"    round {r + 1}: {line}", flush=True)
    finally:
        for w in workers.values():
            w.close()
    base = out[names[0]]
    for v in out.values():
        for key in ("images_per_s", "images_per_cpu_s"):
            v[key + "_spread"] = spread(v[key])
            per_round = [a / b for a, b in zip(v[key], base[key], strict=True)]
            v[key.replace("images", "ratio")] = spread(per_round)
    return out


# ================================================================== sections


def ours(recipe: dict | None = None, threads: int | None = None, **extra) -> dict:
    """A throughput worker of ours: the CLI's default unless ``recipe`` says otherwise."""
    return {"kind": "ours", "recipe": recipe or {}, "threads": threads, "test_limit": 100, **extra}


def course(source: str = "memory", threads: int | None = None) -> dict:
    return {"kind": "course", "source": source, "threads": threads}


def section_roofline() -> dict:
    print("roofline: FLOPs and bytes per training image, measured peaks")
    flops = {d: roofline.flops_per_image(d) for d in ("transpose", "upsample")}
    for d, f in flops.items():
        print(f"  {d}: {f['by_hand']:,} FLOPs by hand, {f['flop_counter']:,.0f} by flop_counter")
    traffic = {p: roofline.step_bytes_per_image(p) for p in ("fp32", "bf16")}
    for p, b in traffic.items():
        print(f"  bytes per image, {p}: {b / 1024:,.0f} KiB")
    peaks = roofline.peaks(tuple(sorted({1, CORES})))
    for t, p in peaks.items():
        print(f"  {t} thread(s): " + ", ".join(f"{k} {v['wall']:.0f}" for k, v in p.items()))
    return {"flops": flops, "bytes_per_image": traffic, "peaks": peaks}


def section_changes(args) -> dict:
    """Each change alone against the step before it (see the module docstring)."""
    n, images = args.rounds, args.images
    groups = {
        "step": {
            "before: fp32, batch 32, Adam (for-loop)": ours(BEFORE, adam="loop"),
            "+ fused Adam": ours(BEFORE),
            "+ bf16 convolutions": ours({**BEFORE, "precision": "bf16"}),
            "+ torch.compile": ours({**BEFORE, "precision": "bf16"}, compile=True),
        },
        "batch": {
            f"batch {b}": ours({"batch_size": b, "precision": "bf16"})
            for b in (32, 64, 128, 256, 512)
        },
        "threads": _thread_specs(),
    }
    picked = args.groups.split(",") if args.groups else [*groups, "threads, one core busy"]
    out: dict = {}
    for name, specs in groups.items():
        if name in picked:
            print(f"changes: {name}, {n} alternating rounds of {images:,} images")
            out[name] = rounds(specs, n, images)
    if "threads, one core busy" in picked:
        print("changes: threads, with a second process keeping one core busy")
        out["threads, one core busy"] = rounds(_thread_specs(), n, images, loaded=True)
    chain = list(out.get("step", {}).values())
    for before, after in zip(chain, chain[1:], strict=False):
        per_round = [
            a / b
            for a, b in zip(after["images_per_cpu_s"], before["images_per_cpu_s"], strict=True)
        ]
        after["vs_previous_per_cpu_s"] = spread(per_round)
        per_round = [
            a / b for a, b in zip(after["images_per_s"], before["images_per_s"], strict=True)
        ]
        after["vs_previous_per_s"] = spread(per_round)
    return out


def _thread_specs() -> dict:
    default = TrainConfig()
    recipe = {"batch_size": default.batch_size, "precision": "bf16"}
    specs = {
        "1 thread": ours(recipe, threads=1),
        "1 thread, fp32": ours({**recipe, "precision": "fp32"}, threads=1),
    }
    if CORES > 1:
        specs[f"{CORES} threads, waiting threads spin"] = ours(recipe, threads=CORES, env=SPIN)
        specs[f"{CORES} threads, waiting threads sleep"] = ours(recipe, threads=CORES)
    return specs


def section_throughput(args, root: Path) -> dict:
    specs = {"course, in memory": course()}
    if _find_cifar_folder(root) is not None:
        specs["course, ImageFolder"] = course("folder")
    specs["ours before (fp32, batch 32, lr 2e-3)"] = ours(BEFORE, adam="loop", env=SPIN)
    specs["ours (python -m convae train defaults)"] = ours()
    out = {}
    for loaded in (False, True):
        key = "one core busy" if loaded else "quiet"
        print(f"throughput ({key}): {args.rounds} alternating rounds of {args.images:,} images")
        out[key] = rounds(specs, args.rounds, args.images, loaded)
    return out


def section_time(args) -> dict:
    """Time to the target PSNR, course and ours seed by seed, quiet and one core busy."""
    recipe = {}  # the command line's defaults (TrainConfig)
    common = {"every": EVERY, "target": TARGET_DB}
    course_max = 12 * 50000
    out = {}
    for loaded, seeds in ((False, args.seeds), (True, args.load_seeds)):
        key = "one core busy" if loaded else "quiet"
        runs: dict[str, list] = {"course": [], "ours": []}
        print(f"time to {TARGET_DB:g} dB ({key}), seeds 0-{seeds - 1}, alternating")
        with busy_core(loaded):
            for seed in range(seeds):
                # the course's runs are long: its first args.course_seeds seeds only
                if seed < args.course_seeds:
                    c = run_once(
                        {"kind": "course_run", "seed": seed, "max_images": course_max, **common}
                    )
                    runs["course"].append(c)
                    print(f"  seed {seed}: course {_reach(c)}", flush=True)
                o = run_once({"kind": "ours_run", "seed": seed, "recipe": recipe, **common})
                runs["ours"].append(o)
                print(f"  seed {seed}: ours {_reach(o)}", flush=True)
        out[key] = _time_summary(runs)
        out[key]["load_average_after"] = load_average()
    return out


def _first(run: dict) -> dict | None:
    return next((r for r in run["rows"] if r["psnr"] >= TARGET_DB), None)


def _reach(run: dict) -> str:
    hit = _first(run)
    if hit is None:
        return "not reached"
    return f"{hit['train_s']:.1f} s ({hit['cpu_s']:.1f} CPU-s, {hit['images']:,} images)"


def _time_summary(runs: dict[str, list]) -> dict:
    out: dict = {"runs": runs}
    for name, rs in runs.items():
        hits = [_first(r) for r in rs]
        if all(hits):
            out[name] = {k: spread([h[k] for h in hits]) for k in ("train_s", "cpu_s", "images")}
    if "course" in out and "ours" in out:
        # seed by seed where both ran that seed (the course runs fewer)
        for key, figure in (("course_over_ours", "train_s"), ("course_over_ours_cpu", "cpu_s")):
            per_seed = [
                _first(c)[figure] / _first(o)[figure]
                for c, o in zip(runs["course"], runs["ours"], strict=False)
            ]
            out[key] = spread(per_seed)
        out["course_over_ours_medians"] = (
            out["course"]["train_s"]["median"] / out["ours"]["train_s"]["median"]
        )
    return out


def section_page(args) -> dict:
    out = {}
    for loaded, seeds in ((False, args.seeds), (True, args.load_seeds)):
        key = "one core busy" if loaded else "quiet"
        print(f"Train page default run ({key}), seeds 0-{seeds - 1}")
        runs = []
        with busy_core(loaded):
            for seed in range(seeds):
                r = run_once({"kind": "page", "seed": seed})
                hit = next((p for p in r["points"] if p["psnr"] >= PAGE_DB), None)
                r["first_at_target"] = hit
                runs.append(r)
                last = r["points"][-1]
                print(
                    f"  seed {seed}: first >= {PAGE_DB:g} dB "
                    + (f"at {hit['s']:.1f} s ({hit['psnr']:.2f} dB)" if hit else "never")
                    + f"; last {last['psnr']:.2f} dB at {last['s']:.1f} s",
                    flush=True,
                )
        hits = [r["first_at_target"] for r in runs]
        out[key] = {"runs": runs}
        if all(hits):
            out[key]["seconds_to_target"] = spread([h["s"] for h in hits])
            out[key]["psnr_then"] = spread([h["psnr"] for h in hits])
        out[key]["psnr_at_end"] = spread([r["points"][-1]["psnr"] for r in runs])
        out[key]["run_s"] = spread([r["run_s"] for r in runs])
    return out


# The recipe search: batch size with its learning rate (Adam; raised with the batch),
# each warmed up over the same 16,000 images (500 steps of 32), and one-cycle.
RECIPE_CANDIDATES = {
    "batch 32, lr 2e-3, fp32 (before)": {"batch_size": 32, "lr": 2e-3, "precision": "fp32"},
    "batch 32, lr 2e-2, bf16 (default)": {"batch_size": 32, "lr": 2e-2, "precision": "bf16"},
    "batch 32, lr 2e-2, fp32": {"batch_size": 32, "lr": 2e-2, "precision": "fp32"},
    "batch 32, lr 2e-3": {"batch_size": 32, "lr": 2e-3},
    "batch 32, lr 1.5e-2": {"batch_size": 32, "lr": 1.5e-2},
    "batch 32, lr 2e-2": {"batch_size": 32, "lr": 2e-2},
    "batch 32, lr 1.5e-2, one-cycle": {"batch_size": 32, "lr": 1.5e-2, "schedule": "onecycle"},
    "batch 64, lr 2e-2": {"batch_size": 64, "lr": 2e-2, "warmup_steps": 250},
    "batch 128, lr 3e-2": {"batch_size": 128, "lr": 3e-2, "warmup_steps": 125},
    "batch 256, lr 4e-2": {"batch_size": 256, "lr": 4e-2, "warmup_steps": 63},
    "upsample, batch 32, lr 2e-3 (before)": {"decoder": "upsample", "batch_size": 32, "lr": 2e-3},
    "upsample, batch 32, lr 1.5e-2": {"decoder": "upsample", "batch_size": 32, "lr": 1.5e-2},
}


def section_recipes(args, save) -> dict:
    """Each candidate's 12-epoch runs, ``args.jobs`` at a time (images and dB only, so
    runs may share the cores); ``save(out)`` is called after every finished run."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    # "name" runs args.seeds seeds, "name=N" its first N
    picked = [c.strip().rpartition("=") for c in (args.candidates or "").split(";") if c]
    seeds = {n or k: int(k) if n else args.seeds for n, _, k in picked}
    names = list(seeds) if seeds else list(RECIPE_CANDIDATES)
    spec = {"every": EVERY, "target": TARGET_DB, "to_the_end": True, "threads": 1}
    tasks = [(n, s) for s in range(args.seeds) for n in names if s < seeds.get(n, args.seeds)]
    out: dict = {n: {"recipe": RECIPE_CANDIDATES[n], "runs": {}} for n in names}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        jobs = {
            pool.submit(
                run_once, {"kind": "ours_run", "seed": s, "recipe": RECIPE_CANDIDATES[n], **spec}
            ): (n, s)
            for n, s in tasks
        }
        for job in as_completed(jobs):
            name, seed = jobs[job]
            r = job.result()
            out[name]["runs"][str(seed)] = r
            print(f"  {name}, seed {seed}: {_reach(r)}, 12 epochs {r['final_psnr']:.2f} dB")
            _summarise_recipe(out[name])
            save(out)
    return out


def _summarise_recipe(entry: dict) -> None:
    runs = list(entry["runs"].values())
    hits = [_first(r) for r in runs]
    entry["final_psnr"] = spread([r["final_psnr"] for r in runs])
    entry["images_to_target"] = spread([h["images"] for h in hits]) if all(hits) else None
    entry["seeds"] = sorted(int(k) for k in entry["runs"])


# ================================================================== report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (default: 5)")
    ap.add_argument(
        "--images", type=int, default=10000, help="images per pipeline and round (default: 10000)"
    )
    ap.add_argument("--seeds", type=int, default=3, help="seeds of each timed run (default: 3)")
    ap.add_argument("--load-seeds", type=int, default=3, help="seeds with a core busy (default: 3)")
    ap.add_argument(
        "--course-seeds", type=int, default=1, help="time: the course's seeds (default: 1)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, 1 seed, small")
    ap.add_argument("--jobs", type=int, default=1, help="recipes: runs at once (default: 1)")
    ap.add_argument(
        "--candidates", default=None, help="recipes: ';'-separated names (default: all)"
    )
    ap.add_argument(
        "--only",
        default=None,
        help=f"comma-separated sections, of {', '.join(SECTIONS)} (default: all but recipes)",
    )
    ap.add_argument(
        "--out",
        default=None,
        help=f"JSON results (default: {RESULTS.name}, or {RECIPES.name} for --only recipes)",
    )
    ap.add_argument(
        "--groups",
        default=None,
        help="changes: comma-separated groups of step, batch, threads, "
        "'threads, one core busy' (default: all)",
    )
    ap.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="merge the sections of these results files (later ones win) into --out",
    )
    args = ap.parse_args()
    if args.worker:
        serve(json.loads(args.worker))
        return
    if args.merge:
        merge(args.merge, Path(args.out or RESULTS))
        return
    sections = [s for s in SECTIONS if s != "recipes"]
    if args.only:
        sections = [s.strip() for s in args.only.split(",")]
        if not set(sections) <= set(SECTIONS):
            ap.error(f"--only takes {', '.join(SECTIONS)}, got {args.only!r}")
    if args.quick:
        args.rounds, args.images, args.seeds, args.load_seeds = 2, 2000, 1, 1
        args.course_seeds = 1
    out = Path(args.out or (RECIPES if sections == ["recipes"] else RESULTS))
    sys.stdout.reconfigure(line_buffering=True)
    root = data_root()
    report: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": CORES,
        "load_average_before": load_average(),
        "args": {k: v for k, v in vars(args).items() if k != "worker"},
        "sections": sections,
        "default_recipe": TrainConfig().to_dict(),
        "openmp_env": OPENMP_ENV,
    }
    print(f"torch {torch.__version__}, {CORES} cores, load average {report['load_average_before']}")
    # A run of some sections keeps the others' results from earlier runs: each section
    # carries its own date, load averages and torch version.
    if out.exists() and args.only:
        earlier = json.loads(out.read_text())
        measured = [k for k in SECTIONS if f"{k}_measured" in earlier]
        kept = {k: v for k, v in earlier.items() if k.removesuffix("_measured") in measured}
        report = {**kept, **report}
        report["sections"] = [s for s in SECTIONS if s in report]
    for name in sections:
        t0 = time.perf_counter()
        before = load_average()
        if name == "roofline":
            report[name] = section_roofline()
        elif name == "changes":
            report[name] = section_changes(args)
        elif name == "throughput":
            report[name] = section_throughput(args, root)
        elif name == "time":
            report[name] = section_time(args)
        elif name == "page":
            report[name] = section_page(args)
        else:
            report[name] = section_recipes(
                args, lambda part, n=name: _write(out, {**report, n: part})
            )
        report[f"{name}_measured"] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "load_average_before": before,
            "load_average_after": load_average(),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        _write(out, report)
    report["load_average_after"] = load_average()
    _write(out, report)
    print(f"load average after {report['load_average_after']}; wrote {out}")
    print("\ndocs/training.md's tables (from the JSON just written):\n")
    print(markdown(report))


def merge(files: list[str], out: Path) -> None:
    """Put the measured sections of ``files`` (runs of some sections each, made one after
    the other so that none disturbed another) into one results file, each with its own
    date, load averages and torch version; the summary is derived again."""
    report: dict = {}
    for f in files:
        part = json.loads(Path(f).read_text())
        measured = [k for k in SECTIONS if f"{k}_measured" in part]
        head = {k: v for k, v in part.items() if k not in SECTIONS and "_measured" not in k}
        report = {**head, **report}
        for k in measured:
            report[k], report[f"{k}_measured"] = part[k], part[f"{k}_measured"]
    report["sections"] = [k for k in SECTIONS if k in report]
    report["merged_from"] = [Path(f).name for f in files]
    _write(out, report)
    print(markdown(report))


def peak_summary(peaks: dict) -> dict:
    """The roofline's ceilings from the measured peaks: for each kind, the best rate of
    one running core (per CPU-second, over the thread counts: other work on a shared
    machine takes cores away, not speed from a core while it runs), the machine's (that
    times the cores), and the best wall-clock rate seen; the copy's bandwidth is its best
    wall-clock rate."""
    out = {}
    for kind in next(iter(peaks.values())):
        per_core = max(p[kind]["per_cpu_s"] for p in peaks.values())
        wall = max(p[kind]["wall"] for p in peaks.values())
        out[kind] = {"per_core": per_core, "machine": per_core * CORES, "best_wall": wall}
    out["copy_GBps"]["machine"] = out["copy_GBps"]["best_wall"]
    return out


def _precision_of(name: str) -> str:
    """The arithmetic of a throughput pipeline (ours by default: bf16 on this CPU)."""
    return "bf16" if name.startswith("ours (") else "fp32"


def summarise(report: dict) -> dict:
    """The figures docs/training.md quotes, derived from the sections in ``report``:
    the roofline's ceilings, each throughput pipeline's GFLOP/s and GB/s with their
    fraction of those ceilings, and the headline times."""
    out: dict = {}
    roof = report.get("roofline")
    if roof:
        out["flops_per_image"] = roof["flops"]["transpose"]["flop_counter"]
        out["peak"] = peak_summary(roof["peaks"])
    if roof and "throughput" in report:
        flops, peak = out["flops_per_image"], out["peak"]
        out["throughput"] = {}
        for key, pipelines in report["throughput"].items():
            rows = out["throughput"][key] = {}
            for name, v in pipelines.items():
                if not isinstance(v, dict) or "images_per_s_spread" not in v:
                    continue
                p = _precision_of(name)
                rate = v["images_per_s_spread"]["median"]
                per_cpu = v["images_per_cpu_s_spread"]["median"]
                gbps = rate * roof["bytes_per_image"][p] / 1e9
                rows[name] = {
                    "precision": p,
                    "images_per_s": rate,
                    "vs_course": v["ratio_per_s"]["median"],
                    "gflops": rate * flops / 1e9,
                    "of_machine_peak": rate * flops / 1e9 / peak[f"conv3x3_{p}"]["machine"],
                    "gflops_per_cpu_s": per_cpu * flops / 1e9,
                    "of_core_peak": per_cpu * flops / 1e9 / peak[f"conv3x3_{p}"]["per_core"],
                    "GBps_upper_bound": gbps if name.startswith("ours") else None,
                    "of_copy_bandwidth": gbps / peak["copy_GBps"]["machine"]
                    if name.startswith("ours")
                    else None,
                }
    return out


def _write(out: Path, report: dict) -> None:
    report["summary"] = summarise(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, out)


# ================================================================== tables


def _range(sp: dict, fmt: str = ",.0f", unit: str = "") -> str:
    """'median (low-high)' of a spread."""
    return f"{sp['median']:{fmt}}{unit} ({sp['low']:{fmt}}-{sp['high']:{fmt}})"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def _roofline_tables(r: dict) -> list[str]:
    out = []
    for decoder, f in r["flops"].items():
        rows = [
            [
                x["layer"],
                "x".join(map(str, x["input"])),
                f"{x['by_hand']['forward']:,}",
                f"{x['by_hand']['backward']:,}",
                "yes"
                if x["by_hand"] == {k: int(v) for k, v in x["flop_counter"].items()}
                else "NO",
            ]
            for x in f["layers"]
        ]
        rows.append(
            ["whole step", "", "", f"{f['by_hand']:,} by hand", f"{f['flop_counter']:,.0f} counted"]
        )
        out += [f"FLOPs per training image, {decoder} decoder:", ""]
        out += _table(["layer", "input", "forward", "backward", "flop_counter agrees"], rows)
    peaks = r["peaks"]
    names = {
        "matmul_fp32": "matrix multiply 2048^3, fp32 (GFLOP/s)",
        "matmul_bf16": "matrix multiply 2048^3, bf16 (GFLOP/s)",
        "conv3x3_fp32": "3x3 convolution 64->64 on 56x56, fp32 (GFLOP/s)",
        "conv3x3_bf16": "3x3 convolution 64->64 on 56x56, bf16 (GFLOP/s)",
        "copy_GBps": "copy of 512 MB, read + written (GB/s)",
    }
    head = ["measured peak"] + [f"{t} thread(s): wall / per CPU-s" for t in peaks]
    rows = [
        [label] + [f"{p[k]['wall']:,.0f} / {p[k]['per_cpu_s']:,.0f}" for p in peaks.values()]
        for k, label in names.items()
    ]
    out += _table(head, rows)
    b = r["bytes_per_image"]
    out += [
        f"Bytes read and written per training image by the step's operators (default recipe): "
        f"{b['fp32'] / 1024:,.0f} KiB in fp32, {b['bf16'] / 1024:,.0f} KiB in bf16.",
        "",
    ]
    return out


def _changes_tables(c: dict) -> list[str]:
    out = []
    for group, variants in c.items():
        first = next(iter(variants))
        vs = "vs the row before" if group == "step" else f"vs {first}"
        rows = []
        for name, v in variants.items():
            if group == "step":
                ratio = v.get("vs_previous_per_cpu_s")
                wall = v.get("vs_previous_per_s")
            else:
                ratio, wall = v["ratio_per_cpu_s"], v["ratio_per_s"]
            extra = f", first steps {v['warm_s']:.1f} s" if "compile" in name else ""
            rows.append(
                [
                    name + extra,
                    _range(v["images_per_s_spread"]),
                    _range(v["images_per_cpu_s_spread"]),
                    _range(ratio, ".2f", "x") if ratio else "-",
                    _range(wall, ".2f", "x") if wall else "-",
                ]
            )
        head = [group, "images/s", "images per CPU-s", f"{vs}, per CPU-s", f"{vs}, wall"]
        out += _table(head, rows)
    return out


def _throughput_table(report: dict) -> list[str]:
    t, summary = report["throughput"], report.get("summary", {}).get("throughput", {})
    rows = []
    for name in t["quiet"]:
        q, b = t["quiet"][name], t["one core busy"][name]
        row = [
            name,
            _range(q["images_per_s_spread"]),
            _range(q["ratio_per_s"], ".1f", "x"),
            _range(b["images_per_s_spread"]),
            _range(b["ratio_per_s"], ".1f", "x"),
        ]
        s = summary.get("quiet", {}).get(name)
        if s:
            row.append(f"{s['gflops']:.1f} ({s['of_machine_peak']:.1%} of {s['precision']})")
            row.append(f"{s['of_copy_bandwidth']:.0%}" if s["of_copy_bandwidth"] else "-")
        rows.append(row)
    head = [
        "pipeline",
        "quiet: images/s",
        "vs course in memory",
        "one core busy: images/s",
        "vs course in memory",
    ]
    if summary:
        head += ["quiet: GFLOP/s (of the conv peak)", "bytes moved, of the copy bandwidth"]
    return _table(head, rows)


def _time_table(report: dict) -> list[str]:
    rows = []
    for key, t in report["time"].items():
        for name in ("course", "ours"):
            if name in t:
                rows.append(
                    [
                        f"{name}, {key}",
                        _range(t[name]["train_s"], ".1f", " s"),
                        _range(t[name]["cpu_s"], ".1f", " s"),
                        _range(t[name]["images"]),
                    ]
                )
        if "course_over_ours" in t:
            rows.append(
                [
                    f"course / ours, {key}",
                    _range(t["course_over_ours"], ".1f", "x"),
                    _range(t["course_over_ours_cpu"], ".1f", "x"),
                    "",
                ]
            )
    head = [f"to {TARGET_DB:g} dB", "training seconds", "CPU seconds", "training images"]
    return _table(head, rows)


def _page_table(report: dict) -> list[str]:
    rows = []
    for key, p in report["page"].items():
        when = _range(p["seconds_to_target"], ".1f", " s") if "seconds_to_target" in p else "-"
        then = _range(p["psnr_then"], ".2f", " dB") if "psnr_then" in p else "-"
        rows.append(
            [
                key,
                when,
                then,
                _range(p["psnr_at_end"], ".2f", " dB"),
                _range(p["run_s"], ".1f", " s"),
            ]
        )
    head = [
        "Train page, default run",
        f"first pictures at >= {PAGE_DB:g} dB",
        "their PSNR",
        "PSNR at the end",
        "whole run",
    ]
    return _table(head, rows)


def _recipes_table(report: dict) -> list[str]:
    rows = [
        [
            name,
            _range(r["final_psnr"], ".2f", " dB"),
            _range(r["images_to_target"]) if r["images_to_target"] else "not reached",
        ]
        for name, r in report["recipes"].items()
    ]
    return _table(["recipe", "test PSNR after 12 epochs", f"images to {TARGET_DB:g} dB"], rows)


def markdown(report: dict) -> str:
    """docs/training.md's tables, filled from a results dict (medians, with the range
    over rounds or seeds in brackets)."""
    lines: list[str] = []
    if "roofline" in report:
        lines += _roofline_tables(report["roofline"])
    if "changes" in report:
        lines += _changes_tables(report["changes"])
    if "throughput" in report:
        lines += _throughput_table(report)
    if "time" in report:
        lines += _time_table(report)
    if "page" in report:
        lines += _page_table(report)
    if "recipes" in report:
        lines += _recipes_table(report)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
