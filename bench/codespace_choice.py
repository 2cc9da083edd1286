"""Which non-linear map for the Code space page: openTSNE's t-SNE or umap-learn's UMAP?

Both run on the 10,000 CIFAR-10 test codes (4x8x8 = 256 numbers each) of a shipped
checkpoint, with 2 threads, each in a fresh Python process (so that a first call pays
what a fresh server pays: imports and, for UMAP, numba's compilation of its kernels).
A second UMAP fit in the same process is timed too (compiled kernels warm).

Quality, on the whole map:

* trustworthiness at 10 neighbours (Venna and Kaski 2001; scikit-learn's
  ``sklearn.manifold.trustworthiness``): 1 when every picture's 10 nearest on the map
  are among its nearest in code space;
* 10-NN class agreement on the map: the fraction of each picture's 10 nearest on the map
  with its class (convae.codespace.neighbours), against the same in code space itself.

t-SNE is run exactly as the library runs it (``convae.codespace.projection.tsne_map``);
UMAP with umap-learn's defaults (15 neighbours, min_dist 0.1) and ``n_jobs=2``. umap-learn
is not a dependency of the app: install it apart to rerun this, e.g.
``pip install --target /tmp/umap umap-learn==0.5.12`` and ``PYTHONPATH=/tmp/umap``.

Usage::

    python bench/codespace_choice.py [--models cifar10-transpose cifar10-upsample]
        [--out bench/results/codespace-choice.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one_run(method: str, model: str) -> dict:
    """In this (fresh) process: encode the test split, map it, measure the map."""
    import torch

    torch.set_num_threads(2)
    from sklearn.manifold import trustworthiness

    from convae.checkpoints import load_checkpoint
    from convae.codespace.features import encode_split
    from convae.codespace.neighbours import class_agreement, nearest
    from convae.codespace.projection import tsne_map
    from convae.data import load_dataset

    data = load_dataset("cifar10")
    codes = encode_split(load_checkpoint(ROOT / "checkpoints" / f"{model}.pt").model, data.test)
    rows = codes.flatten(1)
    out: dict = {"method": method, "model": model, "load_before": os.getloadavg()}
    t0, c0 = time.perf_counter(), time.process_time()
    if method == "tsne":
        import openTSNE

        out["version"] = openTSNE.__version__
        coords = tsne_map(rows, threads=2)
    else:
        import umap

        out["version"] = umap.__version__ if hasattr(umap, "__version__") else "?"
        coords = torch.from_numpy(umap.UMAP(n_jobs=2).fit_transform(rows.numpy()))
    out["first_wall_s"] = time.perf_counter() - t0
    out["first_cpu_s"] = time.process_time() - c0
    if method == "umap":
        t0, c0 = time.perf_counter(), time.process_time()
        umap.UMAP(n_jobs=2).fit_transform(rows.numpy())
        out["second_wall_s"] = time.perf_counter() - t0
        out["second_cpu_s"] = time.process_time() - c0
    labels = data.test.labels
    out["trustworthiness10"] = float(trustworthiness(rows.numpy(), coords.numpy(), n_neighbors=10))
    out["knn10_class_agreement_map"] = class_agreement(nearest(coords, 10)[0], labels)
    out["knn10_class_agreement_code"] = class_agreement(nearest(rows, 10)[0], labels)
    out["load_after"] = os.getloadavg()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["cifar10-transpose", "cifar10-upsample"])
    p.add_argument("--methods", nargs="+", default=["tsne", "umap"])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "codespace-choice.json")
    p.add_argument("--one", nargs=2, metavar=("METHOD", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one_run(*args.one)))
        return 0
    runs = []
    for model in args.models:
        for method in args.methods:
            r = subprocess.run(
                [sys.executable, __file__, "--one", method, model],
                capture_output=True, text=True, cwd=ROOT, check=True,
            )  # fmt: skip
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    import sklearn
    import torch

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"torch": torch.__version__, "scikit-learn": sklearn.__version__},
        "threads": 2,
        "note": "wall times depend on the load average (other jobs share the 2 cores); "
        "CPU seconds are this process's own",
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
