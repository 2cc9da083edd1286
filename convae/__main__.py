"""Command line: ``python -m convae train|evaluate|info|compare``.

Errors are printed as one line (``error: ...``) with exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

# GNU OpenMP, which runs torch's threads, lets a thread that has done its part of an
# operation spin until the others are done. When other work takes a core now and then (a
# shared server, a classroom machine), it spins waiting for a thread that is not running;
# sleeping instead gives that core back, at the price of a wake-up per operation
# (bench/train_speed.py's "changes" section measures 1 thread against 2 spinning and 2
# sleeping; docs/training.md). A training runs on one thread unless --threads says more
# (convae.train.TRAINING_THREADS), where this changes nothing; it matters for a training
# on 2 or more threads (sleeping: slower on a quiet machine, far faster on a busy one)
# and for the other commands. The runtime reads this once, when torch is loaded, so the
# command line sets it before it imports torch; a value already in the environment wins.
OPENMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
if __name__ == "__main__":
    for _name, _value in OPENMP_ENV.items():
        os.environ.setdefault(_name, _value)

import torch  # noqa: E402

from .checkpoints import Checkpoint, CheckpointError, load_checkpoint  # noqa: E402
from .codespace.cli import add_probe_parser, cmd_probe  # noqa: E402
from .data import SOURCES, DataNotFoundError, load_dataset  # noqa: E402
from .models import DECODERS, count_parameters  # noqa: E402
from .recipes import cli_config, parse_classes  # noqa: E402
from .steps import PRECISIONS  # noqa: E402
from .train import (  # noqa: E402
    LOSSES,
    SCHEDULES,
    TRAINING_THREADS,
    TrainConfig,
    configure_threads,
    fit,
)

D = TrainConfig()  # defaults shown in --help come from the dataclass, stated once


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported as one line like every other error."""

    def error(self, message: str):
        print(f"error: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(2)


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"takes a whole number of training processes >= 1, got {text!r}"
        )
    return n


DATA_HELP = (
    f"data source: {', '.join(SOURCES)} (in $CONVAE_DATA, default ./data) or "
    "folder:PATH with PATH/train/<class>/* and PATH/test/<class>/*"
)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m convae",
        description="ConvAE Explorer: train and evaluate small convolutional autoencoders.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _evaluate_parser(sub)
    i = sub.add_parser("info", help="show a checkpoint's architecture, recipe and metrics")
    i.add_argument("checkpoint")
    _compare_parser(sub)
    add_probe_parser(sub, DATA_HELP)  # python -m convae probe CKPT (convae/codespace/cli.py)
    return p


