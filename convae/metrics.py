"""Image-quality measures, per image, on tensors in [0, 1] of shape (N, C, H, W).

PSNR of a data set is reported as 10 log10(1 / mean MSE) over all its images
("PSNR of the mean MSE"), the usual convention for the course's figures; the
per-image values are there for tables and sorting.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image pair, shape (N,)."""
    return (x - y).pow(2).flatten(1).mean(1)


def psnr_from_mse(m: torch.Tensor | float) -> torch.Tensor | float:
    """PSNR in dB for a peak value of 1; an exact copy is capped at 100 dB."""
    if isinstance(m, torch.Tensor):
        return 10 * torch.log10(1.0 / m.clamp_min(1e-10))
    return 10 * math.log10(1.0 / max(m, 1e-10))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair, shape (N,)."""
    return psnr_from_mse(mse(x, y))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Structural similarity of each image pair, shape (N,), averaged over channels.

    Wang, Bovik, Sheikh and Simoncelli (2004), "Image quality assessment: from error
    visibility to structural similarity": 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
    K2 = 0.03, data range 1, statistics over the 'valid' window positions only. The
    window shrinks for images smaller than 11 pixels.
    """
    window = min(window, x.shape[-1], x.shape[-2])
    c = x.shape[1]
    w = _gaussian_window(window).to(x)[None, None].expand(c, 1, window, window)
    c1, c2 = 0.01**2, 0.03**2

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)
