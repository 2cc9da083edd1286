"""What the Code space page costs, and what it finds, on the full CIFAR-10 with both
shipped models (cifar10-transpose, cifar10-upsample).

Measured through :class:`convae.codespace.CodeSpace`, the page's entry point, with its
cache in a fresh temporary folder (so every first computation is real; the data set
itself is read from the data root as usual), 2 torch threads and 2 openTSNE threads:

* first computations, each in a fresh ``CodeSpace`` (so each pays its own encoding):
  the PCA map, the t-SNE map, the raw-pixel map, the per-picture scores, the neighbour
  tables, the probes, the channel report; results that depend on the data only (pixel
  map, pixel and PCA neighbours and probes, the PCA-256 fit) are paid by the first model
  and read from the cache by the second, and are timed apart (progress phases);
* the probe 3 times with the same seed (fresh instances, no cache): accuracy spread;
* a warm open: a new ``CodeSpace`` per model reading what the page opens with (both
  models' PCA maps and scores, the raw-pixel map), and everything else;
* per click: one picture's neighbours in the three spaces and its reconstructions by
  both models; a lasso of 50 pictures through both models; 8 pictures with a channel
  switched off; a channel swap. Median of 20, CPU time of this process.

Wall times depend on the load average (other agents share these 2 cores): each entry has
the CPU seconds of this process next to its wall seconds, and the load average is
recorded before and after.

Usage::

    python bench/codespace.py [--out bench/results/codespace.json] [--clicks 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from convae.checkpoints import load_checkpoint  # noqa: E402
from convae.codespace import CodeSpace  # noqa: E402
from convae.codespace.features import encode_split  # noqa: E402
from convae.codespace.probe import linear_probe  # noqa: E402
from convae.codespace.selection import select, swap_pictures, switch_off_pictures  # noqa: E402
from convae.data import load_dataset  # noqa: E402

MODELS = ("cifar10-transpose", "cifar10-upsample")
THREADS = 2


def timed(fn: Callable, *args, **kwargs) -> tuple[object, dict]:
    """Run ``fn`` and return (its result, {"wall_s", "cpu_s"})."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


class Phases:
    """A progress callback that notes when each stage ("what") starts and ends."""

    def __init__(self) -> None:
        self.spans: dict[str, list[float]] = {}
        self.t0 = time.perf_counter()

    def __call__(self, done: int, total: int, what: str) -> None:
        now = time.perf_counter() - self.t0
        span = self.spans.setdefault(what, [now, now])
        span[1] = now

    def report(self) -> dict[str, float]:
        """Seconds from the end of the previous stage to the end of each stage."""
        out, last = {}, 0.0
        for what, (_, end) in sorted(self.spans.items(), key=lambda kv: kv[1][1]):
            out[what] = round(end - last, 3)
            last = end
        return out


def first_computations(model, data, root: Path) -> dict:
    """Each result computed for the first time, each in a fresh CodeSpace."""
    out = {}
    for name, call in (
        ("pca_map", lambda s, p: s.map("pca", progress=p)),
        ("tsne_map", lambda s, p: s.map("tsne", progress=p)),
        ("pixel_map", lambda s, p: s.pixel_map(progress=p)),
        ("scores", lambda s, p: s.scores(progress=p)),
        ("neighbours", lambda s, p: s.neighbours(progress=p)),
        ("probe", lambda s, p: s.probe(seed=0, progress=p)),
        ("channels", lambda s, p: s.channels(progress=p)),
    ):
        space = CodeSpace(model, data, root=root, threads=THREADS)
        phases = Phases()
        result, t = timed(call, space, phases)
        out[name] = {**t, "phases": phases.report(), "result": result}
        print(f"  {name}: {t['wall_s']:.1f} s wall, {t['cpu_s']:.1f} s CPU", flush=True)
    return out


def probe_repeats(model, data, n: int = 3) -> dict:
    """The code probe ``n`` times with the same recipe (encoding included each time)."""
    runs = []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        train, test = encode_split(model, data.train), encode_split(model, data.test)
        r = linear_probe(train, data.train.labels, test, data.test.labels, data.classes)
        runs.append(
            {
                "accuracy": r.accuracy,
                "iterations": r.iterations,
                "wall_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0,
            }
        )
    accs = [r["accuracy"] for r in runs]
    return {"runs": runs, "spread": max(accs) - min(accs)}


def warm_open(models: dict, data, root: Path) -> dict:
    """What the page reads on opening, and everything else, from a warm cache."""

    def page_open() -> None:
        for name, m in models.items():
            space = CodeSpace(m, data, root=root)
            space.map("pca")
            space.scores()
            if name == next(iter(models)):
                space.pixel_map()

    def everything() -> None:
        for m in models.values():
            space = CodeSpace(m, data, root=root)
            space.map("pca"), space.map("tsne"), space.pixel_map(), space.scores()
            space.neighbours(), space.probe(), space.channels()

    rounds = {"open": [timed(page_open)[1] for _ in range(5)]}
    rounds["everything"] = [timed(everything)[1] for _ in range(3)]
    return {
        k: {
            "median_wall_s": statistics.median(r["wall_s"] for r in v),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in v),
        }
        for k, v in rounds.items()
    }