def _command(sub, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose --help states every option's default."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    return sub.add_parser(name, help=summary, formatter_class=formatter)


def _data_and_classes(parser: argparse.ArgumentParser, default: str) -> None:
    """--data (its default said in words) and --classes, as evaluate and compare take them."""
    parser.add_argument("--data", default=None, help=f"{DATA_HELP} (default: {default})")
    parser.add_argument("--classes", default="", help="comma-separated classes (empty: all)")


# The train command's recipe options (TrainConfig fields, convae.recipes.CLI_RECIPE, plus
# --classes): flag -> add_argument's settings; the defaults are TrainConfig's.
RECIPE_OPTIONS = {
    "--decoder": dict(
        choices=DECODERS,
        default=D.decoder,
        help="transpose: ConvTranspose2d k2 s2; upsample: nearest x2 + Conv2d 3x3 (the "
        "course's two); transpose3/4: kernel 3/4; bilinear: bilinear x2 + Conv2d 3x3; "
        "subpixel(-icnr): Conv2d to 4x the channels + PixelShuffle (ICNR init)",
    ),
    "--loss": dict(
        choices=LOSSES,
        default=D.loss,
        help="reconstruction loss (bce as in the CIFAR assignment, mse as in the notes)",
    ),
    "--epochs": dict(type=int, default=D.epochs, help="passes over the training set"),
    "--batch-size": dict(
        type=int,
        default=D.batch_size,
        help="images per step over all workers (each of N workers takes 1/N of them)",
    ),
    "--lr": dict(type=float, default=D.lr, help="Adam peak learning rate, for the --batch-size"),
    "--classes": dict(
        default="", help="comma-separated class names to train on (empty: all classes)"
    ),
    "--limit": dict(
        type=int, default=None, help="use only the first N training images (default: all)"
    ),
    "--noise": dict(
        type=float,
        default=D.noise,
        help="std of Gaussian noise added to inputs (targets stay clean)",
    ),
    "--corruption": dict(
        default=D.corruption,
        help="corrupt the inputs, targets clean: gauss:STD, saltpepper:FRACTION, "
        "mask:SIDE (A-B ranges allowed), grey, drop:r|g|b|any; several "
        "joined by commas pick one per image (default: none)",
    ),
    "--seed": dict(type=int, default=D.seed, help="random seed (same seed, same model)"),
    "--schedule": dict(
        choices=SCHEDULES,
        default=D.schedule,
        help="learning rate: cosine (warm-up, then cosine decay) or onecycle",
    ),
    "--precision": dict(
        choices=PRECISIONS,
        default=D.precision,
        help="bf16: convolutions in bfloat16 (weights, optimiser and loss stay float32); "
        "auto: bf16 where the CPU or GPU has it in hardware, else fp32",
    ),
    "--device": dict(
        choices=("auto", "cpu", "cuda"), default=D.device, help="auto uses CUDA when present"
    ),
}


def _train_parser(sub) -> None:
    t = _command(sub, "train", "train a model and write a checkpoint")
    t.add_argument("--data", default="cifar10", help=DATA_HELP)
    for flag, settings in RECIPE_OPTIONS.items():
        t.add_argument(flag, **settings)
    _run_arguments(t)


def _run_arguments(t: argparse.ArgumentParser) -> None:
    """How ``train`` runs and what it writes (not part of the recipe)."""
    t.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per process (default: $CONVAE_THREADS, else 1: this model's "
        "convolutions are too small to gain from more; see docs/training.md)",
    )
    t.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="train with N processes on this machine (DistributedDataParallel started "
        "through torchrun's engine; one per CPU core or GPU); the same as 'torchrun "
        "--nproc-per-node N -m convae train ...'",
    )
    t.add_argument(
        "--out", default=None, help="checkpoint to write (default: checkpoints/<data>-<decoder>.pt)"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--snapshots",
        type=int,
        default=0,
        metavar="K",
        help="also store the weights at step 0 and at K evenly spaced steps in the "
        "checkpoint, to watch artifacts form over training (0: none)",
    )


def _evaluate_parser(sub) -> None:
    e = _command(
        sub,
        "evaluate",
        "test MSE, PSNR, SSIM and grid artifacts (tiles, checkerboard) of a checkpoint",
    )
    e.add_argument("checkpoint", help="path of a .pt checkpoint (or a bare state_dict)")
    _data_and_classes(e, "the source the checkpoint was trained on")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _compare_parser(sub) -> None:
    c = _command(
        sub,
        "compare",
        "PSNR, SSIM and grid artifacts of two or more checkpoints on one test split: per "
        "class for two, and the decoder family table with one sentence per model",
    )
    c.add_argument(
        "checkpoints",
        nargs="+",
        metavar="CHECKPOINT",
        help="two or more .pt checkpoints, e.g. the transpose and the upsample model, or "
        "every decoder of the family",
    )
    _data_and_classes(c, "the first checkpoint's source")
    c.add_argument(
        "--baselines",
        action="store_true",
        help="also measure PCA and a downsample keeping as many numbers per image as the "
        "code (PCA is fitted on the training split once and cached in <data root>/cache)",
    )
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _progress_bar():
    from tqdm import tqdm

    bar = {"b": None}

    def decode_progress(done: int, total: int, what: str) -> None:
        if bar["b"] is None or bar["b"].desc != what:
            if bar["b"] is not None:
                bar["b"].close()
            bar["b"] = tqdm(total=total, desc=what, unit="img", file=sys.stderr)
        bar["b"].n = done
        bar["b"].refresh()
        if done >= total:
            bar["b"].close()
            bar["b"] = None

    return decode_progress


