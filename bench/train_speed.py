"""Training speed: ConvAE Explorer's trainer against the course pipeline, and one process
against two data-parallel workers, on the same CIFAR-10 training images.

The course pipeline is what the notebooks do: a torchvision-style data set that turns
each stored uint8 image into a PIL image and applies ``ToTensor`` per sample, a
``DataLoader`` with batch 20, the transpose model with ``nn.BCELoss`` on its sigmoid
output and Adam at 1e-3, in two forms: over the same in-memory uint8 images as
torchvision's CIFAR10 holds them (the faster, conservative baseline), and as the course
code runs on the JPEG copy here, ImageFolder + ToTensor decoding each file per sample.
Ours is ``convae.train.fit`` (defaults: MSE, batch 32, lr 2e-3), in one process with
all threads and as two workers (``fit(team=...)``, DistributedDataParallel over gloo,
started by torchrun's engine, one thread each: what ``--workers 2`` runs).

1. Throughput: images/s of each pipeline, in alternating rounds so that load from other
   processes hits all alike; medians and ratios. A worker pair is started afresh for
   each of its rounds; its start-up (spawn, imports, rendezvous) is recorded apart and
   not counted in images/s, as the course's set-up is not.
2. Time to the target PSNR: the course recipe, ours in one process and ours on two
   workers train --epochs epochs each; after every epoch the test PSNR is scored outside
   the timed part. Training seconds are read from this script's own clock for all three
   (perf_counter around each course epoch; for ours from the start of an epoch to its
   last step, through fit()'s callback), so evaluation is left out the same way.
3. --profile: torch.profiler's top operators over one short epoch, one process and a
   worker of the pair. --explore: a bare step loop over threads x batch x memory layout,
   to see what one worker's core can do.

Every figure goes to bench/results/train_speed.json (date, torch version, threads,
load average before and after, each round's raw figures, medians, ratios).

Usage: python bench/train_speed.py [--rounds 5] [--epochs 12] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convae.data import ImageSet, _find_cifar_folder, data_root, load_dataset  # noqa: E402
from convae.models import AEConfig, ConvAutoencoder  # noqa: E402
from convae.train import TrainConfig, configure_threads, evaluate, fit  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "train_speed.json"
COURSE_MEM = "course, in-memory CIFAR10-style data set"
COURSE_IF = "course, ImageFolder on the JPEG files"
OURS_1 = "ours, 1 process x {t} threads (fit defaults: MSE, batch 32)"
OURS_2 = "ours, 2 workers x 1 thread (batch 32 = 16 per worker)"
# The same global batch as ONE_256: where a worker's share of a step is big enough to
# outweigh the fixed cost of its small calls and the gradient all-reduce.
ONE_256 = "ours, 1 process, MSE, batch 256, lr 6e-3"
OURS_2_256 = "ours, 2 workers x 1 thread, batch 256 (128 per worker), lr 6e-3"
# Not a training: the two worker processes each train a model of their own on half the
# round's images, batch 16, with no gradient exchange. What 2 single-threaded workers at
# 16 images a step could reach on this machine if synchronising cost nothing.
CEILING = "ceiling: 2 processes x 1 thread, batch 16 each, no gradient exchange"
TEST_LIMIT = 500  # test images scored after a throughput run's epoch (not timed anyway)


# ------------------------------------------------------------------ the course


class CourseCIFAR(Dataset):
    """torchvision.datasets.CIFAR10.__getitem__ over in-memory uint8 images."""

    def __init__(self, images: ImageSet) -> None:
        self.data = images.images.permute(0, 2, 3, 1).numpy()  # HWC, as CIFAR10.data
        self.targets = images.labels.tolist()
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


class CourseAutoencoder(nn.Module):
    """The CIFAR assignment's ConvAutoencoder, as written in the notebook."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.t_conv1 = nn.ConvTranspose2d(4, 16, 2, stride=2)
        self.t_conv2 = nn.ConvTranspose2d(16, 3, 2, stride=2)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.t_conv1(x))
        return torch.sigmoid(self.t_conv2(x))


