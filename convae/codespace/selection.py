"""What one click or lasso on the map shows: the chosen pictures, each model's
reconstruction and PSNR, and a channel switched off or swapped.

This is the per-click work (tens of pictures, not a split), so it is not cached: it
runs in milliseconds on one thread (bench/results/codespace.json, "clicks"). The models
are read through private evaluation copies in channels-last layout (2-3x faster on CPU
than the default layout for these convolutions), as everywhere the shared models are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import ImageSet
from ..metrics import psnr
from ..models import ConvAutoencoder
from .channels import decode_codes, swapped, switched_off
from .features import encode_images

# A lasso can take a whole cluster; the page shows at most this many pictures of it.
MAX_SELECTION = 200


@dataclass
class Selection:
    """Chosen pictures and what each model made of them.

    Attributes:
        indices: the pictures' indices in the split, in the order given.
        labels: their classes (indices into the split's class names).
        inputs: (n, C, H, W) float in [0, 1].
        recon: model name -> (n, C, H, W) reconstructions.
        psnr: model name -> (n,) PSNR in dB of each reconstruction.
    """

    indices: list[int]
    labels: list[int]
    inputs: torch.Tensor
    recon: dict[str, torch.Tensor]
    psnr: dict[str, torch.Tensor]


def select(models: dict[str, ConvAutoencoder], images: ImageSet, indices: list[int]) -> Selection:
    """The chosen pictures through every model.

    Args:
        models: name -> autoencoder (e.g. {"cifar10-transpose": ..., "cifar10-upsample": ...}).
        images: the split the map shows.
        indices: the chosen pictures (a click: one; a lasso: many; at most
            :data:`MAX_SELECTION` are kept, the first ones).

    Returns:
        A :class:`Selection`.

    Raises:
        ValueError: no picture chosen, or an index outside the split.
    """
    if not indices:
        raise ValueError("no picture chosen: click a point or draw around some")
    bad = [i for i in indices if not 0 <= int(i) < len(images)]
    if bad:
        raise ValueError(f"picture {bad[0]} is not in this split (0-{len(images) - 1})")
    keep = [int(i) for i in indices[:MAX_SELECTION]]
    inputs = images.floats(torch.tensor(keep))
    recon = {name: decode_codes(m, encode_images(m, inputs)) for name, m in models.items()}
    return Selection(
        keep,
        images.labels[keep].tolist(),
        inputs,
        recon,
        {name: psnr(r, inputs) for name, r in recon.items()},
    )


def switch_off_pictures(
    model: ConvAutoencoder, images: torch.Tensor, channel: int, means: torch.Tensor
) -> torch.Tensor:
    """A few pictures rebuilt with one code channel at its training mean.

    Args:
        model: the autoencoder (not modified).
        images: (n, C, H, W) uint8 or float in [0, 1].
        channel: 0-based code channel.
        means: (c, h, w) from ``CodeSpace.channels().means``.

    Returns:
        (n, C, H, W) float in [0, 1].
    """
    return decode_codes(model, switched_off(encode_images(model, images), channel, means))


def swap_pictures(
    model: ConvAutoencoder, image_a: torch.Tensor, image_b: torch.Tensor, channel: int
) -> torch.Tensor:
    """Picture A rebuilt with B's code channel, and B with A's: (2, C, H, W).

    Args:
        model: the autoencoder (not modified).
        image_a, image_b: (C, H, W) uint8 or float in [0, 1].
        channel: 0-based code channel to exchange.
    """
    codes = encode_images(model, torch.stack([image_a, image_b]))
    a, b = swapped(codes[0], codes[1], channel)
    return decode_codes(model, torch.stack([a, b]))