def cmd_train(args: argparse.Namespace) -> int:
    from . import distributed

    world = distributed.env_world()  # > 1: this process is one of torchrun's ranks
    if world > 1 and args.workers not in (1, world):
        raise ValueError(
            f"--workers {args.workers} under torchrun, which started {world} processes: "
            "leave --workers out and set the number with torchrun's --nproc-per-node"
        )
    workers = max(world, args.workers)
    cfg = cli_config(args, workers)
    default_name = Path(args.data.removeprefix("folder:")).name or "data"
    out = Path(args.out or f"checkpoints/{default_name}-{args.decoder}.pt")
    if world > 1:
        _train_rank(args, cfg, out)  # ends the process
    if workers > 1:
        return _launch_workers(args, cfg, out)
    threads = configure_threads(args.threads, default=TRAINING_THREADS)
    data = load_dataset(args.data, progress=None if args.quiet else _progress_bar())
    try:
        result = fit(cfg, data, _train_progress(args, cfg), snapshots=args.snapshots)
    except KeyboardInterrupt:  # Ctrl-C: fit() itself never sees it, so nothing is written
        print("\ninterrupted: no checkpoint written", file=sys.stderr)
        return 130
    return _save_result(args, cfg, data, result, out, f"on {threads} threads")


def _train_progress(args: argparse.Namespace, cfg: TrainConfig):
    """fit()'s callback for the command line: a tqdm bar, or one line per epoch."""
    from tqdm import tqdm

    bar = None

    def on_event(ev) -> None:
        nonlocal bar
        if args.quiet:
            if ev.kind == "epoch":
                print(
                    f"epoch {ev.epoch}/{ev.epochs}: train loss {ev.loss:.4f}, test PSNR "
                    f"{ev.test_psnr:.2f} dB, {ev.images_per_s:.0f} img/s",
                    file=sys.stderr,
                )
            return
        if bar is None:
            bar = tqdm(
                total=ev.epochs * ev.steps_per_epoch,
                unit="step",
                file=sys.stderr,
                desc=f"train {cfg.decoder}",
            )
        if ev.kind == "step":
            bar.update(1)
            if ev.step % 20 == 0:
                bar.set_postfix(
                    epoch=ev.epoch, loss=f"{ev.loss:.4f}", img_s=f"{ev.images_per_s:.0f}"
                )
        else:
            bar.write(
                f"epoch {ev.epoch}/{ev.epochs}: train loss {ev.loss:.4f}, "
                f"test PSNR {ev.test_psnr:.2f} dB, {ev.images_per_s:.0f} img/s"
            )
        if ev.kind == "epoch" and ev.epoch == ev.epochs:
            bar.close()

    return on_event


def _save_result(args, cfg: TrainConfig, data, result, out: Path, how: str) -> int:
    """Write the trained model to ``out`` (atomically) and print its scores."""
    if result.diverged:
        print(f"warning: {result.diverged}", file=sys.stderr)
    if result.epochs_done == 0:
        print("error: no epoch finished, so no checkpoint was written", file=sys.stderr)
        return 1
    Checkpoint.from_training(result, args.data).save(out)
    m = result.test_metrics
    print(
        f"wrote {out}: test PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, "
        f"{result.seconds:.0f} s {how}"
    )
    if "task" in m:
        t = m["task"]
        print(
            f"on corrupted test inputs ({t['spec']}): PSNR {t['psnr']:.2f} dB, SSIM "
            f"{t['ssim']:.4f}, corrupted region {t['region_psnr']:.2f} dB (input: "
            f"{t['input_psnr']:.2f} / {t['input_region_psnr']:.2f} dB)"
        )
    return 0


# Grid-artifact columns of the tables: measure key -> column heading (grey levels).
ARTIFACT_COLUMNS = {"blockiness4": "tiles4", "blockiness2": "tiles2", "checkerboard": "checker"}
UNITS = (
    "tiles4 / tiles2: extra step across the decoder's 4x4 / 2x2 tile edges beyond the "
    "input's; checker: period-2 pattern common to the images above chance; all in 8-bit "
    "grey levels, (floor) = what error of the same size with no grid structure scores"
)


def _artifact_cells(r: dict) -> str:
    return "".join(f"{r[k]:>9.2f} ({r[k + '_floor']:>5.2f})" for k in ARTIFACT_COLUMNS)


def _artifact_heading() -> str:
    return "".join(f"{h + ' (floor)':>17}" for h in ARTIFACT_COLUMNS.values())


