"""Reconstructions with their scores: what most pages show under their pictures.

One call gives a model's rebuilt images and the PSNR of each, plus the set's PSNR by the
project's convention (PSNR of the mean MSE, as ``python -m convae evaluate`` reports), so
no page computes a metric itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .metrics import mse, psnr_from_mse
from .models import ConvAutoencoder


@dataclass
class Reconstruction:
    """A model's outputs for a batch and how close each is to its target.

    Attributes:
        images: outputs (N, C, H, W) in [0, 1].
        psnr: PSNR in dB of each output against its target, shape (N,).
        mean_psnr: PSNR of the mean MSE over the batch (the set's figure).
    """

    images: torch.Tensor
    psnr: torch.Tensor
    mean_psnr: float


def score(outputs: torch.Tensor, target: torch.Tensor) -> Reconstruction:
    """Scores of given outputs (a model's, a noisy input's, a baseline's) against targets."""
    m = mse(outputs, target)
    return Reconstruction(outputs, psnr_from_mse(m), float(psnr_from_mse(m.mean())))


@torch.no_grad()
def reconstruct_scored(
    model: ConvAutoencoder, x: torch.Tensor, target: torch.Tensor | None = None
) -> Reconstruction:
    """``model(x)`` scored against ``target`` (default: ``x`` itself).

    Args:
        model: an autoencoder; not modified (it may be shared between sessions).
        x: inputs (N, C, H, W) in [0, 1] (e.g. noisy or masked pictures).
        target: what the outputs should be (the clean pictures); default ``x``.
    """
    return score(model(x), x if target is None else target)
