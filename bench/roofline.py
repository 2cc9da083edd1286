"""A roofline for training ConvAE on this machine: the work of one training image, and
what the cores can do at best.

* **FLOPs per image** of a training step (forward and backward of each convolution), two
  ways that must agree: by hand from the layer shapes (a convolution is one
  multiply-add per weight tap per output value; its backward is the same again for the
  gradient of its input, except the first layer's, whose input needs none, and again for
  the gradient of its weights), and counted by ``torch.utils.flop_counter`` on a real
  step. Only convolution multiply-adds count (2 FLOPs each), as flop_counter counts them;
  the elementwise work (ReLU, pooling, sigmoid, loss, Adam) is listed apart as bytes.
* **Bytes per image**: every tensor each aten operator of a real training step reads
  and writes (a ``TorchDispatchMode`` logs them), divided by the batch. It is what the
  step moves if no operator's data is still in a cache from the one before: an upper
  bound on its memory traffic.
* **Measured peaks**, for 1 and 2 threads: a large matrix multiply (fp32 and bf16), a
  large 3x3 convolution (64 to 64 channels on 56x56, channels-last; fp32 and bf16), and
  the memory bandwidth of a large copy (bytes read + written per second).

``python bench/roofline.py`` prints them; bench/train_speed.py measures them in its own
run (its ``roofline`` section) and reports each pipeline's GFLOP/s as a fraction of them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from convae.data import DataSet, ImageSet  # noqa: E402
from convae.models import AEConfig, ConvAutoencoder  # noqa: E402
from convae.train import TrainConfig, Trainer  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


# ------------------------------------------------------------------ FLOPs per image


def _convs(model: ConvAutoencoder) -> list[tuple[str, torch.nn.Module, tuple[int, ...]]]:
    """Each convolution of ``model`` with the shape of its input for one image, in order."""
    cfg = model.config
    x = torch.zeros(1, cfg.in_channels, cfg.image_size, cfg.image_size)
    out, modules = [], dict(model.steps())
    with torch.no_grad():
        for name, module in model.steps():
            if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                out.append((name, modules[name], tuple(x.shape[1:])))
            x = module(x)
    return out


def _by_hand(module: torch.nn.Module, in_shape: tuple[int, ...], first: bool) -> dict:
    """Multiply-adds of one convolution for one image, from its shapes alone."""
    c_in, h, w = in_shape
    k = module.kernel_size[0] * module.kernel_size[1]
    if isinstance(module, torch.nn.ConvTranspose2d):
        # Every input value meets every weight tap once: c_in * h * w * c_out * k.
        macs = c_in * h * w * module.out_channels * k
    else:  # padding keeps the size: every output value is c_in * k taps
        macs = module.out_channels * h * w * c_in * k
    fwd = 2 * macs
    return {"forward": fwd, "backward": (0 if first else fwd) + fwd}


def flops_per_image(decoder: str = "transpose") -> dict:
    """FLOPs of one training image, layer by layer, by hand and by flop_counter.

    Returns:
        {"layers": [{"layer", "input", "by_hand": {"forward", "backward"},
        "flop_counter": {...}}], "by_hand": total, "flop_counter": total of a whole
        training step (forward, MSE, backward) counted on a batch of 8, per image}.
    """
    torch.manual_seed(0)
    model = ConvAutoencoder(AEConfig(decoder=decoder))
    layers = []
    for i, (name, module, shape) in enumerate(_convs(model)):
        x = torch.rand(8, *shape, requires_grad=i > 0)  # the image itself needs no gradient
        with FlopCounterMode(display=False) as fc:
            module(x).sum().backward()
        counts = {str(op).split(".")[-1]: n / 8 for op, n in fc.get_flop_counts()["Global"].items()}
        layers.append(
            {
                "layer": name,
                "input": list(shape),
                "by_hand": _by_hand(module, shape, first=i == 0),
                "flop_counter": {
                    "forward": counts.get("convolution", 0.0),
                    "backward": counts.get("convolution_backward", 0.0),
                },
            }
        )
    x = torch.rand(8, model.config.in_channels, 32, 32)
    with FlopCounterMode(display=False) as fc:
        F.mse_loss(model(x), x).backward()
    return {
        "decoder": decoder,
        "layers": layers,
        "by_hand": sum(r["by_hand"]["forward"] + r["by_hand"]["backward"] for r in layers),
        "flop_counter": fc.get_total_flops() / 8,
    }


# ------------------------------------------------------------------ bytes per image


class _Bytes(TorchDispatchMode):
    """Sums the bytes of every tensor each aten operator takes and returns."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor) and t.numel() > 1:
                self.total += t.numel() * t.element_size()
        return out


def bytes_per_image(step: Callable[[], None], batch: int) -> float:
    """What one call of ``step`` (a whole training step on ``batch`` images) reads and
    writes, summed over its aten operators, per image."""
    step()  # warm: the optimiser's state exists from the first step on
    with _Bytes() as counter:
        step()
    return counter.total / batch


