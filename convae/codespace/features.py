"""What the code space is measured on: a split's codes, its raw pixels, and PCA-256 of them.

Three descriptions of the same pictures, one row per picture:

* **codes**: the encoder's output (pool2), flattened; 4x8x8 = 256 numbers for CIFAR-10,
  4x7x7 = 196 for 28x28 grey. The shape is read from the model (:func:`code_shape`), so
  an uploaded model with another image size works the same way.
* **pixels**: the 3,072 (or 784) values in [0, 1], what the encoder started from.
* **PCA of the pixels** with as many components as the code has numbers (the project's
  PCA baseline, :func:`convae.baselines.pca_baseline`, fitted on the training split and
  cached): the best linear summary with the same budget of numbers, so that "the code is
  better than pixels" is not only "the code is shorter".

Encoding runs under ``torch.no_grad()`` on a private evaluation copy of the model: the
model is shared by every session of the server and is never touched.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data import DataSet, ImageSet, ProgressFn
from ..models import ConvAutoencoder

if TYPE_CHECKING:  # the module itself is imported late (see pixel_pca)
    from ..baselines import PCABaseline

# Pictures per forward pass: a few MB of activations, and per-call overhead negligible.
BATCH = 1000


class TooSmallError(ValueError):
    """A code or a split too small for a map or a probe; the message is one sentence that
    says what was found and what is needed."""


def code_shape(model: ConvAutoencoder) -> tuple[int, int, int]:
    """The model's code shape (channels, height, width): (4, 8, 8) for CIFAR-10 models,
    (4, 7, 7) for 28x28 grey ones; read from the model, not assumed."""
    return tuple(model.config.code_shape)  # type: ignore[return-value]


def check_size(what: str, pictures: int, numbers: int, min_pictures: int, min_numbers: int) -> None:
    """Raise :class:`TooSmallError` when there are too few pictures or numbers per picture.

    Args:
        what: the thing being computed, for the message ("a 2-D map", "a linear probe").
        pictures: how many pictures there are.
        numbers: how many numbers describe each picture.
        min_pictures: the fewest pictures ``what`` can use.
        min_numbers: the fewest numbers per picture ``what`` can use.
    """
    if numbers < min_numbers:
        raise TooSmallError(
            f"This model's code holds {numbers} number(s) per picture, too few for {what} "
            f"(it needs at least {min_numbers})."
        )
    if pictures < min_pictures:
        raise TooSmallError(
            f"There are {pictures} picture(s) here, too few for {what} (it needs at least "
            f"{min_pictures})."
        )


def private_copy(model: ConvAutoencoder) -> ConvAutoencoder:
    """An evaluation-mode copy of a (shared) model in channels-last memory layout.

    ~2,000 parameters: copying costs far less than one batch, and the shared model's
    train/eval flag is never flipped under another session's feet. Channels-last because
    oneDNN runs these small convolutions 2-3x faster so on CPU (as convae.compare does).
    """
    return copy.deepcopy(model).eval().to(memory_format=torch.channels_last)


def run_batch(step, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``step(x)`` (an encode or a decode) on ``device`` in channels-last, back on the CPU
    as an ordinary contiguous tensor."""
    x = x.to(device).contiguous(memory_format=torch.channels_last)
    return step(x).cpu().contiguous()


@torch.no_grad()
def encode_images(model: ConvAutoencoder, images: torch.Tensor) -> torch.Tensor:
    """Codes of a few pictures, (N, c, h, w) float32 on the CPU.

    Args:
        model: an autoencoder (not modified).
        images: uint8 or float-in-[0, 1] images (N, C, H, W) the model takes.

    Raises:
        ValueError: images with another channel count or size than the model takes.
    """
    cfg = model.config
    if images.dim() != 4 or tuple(images.shape[1:]) != (cfg.in_channels, *(cfg.image_size,) * 2):
        raise ValueError(
            f"this model takes pictures {cfg.in_channels}x{cfg.image_size}x{cfg.image_size}, "
            f"got {tuple(images.shape[1:])}: pick a model made for this data set"
        )
    net = private_copy(model)
    x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    return run_batch(net.encode, x, next(net.parameters()).device)


@torch.no_grad()
def encode_split(
    model: ConvAutoencoder,
    images: ImageSet,
    progress: ProgressFn | None = None,
    batch_size: int = BATCH,
) -> torch.Tensor:
    """Codes of every picture of a split, in order, (N, c, h, w) float32 on the CPU.

    Args:
        model: an autoencoder (not modified; a private eval copy runs).
        images: the split, e.g. ``data.test``.
        progress: called as ``progress(done, total, "encoding pictures")`` after each batch;
            an exception it raises (a Stop click) stops the work, nothing is kept.
        batch_size: pictures per forward pass.

    Returns:
        The codes; ``codes.flatten(1)`` is one row of ``c*h*w`` numbers per picture.
    """
    net = private_copy(model)
    device = next(net.parameters()).device
    n = len(images)
    cfg = model.config
    if images.channels != cfg.in_channels or images.image_size != cfg.image_size:
        raise ValueError(
            f"this model takes pictures {cfg.in_channels}x{cfg.image_size}x{cfg.image_size}, "
            f"the data set's are {images.channels}x{images.image_size}x{images.image_size}: "
            "pick a model made for this data set"
        )
    out = torch.empty((n, *code_shape(model)), dtype=torch.float32)
    for i in range(0, n, batch_size):
        x = images.floats(slice(i, i + batch_size))
        out[i : i + len(x)] = run_batch(net.encode, x, device)
        if progress:
            progress(min(i + batch_size, n), n, "encoding pictures")
    return out


def pixel_rows(images: ImageSet) -> torch.Tensor:
    """Every picture's raw values as one row, float32 in [0, 1], (N, C*H*W)."""
    return images.floats().reshape(len(images), -1)


def pixel_pca(
    data: DataSet, components: int, train: ImageSet | None = None, root: Path | str | None = None
) -> PCABaseline:
    """The PCA of the pixels that the code is compared with, as many components as numbers.

    Args:
        data: the data set.
        components: how many components: the code's number count, so that both hold the
            same budget of numbers.
        train: the training pictures to fit on when not the whole training split (a
            probe on a subset fits on that subset); None: the whole split, fitted once
            and cached in the data root (:func:`convae.baselines.pca_baseline`).
        root: data root for that cache (default: ``$CONVAE_DATA`` or ./data).

    Returns:
        A :class:`convae.baselines.PCABaseline`.
    """
    # Loaded late: the first fit on CIFAR-10 takes tens of seconds, and most callers never
    # need it.
    from ..baselines import fit_pca, pca_baseline

    if train is None:
        return pca_baseline(data, components=components, root=root)
    return fit_pca(train, components)


def pca_rows(pca: PCABaseline, images: ImageSet) -> torch.Tensor:
    """Pictures as their coordinates on a pixel PCA's components, (N, components) float32."""
    return torch.cat(
        [pca.encode(images.floats(slice(i, i + BATCH))) for i in range(0, len(images), BATCH)]
    )