class CourseRun:
    """The course training loop, steppable in chunks of batches."""

    def __init__(self, train: ImageSet | Dataset, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = CourseAutoencoder()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.crit = nn.BCELoss()
        dataset = CourseCIFAR(train) if isinstance(train, ImageSet) else train
        self.loader = DataLoader(dataset, batch_size=20, shuffle=True)
        self.it = iter(self.loader)

    def train_images(self, n: int) -> float:
        """Train on about n images (continuing the current epoch); returns seconds."""
        t = time.perf_counter()
        seen = 0
        while seen < n:
            try:
                x, _ = next(self.it)
            except StopIteration:
                self.it = iter(self.loader)
                continue
            loss = self.crit(self.model(x), x)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            seen += len(x)
        return time.perf_counter() - t


# ------------------------------------------------------------------ ours


class Stopwatch:
    """fit()'s callback: this script's clock at every step, per epoch the training
    seconds (start of the epoch to its last step: evaluation left out) and PSNR."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.epoch_start = self.t0
        self.last_step = self.t0
        self.first_step: float | None = None
        self.first_step_wall: float | None = None  # time.time(): comparable across processes
        self.rows: list[dict] = []
        self.images_per_s = 0.0

    def __call__(self, ev) -> None:
        now = time.perf_counter()
        if ev.kind == "step":
            self.last_step = now
            if self.first_step is None:
                self.first_step, self.first_step_wall = now, time.time()
            self.images_per_s = ev.images_per_s
            return
        prev = self.rows[-1]["train_s"] if self.rows else 0.0
        self.rows.append(
            {
                "epoch": ev.epoch,
                "psnr": ev.test_psnr,
                "train_s": prev + (self.last_step - self.epoch_start),
                "images_per_s": ev.images_per_s,
            }
        )
        self.epoch_start = now


def ours(data, recipe: dict, team=None) -> Stopwatch:
    """Train with fit() as ``recipe`` says, timed by a :class:`Stopwatch`."""
    watch = Stopwatch()
    workers = team.world if team is not None else 1
    fit(TrainConfig(workers=workers, **recipe), data, watch, team=team)
    return watch


def _rank(
    source: str, root: str, recipe: dict, threads: int, profile: bool, test_limit: int | None
) -> dict | None:
    """One worker of a pair (run by torchrun's engine): returns rank 0's figures."""
    from convae import distributed

    team = distributed.join("cpu")
    try:
        configure_threads(threads)
        data = scored_on(load_dataset(source, root=root), test_limit)
        if profile:
            table = profiled_fit(data, TrainConfig(workers=team.world, **recipe), team)
            return {"profile": table} if team.rank == 0 else None
        if recipe.get("independent"):  # the ceiling: no gradient exchange, every rank alone
            alone = {k: v for k, v in recipe.items() if k != "independent"}
            alone["limit"] = recipe["limit"] // team.world  # its half of the round's images
            watch = ours(data, alone)
            return {"images_per_s": watch.images_per_s, "first_step_wall": watch.first_step_wall}
        watch = ours(data, recipe, team)
        if team.rank != 0:
            return None
        return {
            "rows": watch.rows,
            "images_per_s": watch.images_per_s,
            "first_step_wall": watch.first_step_wall,
        }
    finally:
        distributed.leave(team)


def scored_on(data, test_limit: int | None):
    """``data`` with only the first ``test_limit`` test images: the throughput runs score
    after their one epoch as fit() always does, and that need not take long."""
    return dataclasses.replace(data, test=data.test.head(test_limit)) if test_limit else data


def pair(
    source: str,
    root: Path,
    recipe: dict,
    threads: int = 1,
    profile: bool = False,
    test_limit: int | None = None,
) -> dict:
    """Run ``recipe`` on two workers; returns rank 0's figures and the seconds from the
    launch to the first training step (processes, imports, rendezvous, data)."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from convae.distributed import _quiet_agent

    cfg = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=2,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
    )
    launched = time.time()
    with _quiet_agent():
        out = elastic_launch(cfg, _rank)(source, str(root), recipe, threads, profile, test_limit)
    if recipe.get("independent"):  # both ranks trained on their own: their rates add up
        return {
            "images_per_s": sum(o["images_per_s"] for o in out.values()),
            "start_to_first_step_s": min(o["first_step_wall"] for o in out.values()) - launched,
        }
    out = out[0]
    if not profile:
        out["start_to_first_step_s"] = out["first_step_wall"] - launched
    return out


# ------------------------------------------------------------------ measurements


def throughput(data, source, root, rounds: int, n: int, folder: Path | None, threads: int):
    """images/s of each pipeline, measured in alternating rounds."""
    from torchvision.datasets import ImageFolder

    courses = {COURSE_MEM: CourseRun(data.train)}
    if folder is not None:  # what the course code does on the JPEG copy: decode per sample
        courses[COURSE_IF] = CourseRun(
            ImageFolder(str(folder / "train"), transform=transforms.ToTensor())
        )
    one = {
        OURS_1.format(t=threads): {},
        "ours, 1 process, BCE, batch 32": {"loss": "bce"},
        ONE_256: {"batch_size": 256, "lr": 6e-3},
    }
    two = {
        OURS_2: {},
        "ours, 2 workers x 1 thread, batch 64 (32 per worker)": {"batch_size": 64},
        OURS_2_256: {"batch_size": 256, "lr": 6e-3},
        CEILING: {"batch_size": 16, "independent": True},
    }
    out: dict[str, list[float]] = {k: [] for k in [*courses, *one, *two]}
    startup: list[float] = []
    quick = scored_on(data, TEST_LIMIT)
    for run in courses.values():
        run.train_images(400)  # warm-up
    ours(quick, {"epochs": 1, "limit": 640})
    for r in range(rounds):
        for name, run in courses.items():
            out[name].append(n / run.train_images(n))
        for name, recipe in one.items():
            w = ours(quick, {"epochs": 1, "limit": n, "seed": r, **recipe})
            out[name].append(w.images_per_s)
        for name, recipe in two.items():
            recipe = {"epochs": 1, "limit": n, "seed": r, **recipe}
            res = pair(source, root, recipe, test_limit=TEST_LIMIT)
            out[name].append(res["images_per_s"])
            startup.append(res["start_to_first_step_s"])
        print(f"  round {r + 1}: " + ", ".join(f"{v[-1]:.0f}" for v in out.values()), flush=True)
    return out, startup


def convergence(data, source, root, epochs: int, threads: int) -> dict[str, list[dict]]:
    """Per-epoch test PSNR and cumulative training seconds of the three recipes."""
    rows: dict[str, list[dict]] = {COURSE_MEM: []}
    run, train_s = CourseRun(data.train), 0.0
    for epoch in range(1, epochs + 1):
        train_s += run.train_images(len(data.train))
        run.it = iter(run.loader)  # one full epoch per call
        # Same parameter names, so the course weights load into our model for evaluate().
        probe = ConvAutoencoder(AEConfig())
        probe.load_state_dict(run.model.state_dict())
        p = evaluate(probe, data.test, with_ssim=False)["psnr"]
        rows[COURSE_MEM].append({"epoch": epoch, "train_s": train_s, "psnr": p})
        print(f"  course epoch {epoch}: {p:.2f} dB after {train_s:.1f} s", flush=True)
    name = OURS_1.format(t=threads)
    rows[name] = ours(data, {"epochs": epochs}).rows
    for r in rows[name]:
        print(
            f"  ours, 1 process, epoch {r['epoch']}: {r['psnr']:.2f} dB after {r['train_s']:.1f} s"
        )
    rows[OURS_2] = pair(source, root, {"epochs": epochs})["rows"]
    for r in rows[OURS_2]:
        print(
            f"  ours, 2 workers, epoch {r['epoch']}: {r['psnr']:.2f} dB after {r['train_s']:.1f} s"
        )
    return rows


def first_reach(rows: list[dict], target: float) -> dict | None:
    return next((r for r in rows if r["psnr"] >= target), None)


def explore(data, n_steps: int = 150) -> list[dict]:
    """A bare step loop (the work of fit()'s inner loop) over threads x batch x layout."""
    x_all = data.train.images
    out = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (16, 32, 64):
            for layout in ("channels_last", "contiguous"):
                fmt = getattr(torch, f"{layout}_format" if layout == "contiguous" else layout)
                torch.manual_seed(0)
                model = ConvAutoencoder(AEConfig()).to(memory_format=fmt)
                opt = torch.optim.Adam(model.parameters(), lr=1e-3)
                order = torch.randperm(len(x_all))
                t = 0.0
                for i in range(n_steps + 20):
                    if i == 20:
                        t = time.perf_counter()
                    idx = order[i * batch : (i + 1) * batch]
                    x = x_all[idx].float().div_(255).contiguous(memory_format=fmt)
                    loss = nn.functional.mse_loss(model(x), x)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    loss.item()
                rate = n_steps * batch / (time.perf_counter() - t)
                out.append(
                    {"threads": threads, "batch": batch, "layout": layout, "images_per_s": rate}
                )
                print(f"  {threads} thread(s), batch {batch:>3}, {layout:<13}: {rate:>7.0f} img/s")
    return out


PROFILED_STEPS = 50


def profiled_fit(data, cfg: TrainConfig, team=None) -> str:
    """torch.profiler's top operators (self CPU time) over PROFILED_STEPS training steps
    of fit() (after 15 unrecorded ones; the scoring after the epoch is not recorded)."""
    act = [torch.profiler.ProfilerActivity.CPU]
    plan = torch.profiler.schedule(wait=10, warmup=5, active=PROFILED_STEPS, repeat=1)
    with torch.profiler.profile(activities=act, schedule=plan) as p:
        fit(cfg, data, lambda ev: p.step() if ev.kind == "step" else None, team=team)
    if team is not None and team.rank != 0:
        return ""  # only rank 0 sees the callback, so only it recorded steps
    return p.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)