def step_bytes_per_image(precision: str, decoder: str = "transpose") -> float:
    """:func:`bytes_per_image` of the trainer's own step (``Trainer.train_step``: the
    batch gathered from uint8 and converted, forward, loss, backward, Adam, schedule)
    with the default recipe in ``precision``, on random uint8 pictures."""
    n = 4 * TrainConfig().batch_size
    pictures = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    split = ImageSet(pictures, torch.zeros(n, dtype=torch.long), ["random"])
    data = DataSet("random", split, split.head(8), "random")
    trainer = Trainer(TrainConfig(decoder=decoder, precision=precision, epochs=1), data)
    idx = torch.arange(trainer.batch)
    return bytes_per_image(lambda: trainer.train_step(idx), trainer.batch)


# ------------------------------------------------------------------ measured peaks


def _best_rate(
    work: float, fn: Callable[[], object], repeats: int, min_s: float
) -> dict[str, float]:
    """``work`` units per second of ``fn``, by the wall clock and per second of this
    process's CPU time: the best of ``repeats`` timings, each repeating ``fn`` for at
    least ``min_s`` seconds. The best, since a peak is what the machine can do and other
    work on the cores only lowers a timing; per CPU-second, since on a shared machine a
    thread is often not running at all (what it does while it runs is the core's rate;
    with 2 threads it is the rate of one core, so twice it is the 2-core peak)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while (elapsed := time.perf_counter() - t0) < min_s or n == 0:
            fn()
            n += 1
        wall.append(work * n / elapsed)
        cpu.append(work * n / max(time.process_time() - c0, 1e-9))
    return {"wall": max(wall), "per_cpu_s": max(cpu)}


def peak_matmul(dtype: str, threads: int, n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of an n x n x n matrix multiply (2 n^3 FLOPs) with ``threads`` threads."""
    torch.set_num_threads(threads)
    a = torch.randn(n, n).to(DTYPES[dtype])
    b = torch.randn(n, n).to(DTYPES[dtype])
    return _best_rate(2 * n**3 / 1e9, lambda: torch.mm(a, b), repeats, 0.3)


def peak_conv(dtype: str, threads: int, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a large 3x3 convolution's forward (64 -> 64 channels, 56x56, batch 16,
    channels-last, as oneDNN likes it)."""
    torch.set_num_threads(threads)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False)
    conv = conv.to(DTYPES[dtype]).to(memory_format=torch.channels_last)
    x = torch.randn(16, 64, 56, 56).to(DTYPES[dtype]).contiguous(memory_format=torch.channels_last)
    work = 2 * 16 * 64 * 56 * 56 * 64 * 9 / 1e9
    with torch.no_grad():
        return _best_rate(work, lambda: conv(x), repeats, 0.3)


def bandwidth(threads: int, mb: int = 512, repeats: int = 5) -> dict[str, float]:
    """GB/s of copying a ``mb``-MB float32 tensor into another (bytes read + written)."""
    torch.set_num_threads(threads)
    src = torch.ones(mb * 2**20 // 4)
    dst = torch.empty_like(src)
    return _best_rate(2 * mb * 2**20 / 1e9, lambda: dst.copy_(src), repeats, 0.3)


def peaks(threads: tuple[int, ...] = (1, 2)) -> dict:
    """Every measured peak for each thread count, with a median of the load average
    around them (the machine is shared, so a peak is a lower bound of what it can do).

    Returns:
        {"1": {"matmul_fp32", "matmul_bf16", "conv3x3_fp32", "conv3x3_bf16",
        "copy_GBps"}, "2": {...}} in GFLOP/s and GB/s.
    """
    old = torch.get_num_threads()
    out = {}
    try:
        for t in threads:
            out[str(t)] = {
                "matmul_fp32": peak_matmul("fp32", t),
                "matmul_bf16": peak_matmul("bf16", t),
                "conv3x3_fp32": peak_conv("fp32", t),
                "conv3x3_bf16": peak_conv("bf16", t),
                "copy_GBps": bandwidth(t),
            }
    finally:
        torch.set_num_threads(old)
    return out


def main() -> None:
    for decoder in ("transpose", "upsample"):
        f = flops_per_image(decoder)
        print(f"{decoder}: {f['by_hand']:,} FLOPs by hand, {f['flop_counter']:,.0f} counted")
        for r in f["layers"]:
            print(f"  {r['layer']:<8} {r['by_hand']} {r['flop_counter']}")
    for t, p in peaks().items():
        for k, v in p.items():
            print(f"{t} thread(s) {k}: {v['wall']:.1f} wall, {v['per_cpu_s']:.1f} per CPU-s")
    print("load average", [round(v, 2) for v in os.getloadavg()])


if __name__ == "__main__":
    main()
