"""What each code channel carries: switch it off, swap it, and see what it follows.

Three views of the code's channels (4 of them in every model here):

* **Switch-off** (:func:`switch_off_table`): replace one channel by its mean over the
  training split, position by position (the "mean ablation" of interpretability work,
  so that the decoder sees a typical value, not an impossible 0), and decode. The PSNR
  lost against the unchanged code, over the whole test split, says how much of the
  picture that channel alone carried for this decoder.
* **Swap** (:func:`swapped`; :func:`convae.codespace.selection.swap_pictures` for
  pictures): give picture A picture B's channel and the other way round, and decode both.
* **What it follows** (:func:`channel_correlations`): Pearson's r, over the test split,
  between a channel's mean activation and four plain properties of the input picture:
  mean brightness (Rec. 601 luma), the red-green difference (R - G), the blue-yellow
  difference (B - (R + G) / 2), and edge energy (mean squared Sobel gradient of the luma).
  Grey pictures have only brightness and edge energy.

:func:`strongest_sentence` turns the table into one plain sentence and claims a link only
when ``|r| >= STRONG_R`` (0.5, Cohen's "large" correlation, a quarter of the variance
shared); below it, it says no channel follows a property closely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data import ProgressFn
from ..metrics import mse, psnr_from_mse
from ..models import ConvAutoencoder
from .features import BATCH, check_size, private_copy, run_batch

STRONG_R = 0.5  # the least |r| for which a sentence says "channel c follows ..."
PROPERTIES = ("brightness", "red-green", "blue-yellow", "edge energy")
GREY_PROPERTIES = ("brightness", "edge energy")
_LUMA = (0.299, 0.587, 0.114)  # Rec. 601


def channel_means(codes: torch.Tensor) -> torch.Tensor:
    """Each channel's mean at each position over a split's codes, (c, h, w).

    Args:
        codes: (N, c, h, w), e.g. the training split's.
    """
    check_size("a channel mean", len(codes), int(codes[0].numel()) if len(codes) else 0, 1, 1)
    return codes.double().mean(0).float()


def switched_off(codes: torch.Tensor, channel: int, means: torch.Tensor) -> torch.Tensor:
    """The codes with one channel replaced by its training mean (a copy).

    Args:
        codes: (N, c, h, w).
        channel: which channel, 0-based.
        means: (c, h, w) from :func:`channel_means`.
    """
    if not 0 <= channel < codes.shape[1]:
        raise ValueError(f"channel {channel} is not in this code (channels 0-{codes.shape[1] - 1})")
    out = codes.clone()
    out[:, channel] = means[channel]
    return out


def swapped(
    code_a: torch.Tensor, code_b: torch.Tensor, channel: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two codes (c, h, w) with one channel exchanged: (A with B's channel, B with A's)."""
    if code_a.shape != code_b.shape:
        raise ValueError(
            f"two codes of different shapes: {tuple(code_a.shape)}, {tuple(code_b.shape)}"
        )
    if not 0 <= channel < code_a.shape[0]:
        raise ValueError(
            f"channel {channel} is not in this code (channels 0-{code_a.shape[0] - 1})"
        )
    a, b = code_a.clone(), code_b.clone()
    a[channel], b[channel] = code_b[channel], code_a[channel]
    return a, b


@torch.no_grad()
def decode_codes(model: ConvAutoencoder, codes: torch.Tensor) -> torch.Tensor:
    """Pictures (N, C, H, W) in [0, 1] decoded from codes by a private copy of the model."""
    net = private_copy(model)
    device = next(net.parameters()).device
    return torch.cat(
        [run_batch(net.decode, codes[i : i + BATCH], device) for i in range(0, len(codes), BATCH)]
    )


@dataclass
class SwitchOffRow:
    """What one channel's switch-off costs one decoder over a split.

    Attributes:
        channel: 0-based.
        psnr: PSNR of the split's reconstructions with the channel at its mean (PSNR of
            the mean MSE, the project's convention).
        drop: PSNR of the unchanged code minus ``psnr``, dB (more = the channel carried more).
    """

    channel: int
    psnr: float
    drop: float