def profile_one(data, threads: int) -> str:
    """profiled_fit() in this process with ``threads`` threads."""
    torch.set_num_threads(threads)
    return profiled_fit(scored_on(data, TEST_LIMIT), TrainConfig(epochs=1, limit=3200))


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


SECTIONS = ("throughput", "profile", "explore", "convergence")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="cifar10", help="data source (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="throughput rounds (default: 5)")
    ap.add_argument(
        "--images", type=int, default=10000, help="images per throughput round (default: 10000)"
    )
    ap.add_argument("--epochs", type=int, default=12, help="epochs for convergence (12)")
    ap.add_argument("--target", type=float, default=21.0, help="PSNR target in dB (21)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 throughput rounds of 3000 images, no convergence run",
    )
    ap.add_argument("--profile", action="store_true", help="also profile training steps")
    ap.add_argument("--explore", action="store_true", help="also the bare step-loop grid")
    ap.add_argument(
        "--only",
        default=None,
        help=f"comma-separated sections to run, of {', '.join(SECTIONS)} (default: "
        "throughput and convergence, plus --profile / --explore)",
    )
    ap.add_argument("--out", default=str(RESULTS), help="JSON results (default: %(default)s)")
    args = ap.parse_args()
    sections = {"throughput", "convergence"}
    sections |= {"profile"} if args.profile else set()
    sections |= {"explore"} if args.explore else set()
    if args.quick:
        args.rounds, args.images = 2, 3000
        sections.discard("convergence")
    if args.only:
        sections = {s.strip() for s in args.only.split(",")}
        if not sections <= set(SECTIONS):
            ap.error(f"--only takes {', '.join(SECTIONS)}, got {args.only!r}")
    sys.stdout.reconfigure(line_buffering=True)  # progress shows through a pipe too
    load_before = load_average()
    threads = configure_threads()
    root = data_root()
    data = load_dataset(args.data, root=root)
    report: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": {"one_process": threads, "per_worker": 1, "course": threads},
        "load_average_before": load_before,
        "args": vars(args),
        "sections": sorted(sections, key=SECTIONS.index),
        "train_images": len(data.train),
    }
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, {threads} threads (workers: 1 "
        f"each), {len(data.train)} train images, load average {load_before}"
    )
    if "throughput" in sections:
        report["throughput"] = run_throughput(args, data, root, threads)
    if "explore" in sections:
        print("bare step loop: threads x batch x layout (one process)")
        report["explore"] = explore(data)
        torch.set_num_threads(threads)
    if "profile" in sections:
        print(f"profile: {PROFILED_STEPS} training steps of fit() (batch 32), top self CPU time")
        report["profile"] = {
            f"1 process x {threads} threads": profile_one(data, threads),
            "1 process x 1 thread": profile_one(data, 1),
            "worker 0 of 2 x 1 thread": pair(
                args.data, root, {"epochs": 1, "limit": 3200}, profile=True, test_limit=TEST_LIMIT
            )["profile"],
        }
        torch.set_num_threads(threads)
        for name, table in report["profile"].items():
            print(f"  {name}\n{table}")
    if "convergence" in sections:
        report["convergence"] = run_convergence(args, data, root, threads)
    report["load_average_after"] = load_average()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"load average after {report['load_average_after']}; wrote {out}")
    print("\nREADME tables (from the JSON just written):\n" + markdown(report))