def clicks(models: dict, data, root: Path, n: int) -> dict:
    """Per-click work, median CPU over ``n`` repetitions."""
    first = next(iter(models.values()))
    space = CodeSpace(first, data, root=root)
    nb = space.neighbours()
    means = space.channels().means
    test = data.test
    g = torch.Generator().manual_seed(0)
    lasso = torch.randperm(len(test), generator=g)[:50].tolist()

    def one_picture() -> None:
        picked = [i for t in nb.tables.values() for i in t.of(123)[0]]
        select(models, test, [123, *picked])

    work = {
        "click_neighbour_lookup": lambda: [t.of(123) for t in nb.tables.values()],
        # The picture and its 3 x 8 neighbours, each rebuilt by both models: an upper
        # bound of what a click shows.
        "click_neighbours_and_reconstructions": one_picture,
        "lasso_50_reconstructions": lambda: select(models, test, lasso),
        "switch_off_8_pictures": lambda: switch_off_pictures(first, test.images[:8], 2, means),
        "swap_channel": lambda: swap_pictures(first, test.images[0], test.images[1], 2),
    }
    out: dict = {}
    # One thread, as a page's script thread runs a click (and two: on a busy machine the
    # second OpenMP thread mostly waits for the first, and its waiting is CPU time too).
    for threads in (1, THREADS):
        torch.set_num_threads(threads)
        for name, fn in work.items():
            fn()  # first call (imports, allocator) not counted
            ts = [timed(fn)[1] for _ in range(n)]
            out.setdefault(f"{threads}_thread", {})[name] = {
                "median_cpu_ms": 1000 * statistics.median(t["cpu_s"] for t in ts),
                "median_wall_ms": 1000 * statistics.median(t["wall_s"] for t in ts),
            }
    torch.set_num_threads(THREADS)
    return out


def summarise(first: dict) -> dict:
    """The figures a reader wants from one model's first computations."""
    nb, probe, ch = (first[k]["result"] for k in ("neighbours", "probe", "channels"))
    return {
        "neighbour_rates": {name: t.agreement for name, t in nb.tables.items()},
        "neighbour_chance": nb.chance,
        "neighbour_sentence": nb.sentence,
        "probe": {name: r.to_dict() for name, r in probe.results.items()},
        "probe_sentence": probe.sentence,
        "channels": {
            "psnr": ch.psnr,
            "switch_off": [vars(r) for r in ch.switch_off],
            "correlations": ch.correlations,
            "sentence": ch.sentence,
            "dead": ch.dead,
        },
        "pca_shares": first["pca_map"]["result"].shares,
        "pixel_pca_shares": first["pixel_map"]["result"].shares,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "codespace.json")
    p.add_argument("--clicks", type=int, default=20, help="repetitions per click measure")
    p.add_argument(
        "--data",
        default="cifar10",
        help="data source (cifar10-sample: a quick check, default: %(default)s)",
    )
    args = p.parse_args()
    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()
    data = load_dataset(args.data)
    models = {m: load_checkpoint(ROOT / "checkpoints" / f"{m}.pt").model for m in MODELS}
    result: dict = {"per_model": {}}
    with tempfile.TemporaryDirectory(prefix="codespace-bench-") as tmp:
        root = Path(tmp)
        # The PCA-256 of the pixels (the project's PCA baseline, fitted once per data set
        # and cached): timed on its own so that it does not hide in the first neighbours.
        from convae.baselines import pca_baseline

        result["pca256_fit"] = timed(pca_baseline, data, None, root)[1]
        print(f"PCA 256 fit: {result['pca256_fit']}", flush=True)
        for name, model in models.items():
            print(name, flush=True)
            first = first_computations(model, data, root)
            entry = summarise(first)
            entry["first"] = {
                k: {kk: vv for kk, vv in v.items() if kk != "result"} for k, v in first.items()
            }
            entry["probe_repeats"] = probe_repeats(model, data)
            result["per_model"][name] = entry
        result["warm"] = warm_open(models, data, root)
        result["clicks"] = clicks(models, data, root, args.clicks)
    import openTSNE

    result.update(
        {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python", *sys.argv]),
            "data": f"{args.data}: {len(data.train)} train / {len(data.test)} test pictures",
            "threads": THREADS,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "versions": {"torch": torch.__version__, "openTSNE": openTSNE.__version__},
            "load_before": load_before,
            "load_after": os.getloadavg(),
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
