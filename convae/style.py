"""Style as the course notes end it: Gram matrices, content and style losses, transfer.

A layer's activation maps F (channels x positions) have the Gram matrix G = F F^T:
which channels fire together, wherever in the picture. Matching G between two
images matches their texture and colour statistics while ignoring layout (Gatys,
Ecker and Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks").
Style transfer optimises the pixels of a target image for

    alpha * content_loss(layer) + beta * sum_i w_i * style_loss(layer_i),

content loss = MSE of the activations, style loss = MSE of the Gram matrices.

The features come from a trained autoencoder's encoder (always here, offline), or
from torchvision's VGG-19 when its weights already sit in the torch hub cache; they
are never downloaded. Both extractors are fully convolutional, so images larger
than 32x32 work too.
"""

from __future__ import annotations

import copy
import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from .models import ConvAutoencoder

if TYPE_CHECKING:
    from torchvision.models import VGG19_Weights

ENCODER_LAYERS = ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2")
# The usual style layers of Gatys et al.: the first ReLU of each block, by index in
# torchvision's vgg19().features.
VGG19_LAYERS = {
    "relu1_1": 1,
    "relu2_1": 6,
    "relu3_1": 11,
    "relu4_1": 20,
    "relu4_2": 22,
    "relu5_1": 29,
}


