"""``python -m convae probe CKPT``: does the code know the class? (a linear probe).

Prints accuracy on the code, the raw pixels and PCA of the pixels, with chance level,
overall and per class, as a table or JSON. Results are read from and stored in the data
root's code-space cache like the page's (``--no-cache`` computes afresh and stores nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_probe_parser(sub: argparse._SubParsersAction, data_help: str) -> None:
    """Add the ``probe`` subcommand to the command line's subparsers.

    Args:
        sub: the parser's ``add_subparsers()`` result.
        data_help: the shared help text of ``--data``.
    """
    p = sub.add_parser(
        "probe",
        help="linear class probe: how well a linear classifier reads the class from the "
        "code, against the raw pixels and PCA of the pixels",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="path of a .pt checkpoint (or a bare state_dict)")
    p.add_argument(
        "--data",
        default=None,
        help=data_help.replace(
            "(default: %(default)s)", "(default: the source the checkpoint was trained on)"
        ),
    )
    p.add_argument("--seed", type=int, default=0, help="picks the --max-train subset")
    p.add_argument(
        "--max-train",
        type=int,
        default=None,
        metavar="N",
        help="train the probes on N training pictures drawn with --seed (default: all)",
    )
    p.add_argument("--no-cache", action="store_true", help="compute afresh and store nothing")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_probe(args: argparse.Namespace) -> int:
    """Run the probes for ``args.checkpoint`` and print them.

    Returns:
        The exit status (0). Errors (a bad checkpoint, missing data, a code too small for a
        probe) are raised as ValueError / CheckpointError / DataNotFoundError, which the
        command line prints as one line.
    """
    from ..checkpoints import load_checkpoint
    from ..data import load_dataset
    from ..train import configure_threads
    from .cached import CodeSpace

    configure_threads()
    ck = load_checkpoint(args.checkpoint)
    source = args.data or ck.data_source or "cifar10"
    bar = None if args.quiet else _progress_bar()
    data = load_dataset(source, progress=bar)
    space = CodeSpace(ck.model, data, use_cache=not args.no_cache)
    t0 = time.perf_counter()
    report = space.probe(seed=args.seed, max_train=args.max_train, progress=bar)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    if args.json:
        out = {
            "checkpoint": args.checkpoint,
            "data": source,
            "seed": args.seed,
            "max_train": args.max_train,
            "chance": report.chance,
            "results": {name: r.to_dict() for name, r in report.results.items()},
            "sentence": report.sentence,
            "seconds": seconds,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(_table(args.checkpoint, source, report, seconds))
    return 0


def _table(checkpoint: str, source: str, report, seconds: float) -> str:
    results = list(report.results.values())
    first = results[0]
    heads = [r.features for r in results] + ["chance"]
    width = max(14, *(len(c) + 2 for c in first.classes))
    lines = [
        f"{checkpoint} on {source}: trained on {first.n_train:,} training pictures, "
        f"tested on {first.n_test:,} test pictures ({seconds:.1f} s)",
        f"{'class':<{width}}" + "".join(f"{h:>20}" for h in heads),
    ]
    for c, name in enumerate(first.classes):
        cells = [r.per_class[c] for r in results]
        lines.append(f"{name:<{width}}" + "".join(f"{100 * v:>19.1f}%" for v in cells))
    cells = [r.accuracy for r in results] + [report.chance]
    lines.append(f"{'all':<{width}}" + "".join(f"{100 * v:>19.1f}%" for v in cells))
    lines.append(report.sentence)
    return "\n".join(line.rstrip() for line in lines)


class _Bar:
    """A tqdm bar per stage of ``progress(done, total, what)`` on stderr."""

    def __init__(self) -> None:
        self._bar = None

    def __call__(self, done: int, total: int, what: str) -> None:
        from tqdm import tqdm

        if self._bar is None or self._bar.desc != what or self._bar.total != total:
            self.close()
            self._bar = tqdm(total=total, desc=what, file=sys.stderr, leave=False)
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _progress_bar() -> _Bar:
    return _Bar()
