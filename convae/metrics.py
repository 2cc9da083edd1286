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


def checkerboard_score(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """How strong a period-2 (stride-2) pattern the reconstruction adds to its input, (N,).

    Checkerboard artifacts come from a stride-2 upsampling layer treating the four
    positions of each 2x2 output block differently: uneven kernel overlap in a
    transpose convolution, or, with kernel 2 / stride 2 as here, one kernel tap per
    position (Odena, Dumoulin and Olah 2016, "Deconvolution and Checkerboard Artifacts",
    Distill, https://distill.pub/2016/deconv-checkerboard/). So the score looks at the
    residual ``r = recon - target`` through its four 2x2 phase positions: ``m[p, q]`` is
    the mean of ``r[..., p::2, q::2]`` over the image, and the score is the standard
    deviation of those four means, per channel, then averaged over channels.

    Why this measure:
      * It is the energy at the three period-2 (Nyquist) frequencies of the residual's
        2D spectrum, (pi, 0), (0, pi) and (pi, pi): by Parseval, score**2 equals that
        energy divided by (H*W)**2, so "phase variance" and "Nyquist energy" are the same
        number, read in units a person can picture.
      * Units: the amplitude of the pattern, on the 0..1 pixel scale. Adding
        ``a * (-1)**(i+j)`` (a 2-pixel checkerboard) or period-2 stripes of amplitude
        ``a`` to a perfect reconstruction gives exactly ``a`` (x255 for 8-bit levels).
      * Relative to the input: detail that the input itself has at period 2 and that
        the model reproduces cancels in the residual; an exact copy scores 0.
      * A brightness shift of the reconstruction adds the same constant to all four
        means, so the score does not change; blur or noise that is not locked to the
        2x2 grid averages out over the image's (H/2)*(W/2) blocks.
    It sees the part of the pattern that has the same phase across the image (a
    layer's fixed per-position bias and weight imbalance); a pattern whose sign flips
    from region to region partly cancels, so read it as a lower bound.

    Args:
        recon: reconstructions (N, C, H, W), values in [0, 1]; an odd last row or
            column is dropped.
        target: the inputs they reconstruct, same shape.

    Returns:
        One score per image, shape (N,), >= 0.
    """
    if recon.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(recon.shape)} vs {tuple(target.shape)}")
    h, w = recon.shape[-2] // 2 * 2, recon.shape[-1] // 2 * 2
    if h == 0 or w == 0:
        raise ValueError(f"images must be at least 2x2, got {tuple(recon.shape[-2:])}")
    # float64: the four means differ by ~1e-3 on a good model; float32 sums of 256 terms
    # per phase would put rounding noise at a visible fraction of that.
    r = recon[..., :h, :w].double() - target[..., :h, :w].double()
    n, c = r.shape[:2]
    phases = r.reshape(n, c, h // 2, 2, w // 2, 2).mean(dim=(2, 4))  # (N, C, 2, 2)
    spread = phases.flatten(2).var(dim=2, unbiased=False).sqrt()  # (N, C)
    return spread.mean(1).to(recon.dtype if recon.is_floating_point() else torch.float32)


def radial_power_spectrum(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged power spectrum, mean over images and channels.

    The power ``|FFT|**2 / (H*W)`` of each image and channel is averaged over rings of
    equal spatial frequency ``sqrt(fx**2 + fy**2)`` (bin width 1/max(H, W) cycles per
    pixel). The rings run out to the corner of the spectrum, ~0.707 cycles/pixel,
    because that corner (pi, pi) is where a 2-pixel checkerboard lives; period-2
    stripes land at 0.5. Plot ``power`` on a log scale against ``freqs`` to see a
    stride peak, or the high frequencies a blurry decoder leaves out.

    Args:
        images: (N, C, H, W) or (C, H, W) float images (uint8 is scaled to [0, 1]).

    Returns:
        (freqs, power): 1-D float tensors of equal length; ``freqs`` in cycles per pixel,
        ``freqs[0] == 0`` is the mean brightness (DC), leave it out of a log-log chart.
    """
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    x = images.double() / 255 if images.dtype == torch.uint8 else images.double()
    h, w = x.shape[-2:]
    power = torch.fft.fft2(x).abs().pow(2).div(h * w).mean(dim=(0, 1))  # (H, W)
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    step = 1.0 / max(h, w)
    ring = torch.round(torch.sqrt(fy**2 + fx**2) / step).long().flatten()
    counts = torch.bincount(ring).double()
    sums = torch.zeros(counts.numel(), dtype=torch.float64).index_add_(0, ring, power.flatten())
    keep = counts > 0
    freqs = torch.arange(sums.numel(), dtype=torch.float64) * step
    return freqs[keep].float(), (sums[keep] / counts[keep]).float()