@torch.no_grad()
def switch_off_table(
    model: ConvAutoencoder,
    codes: torch.Tensor,
    images: torch.Tensor,
    means: torch.Tensor,
    progress: ProgressFn | None = None,
) -> tuple[float, list[SwitchOffRow]]:
    """PSNR with each channel switched off in turn, over a whole split.

    Args:
        model: the autoencoder whose decoder rebuilds the pictures (not modified).
        codes: (N, c, h, w) the split's codes by this model's encoder.
        images: (N, C, H, W) uint8 the split's pictures (the targets).
        means: (c, h, w) the training split's channel means.
        progress: ``progress(done, total, what)`` per batch and channel.

    Returns:
        (PSNR of the unchanged code, one :class:`SwitchOffRow` per channel).
    """
    net = private_copy(model)
    device = next(net.parameters()).device
    c, n = codes.shape[1], len(codes)
    sums = torch.zeros(c + 1, dtype=torch.float64)  # summed MSE: unchanged, then per channel
    total = (c + 1) * math.ceil(n / BATCH)
    for step, i in enumerate(range(0, n, BATCH)):
        z = codes[i : i + BATCH]
        target = images[i : i + BATCH].float().div(255)
        for j in range(c + 1):
            zj = z if j == 0 else switched_off(z, j - 1, means)
            sums[j] += mse(run_batch(net.decode, zj, device), target).double().sum()
            if progress:
                progress(step * (c + 1) + j + 1, total, "switching channels off")
    psnrs = [float(psnr_from_mse(float(s) / n)) for s in sums]
    rows = [SwitchOffRow(k, psnrs[k + 1], psnrs[0] - psnrs[k + 1]) for k in range(c)]
    return psnrs[0], rows


def picture_properties(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The plain properties each channel is compared with, one value per picture.

    Args:
        images: (N, C, H, W) uint8 or float in [0, 1]; C is 3 (colour) or 1 (grey).

    Returns:
        {"brightness", "red-green", "blue-yellow", "edge energy"} -> (N,) float64 for
        colour pictures; only brightness and edge energy for grey ones.
    """
    x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    if x.shape[1] == 3:
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        luma = _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b
    else:
        luma = x[:, 0]
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel, sobel.T])[:, None]  # d/dx and d/dy
    # No padding: a zero border would count the picture's frame as an edge.
    grad = F.conv2d(luma[:, None], kernels)
    out = {"brightness": luma.mean((1, 2)).double()}
    if x.shape[1] == 3:
        out["red-green"] = (r - g).mean((1, 2)).double()
        out["blue-yellow"] = (b - (r + g) / 2).mean((1, 2)).double()
    out["edge energy"] = grad.pow(2).sum(1).mean((1, 2)).double()
    return out


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson's r of two (N,) series; NaN when either does not vary."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 1e-12 else float("nan")


def channel_correlations(codes: torch.Tensor, images: torch.Tensor) -> dict[str, list[float]]:
    """Pearson's r between each channel's mean activation and each picture property.

    Args:
        codes: (N, c, h, w) the pictures' codes.
        images: (N, C, H, W) the same pictures.

    Returns:
        property -> [r for channel 0, 1, ...] (NaN for a channel that never varies,
        e.g. a dead one that is always 0).
    """
    check_size("a correlation table", len(codes), int(codes.shape[1]), 3, 1)
    props = picture_properties(images)
    activity = codes.double().mean((2, 3))  # (N, c)
    return {
        name: [pearson(activity[:, k], values) for k in range(activity.shape[1])]
        for name, values in props.items()
    }


def strongest_sentence(table: dict[str, list[float]], threshold: float = STRONG_R) -> str:
    """One plain sentence on the strongest link in a correlation table.

    Claims "channel c follows P" only when ``|r| >= threshold``; otherwise says that no
    channel follows these properties closely, naming the strongest figure.

    Args:
        table: from :func:`channel_correlations`.
        threshold: the least |r| that counts as following.
    """
    cells = [
        (abs(r), name, k, r)
        for name, rs in table.items()
        for k, r in enumerate(rs)
        if not math.isnan(r)
    ]
    if not cells:
        return "No channel varies over these pictures, so none follows any property."
    _, name, k, r = max(cells)
    if abs(r) < threshold:
        return (
            f"No channel follows brightness, colour or edges closely: the strongest link is "
            f"channel {k} with {name} (r = {r:+.2f})."
        )
    how = "follows" if r > 0 else "runs against"
    return f"Channel {k} {how} {name} (r = {r:+.2f} over the test pictures)."