def _launch_workers(args: argparse.Namespace, cfg: TrainConfig, out: Path) -> int:
    """``--workers N``: check what can be checked here, then start N ranks."""
    from . import distributed
    from .train import batch_images, resolve_device, training_split

    device = resolve_device(cfg.device)
    if device.type == "cpu" and cfg.workers > (os.cpu_count() or 1):
        raise ValueError(
            f"--workers {cfg.workers} is more than the {os.cpu_count()} CPU cores here: "
            "each worker needs a core of its own, so use at most that many (several "
            "machines: see torchrun in the README)"
        )
    if device.type == "cuda" and cfg.workers > torch.cuda.device_count():
        raise ValueError(
            f"--workers {cfg.workers} on CUDA needs a GPU per worker, found "
            f"{torch.cuda.device_count()}: use fewer workers or --device cpu"
        )
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    # Decoded once here, with the progress bar: the workers then map the cache.
    data = load_dataset(args.data, progress=None if args.quiet else _progress_bar())
    # Unknown classes, none left, a batch too small to share: one error here, not N.
    batch_images(cfg, len(training_split(data, cfg)[0]))
    return distributed.launch(cfg.workers, args.argv, out, args.threads)


def _train_rank(args: argparse.Namespace, cfg: TrainConfig, out: Path) -> NoReturn:
    """One rank of a torchrun (or ``--workers``) run: train its share; rank 0 writes.
    A rank that finished ends its process here (:func:`convae.distributed.finish_rank`)."""
    from . import distributed

    team = distributed.join(cfg.device)
    try:
        code = _train_share(args, cfg, out, team)
    except BaseException:
        distributed.leave(team)
        raise
    distributed.finish_rank(code)


