"""Running a model over images, and scoring what it rebuilt: the one way it is done.

Every page, the trainer's per-epoch test score, the command line's tables and the Compare
page run a model through :class:`EvalCopy`: a private evaluation-mode copy in channels-last
memory, fed in batches under ``torch.no_grad()``. Private, because one cached model is
read by many Streamlit sessions at once (and fit() reads the model it is training): not
even its train/eval flag may change. Channels-last, because oneDNN runs these convolutions
(and SSIM's) about 2-3x faster in NHWC on the CPU. The copy costs nothing: about 2,000
parameters.

On it are built :func:`reconstruct` (the outputs), :func:`reconstruct_scored` (outputs
with the PSNR of each, what most pages show under their pictures),
:func:`convae.train.evaluate` (a split's MSE, PSNR and SSIM) and
:func:`convae.compare.score_images` (every per-image measure, grid artifacts included).
The set's PSNR follows the project's convention: PSNR of the mean MSE, as
``python -m convae evaluate`` reports it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .data import ImageSet
from .metrics import mse, psnr_from_mse
from .models import ConvAutoencoder

# 1,000 images a batch: a few tens of MB of activations for these models, and large
# enough that per-call overhead is negligible on CPU.
BATCH_SIZE = 1000


def as_float_images(images: torch.Tensor | ImageSet) -> torch.Tensor:
    """Images as float (N, C, H, W) in [0, 1], from uint8, float or an ImageSet.

    Args:
        images: uint8 (0..255) or float (0..1) images (N, C, H, W) or one (C, H, W), or
            an ImageSet.

    Returns:
        A float tensor on the images' device (a new one for uint8 input).
    """
    x = images.images if isinstance(images, ImageSet) else images
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for a module with none)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def model_name(model: nn.Module) -> str:
    """A model's default label: its decoder ("transpose", "upsample"), or a baseline's
    label ("PCA 256", "downsample 9x9x3")."""
    cfg = model.config
    return cfg.decoder if isinstance(model, ConvAutoencoder) else cfg.label


class EvalCopy:
    """A model made safe and quick to run over images: see the module docstring.

    A module with parameters (an autoencoder) is deep-copied; one without (a PCA or
    downsampling baseline, whose tensors are buffers and which has no train mode) is
    read-only already and used as it is.

    Args:
        model: an autoencoder or a baseline (anything with ``config.in_channels``);
            never modified.
        name: how to call it in error messages (default: :func:`model_name`).
    """

    def __init__(self, model: nn.Module, name: str = "") -> None:
        self.model = model
        self.name = name or model_name(model)
        self.device = model_device(model)
        if any(True for _ in model.parameters()):
            model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        self.net = model

    def check(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the problem when the model cannot take ``x``
        (N, C, H, W): no images, another channel count, a size it cannot take."""
        if len(x) == 0:
            raise ValueError("no images to score: choose at least one image")
        cfg = self.model.config
        if x.shape[1] != cfg.in_channels:
            raise ValueError(
                f"model {self.name} takes {cfg.in_channels}-channel images but these have "
                f"{x.shape[1]} channels: pick a model trained on this data set"
            )
        # The autoencoder is fully convolutional; a baseline is made for one size.
        if not isinstance(self.model, ConvAutoencoder) and x.shape[-2:] != (cfg.image_size,) * 2:
            raise ValueError(
                f"{self.name} was made for {cfg.image_size}x{cfg.image_size} images but these "
                f"are {x.shape[-2]}x{x.shape[-1]}: pick a baseline made for this data set"
            )
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(
                f"image size {tuple(x.shape[-2:])} is not a multiple of 4, which the "
                "two 2x2 pools of the encoder need"
            )

    def batches(
        self, images: torch.Tensor | ImageSet, batch_size: int = BATCH_SIZE
    ) -> Iterator[torch.Tensor]:
        """``images`` (uint8 or float (N, C, H, W) or (C, H, W), or an ImageSet), checked,
        then in batches of float [0, 1] on the model's device, channels-last."""
        src = images.images if isinstance(images, ImageSet) else images
        if src.dim() == 3:
            src = src[None]
        self.check(src)
        for i in range(0, len(src), batch_size):
            x = as_float_images(src[i : i + batch_size]).to(self.device)
            yield x.contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The model's outputs for one batch ``x`` (float, on the model's device)."""
        return self.net(x.contiguous(memory_format=torch.channels_last))


def reconstruct(
    model: nn.Module, images: torch.Tensor | ImageSet, batch_size: int = BATCH_SIZE
) -> torch.Tensor:
    """Reconstructions of ``images`` by an autoencoder or a baseline (not modified).

    Args:
        model: an autoencoder or a baseline.
        images: uint8 or float-in-[0, 1] images (N, C, H, W) or (C, H, W), or an ImageSet.
        batch_size: images per forward pass.

    Returns:
        Float (N, C, H, W) in [0, 1] on the CPU, in the default memory layout.
    """
    net = EvalCopy(model)
    return torch.cat([net(x).cpu().contiguous() for x in net.batches(images, batch_size)])


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
    """Scores of given outputs (a model's, a noisy input's, a baseline's) against targets.

    Args:
        outputs: images (N, C, H, W) in [0, 1].
        target: what they should be, same shape.
    """
    m = mse(outputs, target)
    return Reconstruction(outputs, psnr_from_mse(m), float(psnr_from_mse(m.mean())))


def reconstruct_scored(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None
) -> Reconstruction:
    """The model's outputs for ``x``, scored against ``target`` (default: ``x`` itself).

    Args:
        model: an autoencoder or a baseline; not modified (it may be shared between
            sessions, or be training).
        x: inputs (N, C, H, W), float in [0, 1] (e.g. noisy or masked pictures) or uint8.
        target: what the outputs should be (the clean pictures); default ``x``.

    Returns:
        The outputs (on the CPU) with the PSNR of each and of the set.
    """
    outputs = reconstruct(model, x)
    clean = as_float_images(x if target is None else target).cpu()
    return score(outputs, clean)