def markdown(report: dict) -> str:
    """The README's training-speed tables, filled from a results dict."""
    lines = []
    if "throughput" in report:
        med = report["throughput"]["medians"]
        bases = [b for b in (COURSE_MEM, COURSE_IF) if b in med]
        heads = {COURSE_MEM: "vs course, in memory", COURSE_IF: "vs course, ImageFolder"}
        lines += [
            "| pipeline | images/s | " + " | ".join(heads[b] for b in bases) + " |",
            "| --- | --- | " + " | ".join("---" for _ in bases) + " |",
        ]
        for name, m in med.items():
            ratios = " | ".join(f"{m / med[b]:.1f}x" for b in bases)
            lines.append(f"| {name} | {m:,.0f} | {ratios} |")
        lines.append("")
    if "convergence" in report:
        c = report["convergence"]
        epochs = report["args"]["epochs"]
        lines += [
            f"| {epochs} epochs | test PSNR after {epochs} epochs | training time to "
            f"{c['target_db']:g} dB | vs course |",
            "| --- | --- | --- | --- |",
        ]
        for name, psnr in c["final_psnr"].items():
            t, e = c["time_to_target_s"][name], c["epoch_reached"][name]
            when = f"{t:.1f} s (epoch {e})" if t else "not reached"
            ratio = c["course_over_ours"].get(name)
            vs = "1.0x" if name == COURSE_MEM else (f"{ratio:.1f}x shorter" if ratio else "-")
            lines.append(f"| {name} | {psnr:.2f} dB | {when} | {vs} |")
    return "\n".join(lines)