def _train_share(args: argparse.Namespace, cfg: TrainConfig, out: Path, team) -> int:
    """This rank's part of the run, up to the barrier every rank passes at its end."""
    from . import distributed

    threads = configure_threads(args.threads, processes=team.local_world, default=TRAINING_THREADS)
    main_rank = team.rank == 0
    # Each machine's first rank decodes the data set (once, into the cache) before
    # the others map it; not N decodes of the same files at once.
    if team.local_rank != 0:
        team.barrier()
    progress = _progress_bar() if team.local_rank == 0 and not args.quiet else None
    data = load_dataset(args.data, progress=progress)
    if team.local_rank == 0:
        team.barrier()
    callback = _train_progress(args, cfg) if main_rank else None
    try:
        result = fit(cfg, data, callback, snapshots=args.snapshots, team=team)
    except KeyboardInterrupt:
        if main_rank and not os.environ.get(distributed.LAUNCHED_ENV):
            print("\ninterrupted: no checkpoint written", file=sys.stderr)
        return 130
    # Every rank waits for rank 0 to have written before any of them ends. If rank 0
    # fails instead, the launcher stops the others.
    if not main_rank:
        team.barrier()
        return 0
    how = f"on {team.world} workers of {threads} thread(s) each"
    code = _save_result(args, cfg, data, result, out, how)
    team.barrier()
    return code


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .compare import class_rows, score_images

    configure_threads()
    ck = load_checkpoint(args.checkpoint)
    source = args.data or ck.data_source or "cifar10"
    data = load_dataset(source, progress=_progress_bar())
    test = data.test.filter(parse_classes(args.classes))
    if len(test) == 0:
        raise ValueError("no test images of the chosen classes: pick classes that have images")
    scores = {"model": score_images(ck.model, test)}
    rows = class_rows(scores, test.labels, test.classes)
    figures = [{k: v for k, v in r.items() if k not in ("class", "model")} for r in rows]
    overall = figures[-1]  # class_rows puts the "all" row last
    per_class = {r["class"]: f for r, f in zip(rows[:-1], figures[:-1], strict=True)}
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": args.checkpoint,
                    "data": source,
                    **overall,
                    "per_class": per_class,
                    "units": UNITS,
                },
                indent=2,
            )
        )
        return 0
    print(f"{args.checkpoint} on {source} test split ({overall['n']} images)")
    print(f"{'class':<14}{'n':>6}{'MSE':>10}{'PSNR dB':>10}{'SSIM':>8}{_artifact_heading()}")
    for name, r in [*per_class.items(), ("all", overall)]:
        print(
            f"{name:<14}{r['n']:>6}{r['mse']:>10.5f}{r['psnr']:>10.2f}{r['ssim']:>8.4f}"
            f"{_artifact_cells(r)}"
        )
    print(UNITS)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    ck = load_checkpoint(args.checkpoint)
    print(
        json.dumps(
            {
                "model_config": ck.config.to_dict(),
                "parameters": count_parameters(ck.model),
                "bare_state_dict": ck.bare,
                "train_config": ck.train_config,
                "test_metrics": ck.test_metrics,
                "data_source": ck.data_source,
                "created": ck.created,
                "snapshot_steps": [s.get("step") for s in ck.snapshots],
                # The run's own clock (fit()'s elapsed_s after its last epoch): the
                # README's training times are read from here.
                "epochs_done": len(ck.history),
                "training_s": (ck.history[-1].get("elapsed_s") if ck.history else None),
            },
            indent=2,
        )
    )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import time

    from .baselines import baselines_for
    from .compare import class_rows, score_images
    from .family import checkpoint_labels, family_row, format_table

    if len(args.checkpoints) < 2:
        raise ValueError("compare takes two or more checkpoints, got one")
    configure_threads()
    cks = [load_checkpoint(path) for path in args.checkpoints]
    names = checkpoint_labels(args.checkpoints, [ck.config.decoder for ck in cks])
    source = args.data or cks[0].data_source or "cifar10"
    data = load_dataset(source, progress=_progress_bar())
    test = data.test.filter(parse_classes(args.classes))
    if len(test) == 0:
        raise ValueError("no test images of the chosen classes: pick classes that have images")
    models = dict(zip(names, (ck.model for ck in cks), strict=True))
    fit_seconds = None
    if args.baselines:
        t0 = time.perf_counter()
        base = baselines_for(data)
        fit_seconds = time.perf_counter() - t0
        models.update(base)
    t0 = time.perf_counter()
    # One pass per model gives both tables: per class (as per_class_table) and the family's.
    scores = {name: score_images(model, test) for name, model in models.items()}
    rows = class_rows(scores, test.labels, test.classes)
    family = [family_row(n, ck.model, scores[n].mean()) for n, ck in zip(names, cks, strict=True)]
    seconds = time.perf_counter() - t0
    if args.json:
        out = {
            "checkpoints": dict(zip(names, args.checkpoints, strict=True)),
            "data": source,
            "seconds": seconds,
            "units": UNITS,
            "rows": rows,
            "family": family,
        }
        if fit_seconds is not None:
            out["baselines_seconds"] = fit_seconds  # PCA fit (or cache read) + set-up
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{' vs '.join(args.checkpoints)} on {source} test split ({len(test)} images, "
        f"{seconds:.1f} s)"
    )
    if len(cks) == 2:  # two models: every class, as it always was
        wc = max(len(r["class"]) for r in rows) + 2
        wm = max(map(len, models)) + 2
        print(
            f"{'class':<{wc}}{'model':<{wm}}{'n':>6}{'PSNR dB':>9}{'SSIM':>8}{_artifact_heading()}"
        )
        for r in rows:
            print(
                f"{r['class']:<{wc}}{r['model']:<{wm}}{r['n']:>6}{r['psnr']:>9.2f}"
                f"{r['ssim']:>8.4f}{_artifact_cells(r)}"
            )
        print(UNITS)
        print()
    print(format_table(family))
    if len(cks) != 2:
        print(UNITS)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # what --workers N hands on to each worker
    try:
        return {
            "train": cmd_train,
            "evaluate": cmd_evaluate,
            "info": cmd_info,
            "compare": cmd_compare,
            "probe": cmd_probe,
        }[args.command](args)
    # RuntimeError: what torch raises for a tensor on the wrong device, memory it cannot
    # get, a training worker that vanished, ...: one line too, not a traceback.
    except (CheckpointError, DataNotFoundError, ValueError, OSError, RuntimeError) as exc:
        return _report(exc)


def _report(exc: Exception) -> int:
    """Print ``error: ...`` (one line) and give the exit status.

    A worker started by ``--workers`` prints nothing: it leaves its message in the error
    file torchrun gave it, and the launcher prints the first failure's in one line. A
    worker whose partner died (a collective call failed) exits with
    LOST_PARTNER_STATUS, so the launcher names the partner, the cause.
    """
    from . import distributed

    text = " ".join(str(exc).split()) or type(exc).__name__
    if os.environ.get(distributed.LAUNCHED_ENV):
        if isinstance(exc, torch.distributed.DistError):
            # Out at once: left to the interpreter's shutdown, a gloo thread that lost
            # its peer was destroyed still running, C++ printed "terminate called without
            # an active exception" and the worker died by SIGABRT, which the launcher
            # could take for the cause (a CI run, 2026-12-06).
            distributed.finish_rank(distributed.LOST_PARTNER_STATUS)
        if distributed.record_error(text):
            return 2
    rank = os.environ.get("RANK", "0") if distributed.env_world() > 1 else "0"
    print(f"error: {'' if rank == '0' else f'(rank {rank}) '}{text}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
