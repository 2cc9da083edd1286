"""Training speed: ConvAE Explorer's trainer against the course pipeline, in one process.

The course pipeline is what the notebooks do: a torchvision-style data set that turns
each stored uint8 image into a PIL image and applies ``ToTensor`` per sample, a
``DataLoader`` with batch 20, the transpose model with ``nn.BCELoss`` on its sigmoid
output and Adam at 1e-3, in two forms: over the same in-memory uint8 images as
torchvision's CIFAR10 holds them (the faster, conservative baseline), and as the course
code runs on the JPEG copy here, ImageFolder + ToTensor decoding each file per sample.
Ours is ``convae.train.fit`` (defaults, plus BCE and a large-batch variant).

Two measurements:
1. Throughput: images/s of each, in alternating rounds so that load from other
   processes hits both alike; medians and their ratio are printed.
2. Convergence: both train for --epochs epochs; test PSNR after every epoch, training
   seconds to first reach --target dB (evaluation time excluded for both).

Usage: python bench/train_speed.py [--epochs 12] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convae.data import ImageSet, _find_cifar_folder, data_root, load_dataset  # noqa: E402
from convae.models import AEConfig, ConvAutoencoder  # noqa: E402
from convae.train import TrainConfig, configure_threads, evaluate, fit  # noqa: E402


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


def ours_images_per_s(data, n: int, seed: int, **recipe) -> float:
    rates = []
    fit(
        TrainConfig(epochs=1, limit=n, seed=seed, **recipe),
        data,
        lambda ev: rates.append(ev.images_per_s) if ev.kind == "step" else None,
    )
    return rates[-1]


def throughput(data, rounds: int, n: int, folder: Path | None) -> dict[str, list[float]]:
    """images/s of each pipeline, measured in alternating rounds."""
    from torchvision.datasets import ImageFolder

    runs = {"course, in-memory CIFAR10-style data set": CourseRun(data.train)}
    if folder is not None:  # what the course code does on the JPEG copy: decode per sample
        runs["course, ImageFolder on the JPEG files"] = CourseRun(
            ImageFolder(str(folder / "train"), transform=transforms.ToTensor())
        )
    ours = {
        "ours, fit() defaults (MSE, batch 32)": {},
        "ours, fit() BCE batch 32": {"loss": "bce"},
        "ours, fit() MSE batch 256, lr 6e-3": {"loss": "mse", "batch_size": 256, "lr": 6e-3},
    }
    out: dict[str, list[float]] = {k: [] for k in [*runs, *ours]}
    for run in runs.values():
        run.train_images(400)  # warm-up
    ours_images_per_s(data, 640, 0)
    for r in range(rounds):
        for name, run in runs.items():
            out[name].append(n / run.train_images(n))
        for name, recipe in ours.items():
            out[name].append(ours_images_per_s(data, n, r, **recipe))
        print(f"  round {r + 1}: " + ", ".join(f"{v[-1]:.0f}" for v in out.values()), flush=True)
    return out


def convergence(data, epochs: int, loss: str) -> tuple[list[dict], list[dict]]:
    course_rows, run, train_s = [], CourseRun(data.train), 0.0
    for epoch in range(1, epochs + 1):
        train_s += run.train_images(len(data.train))
        run.it = iter(run.loader)  # one full epoch per call
        # Same parameter names, so the course weights load into our model for evaluate().
        probe = ConvAutoencoder(AEConfig())
        probe.load_state_dict(run.model.state_dict())
        p = evaluate(probe, data.test, with_ssim=False)["psnr"]
        course_rows.append({"epoch": epoch, "train_s": train_s, "psnr": p})
        print(f"  course epoch {epoch}: {p:.2f} dB after {train_s:.0f} s", flush=True)
    ours_rows = []

    def on_epoch(ev):
        if ev.kind == "epoch":
            # training seconds only: the epoch's images over its training throughput
            prev = ours_rows[-1]["train_s"] if ours_rows else 0.0
            ours_rows.append(
                {
                    "epoch": ev.epoch,
                    "psnr": ev.test_psnr,
                    "train_s": prev + len(data.train) / ev.images_per_s,
                }
            )
            print(
                f"  ours epoch {ev.epoch}: {ev.test_psnr:.2f} dB after "
                f"{ours_rows[-1]['train_s']:.0f} s",
                flush=True,
            )

    fit(TrainConfig(epochs=epochs, loss=loss), data, on_epoch)
    return course_rows, ours_rows


def first_reach(rows: list[dict], target: float) -> str:
    hit = next((r for r in rows if r["psnr"] >= target), None)
    return f"{hit['train_s']:.0f} s (epoch {hit['epoch']})" if hit else "not reached"


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
        "--loss",
        default="mse",
        choices=("bce", "mse"),
        help="our loss in the convergence run (default: mse, fit()'s default)",
    )
    ap.add_argument("--quick", action="store_true", help="throughput only")
    args = ap.parse_args()
    threads = configure_threads()
    data = load_dataset(args.data)
    print(f"torch {torch.__version__}, {threads} threads, {len(data.train)} train images")
    print("1. throughput (transpose decoder; ratios against the in-memory course pipeline)")
    folder = _find_cifar_folder(data_root()) if args.data == "cifar10" else None
    rates = throughput(data, args.rounds, args.images, folder)
    medians = {name: statistics.median(v) for name, v in rates.items()}
    bases = [m for name, m in medians.items() if name.startswith("course")]
    print(
        f"  {'pipeline':<45}{'median img/s':>13}"
        + "".join(f"{'vs ' + n.split(', ')[1][:14]:>20}" for n in medians if n.startswith("course"))
    )
    for name, m in medians.items():
        print(f"  {name:<45}{m:>13.0f}" + "".join(f"{m / b:>19.1f}x" for b in bases))
    if args.quick:
        return
    print(f"2. convergence over {args.epochs} epochs (test PSNR on {len(data.test)} images)")
    c_rows, o_rows = convergence(data, args.epochs, args.loss)
    tc, to = (
        next((r["train_s"] for r in rows if r["psnr"] >= args.target), None)
        for rows in (c_rows, o_rows)
    )
    print(
        f"  after {args.epochs} epochs: course {c_rows[-1]['psnr']:.2f} dB, "
        f"ours {o_rows[-1]['psnr']:.2f} dB"
    )
    print(
        f"  time to {args.target} dB: course {first_reach(c_rows, args.target)}, "
        f"ours {first_reach(o_rows, args.target)}"
        + (f", ratio {tc / to:.1f}x" if tc and to else "")
    )


if __name__ == "__main__":
    main()
