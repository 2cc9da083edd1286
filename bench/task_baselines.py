"""The task checkpoints' "plain model on the same" column (docs/checkpoints.md): each shipped
plain CIFAR-10 model on its decoder's task, the test split corrupted as the task model was
trained (its recipe's ``corruption``), drawn from the same seed as the task model's own
figure (convae.tasks.evaluate_corrupted).

    CONVAE_DATA=./data .venv/bin/python bench/task_baselines.py [--out ...]

Writes bench/results/task_baselines.json and prints the column as the table shows it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import ROOT, add_out_argument, run_stamp, write_results  # noqa: E402
from convae.checkpoints import load_checkpoint  # noqa: E402
from convae.data import load_dataset  # noqa: E402
from convae.tasks import evaluate_corrupted  # noqa: E402

TASKS = ("denoise", "inpaint", "colorize")
DECODERS = ("transpose", "upsample")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_out_argument(p, "task_baselines.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("cifar10")
    ck = ROOT / "checkpoints"
    result = run_stamp(command="python bench/task_baselines.py", threads=1, rows=[])
    for task in TASKS:
        for decoder in DECODERS:
            task_ck = load_checkpoint(ck / f"cifar10-{task}-{decoder}.pt")
            plain = load_checkpoint(ck / f"cifar10-{decoder}.pt")
            spec = task_ck.train_config["corruption"]
            got = evaluate_corrupted(plain.model, data.test, spec, with_ssim=False)
            row = {
                "task_checkpoint": f"cifar10-{task}-{decoder}.pt",
                "plain_checkpoint": f"cifar10-{decoder}.pt",
                "plain_test_psnr": plain.test_metrics["psnr"],
                "corruption": spec,
                **got,
            }
            result["rows"].append(row)
            cell = f"{got['psnr']:.2f}"
            if task != "colorize":  # a dropped plane or grey picture has no region
                cell += f" / {got['region_psnr']:.2f}"
            print(f"{row['task_checkpoint']}: plain model on the same {cell} dB", flush=True)
    write_results(args.out, result)


if __name__ == "__main__":
    main()