def gram_matrix(f: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """G = F F^T of activations (N, C, H, W) with F the (C, H*W) matrix of each image.

    Args:
        normalize: divide by the number of positions H*W, so images of different
            sizes (a 32x32 content and a 64x64 style image) give comparable G.

    Returns:
        (N, C, C).
    """
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    g = flat @ flat.transpose(1, 2)
    return g / (h * w) if normalize else g


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (vertical and horizontal)."""
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(
        2
    ).mean()


def content_loss(f: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between a layer's activations and the content image's."""
    return F.mse_loss(f, target)


def style_loss(f: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """MSE between the Gram matrix of ``f`` and the style image's Gram matrix."""
    return F.mse_loss(gram_matrix(f), target_gram.expand(f.shape[0], -1, -1))


# -------------------------------------------------------------- extractors


class EncoderFeatures(nn.Module):
    """The trained autoencoder's encoder steps as a feature extractor (with grad).

    Works on a private frozen copy: a model shared between sessions would otherwise
    collect ``.grad`` from every style run (1,028 encoder weights, so copying is free).
    """

    name = "autoencoder encoder"

    def __init__(self, model: ConvAutoencoder) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.layers = list(ENCODER_LAYERS)
        self.in_channels = model.config.in_channels

    def forward(self, x: torch.Tensor, wanted: Sequence[str]) -> dict[str, torch.Tensor]:
        out = {}
        last = max(self.layers.index(w) for w in wanted)
        for name, module in self.model.encoder_steps()[: last + 1]:
            x = module(x)
            if name in wanted:
                out[name] = x
        return out


@functools.cache
def _vgg19_weights() -> VGG19_Weights:
    """torchvision's record of the VGG-19 ImageNet weights (IMAGENET1K_V1): where they are
    downloaded from, hence their file name, and the normalisation they were trained with.
    Imported when first needed: torchvision.models takes a second or more to import."""
    from torchvision.models import VGG19_Weights

    return VGG19_Weights.IMAGENET1K_V1


def vgg19_file() -> str:
    """The VGG-19 weights' file name, as torch hub saves it ("vgg19-dcbb9e9d.pth")."""
    return Path(urlparse(_vgg19_weights().url).path).name


def vgg_weights_path() -> Path | None:
    """The local VGG-19 weights file, or None when it is not there (never downloads).

    Looked for where ``torchvision.models.vgg19(weights=...)`` would have saved it:
    ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub``, else ~/.cache/torch/hub, or
    wherever ``torch.hub.set_dir`` points).
    """
    p = Path(torch.hub.get_dir()) / "checkpoints" / vgg19_file()
    return p if p.is_file() and p.stat().st_size > 0 else None


class VGGWeightsError(ValueError):
    """A VGG-19 weights file that cannot be used; the message says why and what to do."""


class VGGFeatures(nn.Module):
    """torchvision VGG-19 up to relu5_1, from a local weights file only.

    Inputs are in [0, 1] and normalised with the ImageNet mean and std inside.

    Raises:
        VGGWeightsError: the file is not a readable weights file, or not VGG-19's.
    """

    name = "VGG-19 (ImageNet, local weights)"

    def __init__(self, weights: str | os.PathLike) -> None:
        super().__init__()
        from torchvision.models import vgg19

        # Built on the meta device: no 548 MB of random initial weights (seconds of CPU)
        # only to be overwritten; load_state_dict(assign=True) then puts the file's
        # tensors in place, still checking every key and shape.
        with torch.device("meta"):
            net = vgg19(weights=None)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001  any reader failure on a foreign file
            # torch's own message would suggest weights_only=False: never for a file we
            # did not write.
            raise VGGWeightsError(
                f"{weights} is not a readable PyTorch file (the weights-only reader stopped "
                f"with {type(exc).__name__}; a broken or partial copy?). Replace it with "
                f"torchvision's {vgg19_file()} or delete it; the encoder's features need no file."
            ) from None
        try:
            net.load_state_dict(state, assign=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise VGGWeightsError(
                f"{weights} holds weights that are not torchvision's VGG-19 ({detail}). "
                f"Replace it with torchvision's {vgg19_file()} or delete it."
            ) from None
        self.features = net.features[: max(VGG19_LAYERS.values()) + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.layers = list(VGG19_LAYERS)
        self.in_channels = 3
        norm = _vgg19_weights().transforms()  # the ImageNet mean and std it was trained with
        self.register_buffer("mean", torch.tensor(norm.mean).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(norm.std).reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, wanted: Sequence[str]) -> dict[str, torch.Tensor]:
        x = (x - self.mean) / self.std
        index = {VGG19_LAYERS[w]: w for w in wanted}
        out = {}
        for i, module in enumerate(self.features[: max(index) + 1]):
            x = module(x)
            if i in index:
                out[index[i]] = x
        return out


# ------------------------------------------------------------ the transfer


def default_style_weight(layer: str) -> float:
    """The style weight w_i a layer starts with: 1 for the encoder's two ReLUs and for
    VGG-19's first ReLU of each block (relu1_1 ... relu5_1, the style layers of Gatys et
    al.), 0 for every other layer (convolutions before their ReLU, pools, relu4_2)."""
    first_relu = layer.startswith("relu") and layer.endswith("_1")
    return 1.0 if layer in ("relu1", "relu2") or first_relu else 0.0


def default_content_layer(layers: Sequence[str]) -> str:
    """The content layer an extractor starts with: the encoder's relu2 (deep enough to
    hold the layout, not the colour), else VGG-19's relu4_2 (Gatys et al.)."""
    return "relu2" if "relu2" in layers else "relu4_2"


@dataclass
class StyleConfig:
    """One style-transfer run (the notes' alpha, beta and per-layer weights w_i).

    The defaults are what the Style page starts with. The page chose them by eye on a
    grid of picture pairs (style weights 1e3-1e4, smoothness 3-300) with this project's
    small encoder; measured against the old library defaults (beta 100, tv 1, lr 0.03)
    on three CIFAR-10 pairs through both shipped encoders (bench/style_defaults.py), both
    match the style's Gram matrices equally (99.98 % of the gap closed in 200 steps), and
    these leave less pixel grain in all six cases (total variation 1.9x the content's
    against 2.7x, medians).
    """

    content_layer: str = "relu2"  # deep enough to hold layout, not colour
    # w_i: conv1 sees colour and edges, conv2 combinations of them (default_style_weight).
    style_weights: dict[str, float] = field(default_factory=lambda: {"relu1": 1.0, "relu2": 1.0})
    alpha: float = 1.0  # content weight
    # Style weight: Gram differences are small, so beta >> alpha.
    beta: float = 1000.0
    steps: int = 200
    lr: float = 0.02  # Adam on the pixels (values in [0, 1])
    # Total-variation weight: pixel optimisation through a 3x3-conv encoder happily makes
    # pixel-level noise (the encoder barely sees it); a smoothness term keeps it a picture
    # (Mahendran and Vedaldi 2015). 0 turns it off.
    tv: float = 30.0
    init: str = "content"  # start from the "content" image or from "noise"
    seed: int = 0

    @classmethod
    def for_layers(cls, layers: Sequence[str], **settings: object) -> StyleConfig:
        """The defaults for an extractor with these layers (its ``.layers``): its default
        content layer and every layer's default weight; ``settings`` override fields.

        Returns:
            e.g. ``StyleConfig.for_layers(VGGFeatures(...).layers, steps=100)``.
        """
        defaults = dict(
            content_layer=default_content_layer(layers),
            style_weights={n: default_style_weight(n) for n in layers},
        )
        return cls(**{**defaults, **settings})

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.init not in ("content", "noise"):
            raise ValueError(f"init must be content or noise, got {self.init!r}")
        weights = [self.alpha, self.beta, self.tv, *self.style_weights.values()]
        if any(w < 0 for w in weights):
            raise ValueError("alpha, beta, tv and the layer weights must be >= 0")


@dataclass
class StyleEvent:
    step: int
    steps: int
    total: float
    content: float
    style: float
    image: torch.Tensor  # the current target (1, C, H, W), detached


@dataclass
class StyleResult:
    image: torch.Tensor  # (1, C, H, W) in [0, 1]
    history: list[dict]  # per step: step, total, content, style
    stopped: bool = False
    seconds: float = 0.0


def style_transfer(
    extractor: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    cfg: StyleConfig,
    callback: Callable[[StyleEvent], bool | None] | None = None,
) -> StyleResult:
    """Optimise a target image for alpha * content loss + beta * sum w_i * style loss.

    Args:
        extractor: ``EncoderFeatures`` or ``VGGFeatures`` (not modified).
        content: (1, C, H, W) in [0, 1]; the target has its size.
        style: (1, C, H', W') in [0, 1]; any size.
        callback: sees every step; returning True stops (the current image is kept).

    Returns:
        The image, the loss history and how long it took.
    """
    layers = list(extractor.layers)
    unknown = [n for n in [cfg.content_layer, *cfg.style_weights] if n not in layers]
    if unknown:
        raise ValueError(f"unknown layer {unknown}: this extractor has {layers}")
    for name, img in (("content", content), ("style", style)):
        if img.ndim != 4 or img.shape[1] != extractor.in_channels:
            raise ValueError(
                f"the {name} image must be (1, {extractor.in_channels}, H, W), "
                f"got {tuple(img.shape)}"
            )
    style_layers = [n for n, w in cfg.style_weights.items() if w > 0]
    with torch.no_grad():
        content_target = extractor(content, [cfg.content_layer])[cfg.content_layer]
        grams = (
            {n: gram_matrix(f) for n, f in extractor(style, style_layers).items()}
            if style_layers
            else {}
        )
    # Drawn on the CPU and moved: the same start for a seed on any device.
    gen = torch.Generator().manual_seed(cfg.seed)
    noise = torch.rand(content.shape, generator=gen, dtype=content.dtype).to(content.device)
    start = content.clone() if cfg.init == "content" else noise
    target = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([target], lr=cfg.lr)
    wanted = sorted({cfg.content_layer, *style_layers}, key=layers.index)
    history: list[dict] = []
    stopped = False
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        feats = extractor(target, wanted)
        c_loss = content_loss(feats[cfg.content_layer], content_target)
        s_loss = sum(
            (cfg.style_weights[n] * style_loss(feats[n], grams[n]) for n in style_layers),
            content.new_zeros(()),
        )
        loss = cfg.alpha * c_loss + cfg.beta * s_loss + cfg.tv * total_variation(target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            target.clamp_(0, 1)  # stay a picture
        row = {"step": step, "total": loss.item(), "content": c_loss.item(), "style": s_loss.item()}
        history.append(row)
        if callback is not None and callback(
            StyleEvent(
                step, cfg.steps, row["total"], row["content"], row["style"], target.detach().clone()
            )
        ):
            stopped = True
            break
    return StyleResult(target.detach().clone(), history, stopped, time.perf_counter() - t0)


@torch.no_grad()
def layer_grams(
    extractor: nn.Module, x: torch.Tensor, layers: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """Gram matrix (C, C) of each layer for one image (1, C, H, W)."""
    layers = list(layers or extractor.layers)
    return {n: gram_matrix(f)[0] for n, f in extractor(x, layers).items()}
