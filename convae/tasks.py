"""Denoising and repair as tasks: which model does which, and how well.

A model's task follows from how it was trained (``train_config["corruption"]`` and
``["noise"]``): plain autoencoders saw clean inputs, task models saw corrupted inputs
with clean targets. Scores always compare an output with the *clean* image, over the
whole image and over the corrupted region alone (a masked rectangle is a small part of
the picture, so its repair barely moves the whole-image PSNR).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from .corrupt import corrupt, gaussian_noise, parse_corruption, salt_and_pepper
from .data import ImageSet
from .metrics import mse, psnr_from_mse, ssim
from .models import ConvAutoencoder
from .recon import EvalCopy, reconstruct

TASKS = ("plain", "denoise", "inpaint", "colorize")
TASK_OF_KIND = {
    "gauss": "denoise",
    "saltpepper": "denoise",
    "mask": "inpaint",
    "grey": "colorize",
    "drop": "colorize",
}
# The fixed seed of every corrupted test set: the same noisy images for every model.
EVAL_SEED = 1234


def task_of(train_config: dict | None) -> str:
    """ "plain", "denoise", "inpaint" or "colorize" for a checkpoint's training recipe.

    A recipe mixing kinds of different tasks counts as the first kind's task.
    """
    cfg = train_config or {}
    try:
        parts = parse_corruption(str(cfg.get("corruption") or ""))
    except ValueError:
        parts = []
    if parts:
        return TASK_OF_KIND[parts[0].kind]
    noise = cfg.get("noise") or 0
    return "denoise" if isinstance(noise, int | float) and noise > 0 else "plain"


def pick(
    candidates: Iterable[tuple[str, str, str]],
    task: str,
    decoder: str,
    preferred: Sequence[str] = (),
) -> str | None:
    """The key of a model for ``task`` with ``decoder``, or None.

    Args:
        candidates: (key, task, decoder) of every model that fits the data.
        preferred: keys to try first, in order (e.g. the sidebar's picks).
    """
    fitting = [k for k, t, d in candidates if t == task and d == decoder]
    for k in preferred:
        if k in fitting:
            return k
    return fitting[0] if fitting else None


# ------------------------------------------------------------------ scores


def region_mse(y: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """MSE of each image over the pixels where ``region`` (N or 1, 1, H, W) is True.

    An image with an empty region gets NaN (there is nothing to score).
    """
    region = region.to(y.dtype).expand(y.shape[0], 1, *y.shape[2:])
    sq = (y - target).pow(2) * region
    count = region.flatten(1).sum(1) * y.shape[1]
    return sq.flatten(1).sum(1) / count.where(count > 0, torch.nan)


def region_psnr(y: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image over ``region`` (NaN where the region is empty)."""
    return psnr_from_mse(region_mse(y, target, region))


def evaluate_corrupted(
    model: ConvAutoencoder,
    images: ImageSet | torch.Tensor,
    spec: str,
    seed: int = EVAL_SEED,
    batch_size: int = 1000,
    with_ssim: bool = True,
) -> dict:
    """How well ``model`` (not modified) restores ``images`` corrupted as ``spec`` says.

    The corruption is drawn from ``seed``, so every model sees the same inputs.

    Returns:
        {"n", "spec", "mse", "psnr", "ssim", "region_psnr", "input_psnr",
        "input_region_psnr"}: the output and the corrupted input against the clean
        image; PSNR of the mean MSE as everywhere in ConvAE Explorer.
    """
    if len(images) == 0:
        raise ValueError("cannot evaluate on zero images")
    net = EvalCopy(model)
    gen = torch.Generator().manual_seed(seed)
    out_m, out_r, in_m, in_r, ssims = [], [], [], [], []
    for x in net.batches(images, batch_size):
        xc, region = corrupt(x, spec, gen)
        y = net(xc)
        out_m.append(mse(y, x).cpu())
        out_r.append(region_mse(y, x, region).cpu())
        in_m.append(mse(xc, x).cpu())
        in_r.append(region_mse(xc, x, region).cpu())
        if with_ssim:
            ssims.append(ssim(y, x).cpu())

    def db(parts: list[torch.Tensor]) -> float:
        m = torch.cat(parts)
        return float(psnr_from_mse(m[~m.isnan()].mean()))

    out = {
        "n": len(images),
        "spec": spec,
        "mse": float(torch.cat(out_m).mean()),
        "psnr": db(out_m),
        "region_psnr": db(out_r),
        "input_psnr": db(in_m),
        "input_region_psnr": db(in_r),
    }
    if with_ssim:
        out["ssim"] = float(torch.cat(ssims).mean())
    return out


def noisy(x: torch.Tensor, kind: str, strength: float, seed: int = EVAL_SEED) -> torch.Tensor:
    """``x`` with Gaussian noise (kind "gauss", std) or salt and pepper ("saltpepper",
    fraction) of one strength, drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "gauss":
        return gaussian_noise(x, strength, gen)
    if kind == "saltpepper":
        return salt_and_pepper(x, strength, gen)[0]
    raise ValueError(f"noise kind must be gauss or saltpepper, got {kind!r}")


def psnr_curve(
    models: dict[str, ConvAutoencoder],
    x: torch.Tensor,
    kind: str,
    strengths: Sequence[float],
    seed: int = EVAL_SEED,
) -> dict[str, list[float]]:
    """PSNR (of the mean MSE over ``x``) against noise strength, for the noisy input
    itself (key "noisy input") and for each model's output."""
    curves: dict[str, list[float]] = {"noisy input": []}
    curves.update({name: [] for name in models})
    for s in strengths:
        xn = noisy(x, kind, s, seed)
        curves["noisy input"].append(float(psnr_from_mse(mse(xn, x).mean())))
        for name, model in models.items():
            curves[name].append(float(psnr_from_mse(mse(reconstruct(model, xn), x).mean())))
    return curves


def repair_scores(
    models: dict[str, ConvAutoencoder], x: torch.Tensor, xc: torch.Tensor, region: torch.Tensor
) -> list[dict]:
    """How close the corrupted input and each model's output are to the clean pictures.

    Args:
        models: name -> model (not modified).
        x: the clean pictures (N, C, H, W).
        xc: the same pictures corrupted (masked, a colour plane dropped, greyed).
        region: the corrupted pixels (N or 1, 1, H, W) boolean.

    Returns:
        One row per output, the corrupted input first: {"output", "region_psnr",
        "whole_psnr"}, PSNR of the mean MSE as everywhere.
    """
    region = region.expand(len(x), 1, *x.shape[2:])
    rows = []
    outputs = [("corrupted input", xc)] + [(n, reconstruct(m, xc)) for n, m in models.items()]
    for name, y in outputs:
        rows.append(
            {
                "output": name,
                "region_psnr": float(psnr_from_mse(region_mse(y, x, region).mean())),
                "whole_psnr": float(psnr_from_mse(mse(y, x).mean())),
            }
        )
    return rows