def run_throughput(args, data, root: Path, threads: int) -> dict:
    print("throughput (transpose decoder), alternating rounds")
    folder = _find_cifar_folder(root) if args.data == "cifar10" else None
    rates, startup = throughput(data, args.data, root, args.rounds, args.images, folder, threads)
    medians = {name: statistics.median(v) for name, v in rates.items()}
    base = medians[COURSE_MEM]
    one_name = OURS_1.format(t=threads)
    ratios = {
        "2 workers / 1 process": medians[OURS_2] / medians[one_name],
        "2 workers / 1 process, both at batch 256": medians[OURS_2_256] / medians[ONE_256],
        "ceiling / 1 process": medians[CEILING] / medians[one_name],
        "ours 1 process / course in memory": medians[one_name] / base,
        "ours 2 workers / course in memory": medians[OURS_2] / base,
    }
    if COURSE_IF in medians:
        ratios["ours 2 workers / course ImageFolder"] = medians[OURS_2] / medians[COURSE_IF]
    # The same ratio within each round (both measured seconds apart): its spread shows
    # how much the background load moved the medians.
    per_round = [a / b for a, b in zip(rates[OURS_2], rates[one_name], strict=True)]
    print(f"  {'pipeline':<56}{'median img/s':>13}{'vs course':>11}")
    for name, m in medians.items():
        print(f"  {name:<56}{m:>13.0f}{m / base:>10.1f}x")
    for name, r in ratios.items():
        print(f"  {name}: {r:.2f}x")
    print("  2 workers / 1 process, per round: " + ", ".join(f"{r:.2f}" for r in per_round))
    return {
        "images_per_round": args.images,
        "rounds": rates,
        "medians": medians,
        "ratios": ratios,
        "two_workers_over_one_process_per_round": per_round,
        "worker_pair_launch_to_first_step_s": startup,
    }


def run_convergence(args, data, root: Path, threads: int) -> dict:
    print(f"time to {args.target} dB over {args.epochs} epochs ({len(data.test)} test images)")
    rows = convergence(data, args.data, root, args.epochs, threads)
    reach = {name: first_reach(r, args.target) for name, r in rows.items()}
    conv = {
        "target_db": args.target,
        "rows": rows,
        "final_psnr": {name: r[-1]["psnr"] for name, r in rows.items()},
        "time_to_target_s": {n: (h["train_s"] if h else None) for n, h in reach.items()},
        "epoch_reached": {n: (h["epoch"] if h else None) for n, h in reach.items()},
    }
    course_s = conv["time_to_target_s"][COURSE_MEM]
    conv["course_over_ours"] = {
        n: (course_s / s if course_s and s else None)
        for n, s in conv["time_to_target_s"].items()
        if n != COURSE_MEM
    }
    for name in rows:
        hit = reach[name]
        when = f"{hit['train_s']:.1f} s (epoch {hit['epoch']})" if hit else "not reached"
        print(f"  {name}: {conv['final_psnr'][name]:.2f} dB after {args.epochs}, {when}")
    for name, r in conv["course_over_ours"].items():
        print(f"  course / {name}: {r:.1f}x" if r else f"  course / {name}: n/a")
    return conv


if __name__ == "__main__":
    main()
