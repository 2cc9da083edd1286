"""The two convolutional autoencoders of the course, built from one config.

Layer names (conv1, conv2, t_conv1, t_conv2 / conv4, conv5) match the course
notebooks exactly, so a ``state_dict`` saved there loads here unchanged.

``steps()`` exposes the forward pass as an ordered list of named modules and
``trace()`` runs them one at a time, returning every intermediate activation.
It uses no forward hooks and never touches the model's state, because one
cached model is read by many Streamlit sessions at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

Decoder = Literal["transpose", "upsample"]
DECODERS: tuple[str, ...] = ("transpose", "upsample")


@dataclass(frozen=True)
class AEConfig:
    """What defines an autoencoder's architecture (stored in every checkpoint)."""

    in_channels: int = 3  # 3 for CIFAR-10, 1 for MNIST / Fashion-MNIST
    image_size: int = 32  # 32 for CIFAR-10, 28 for MNIST; must be divisible by 4 (two 2x2 pools)
    decoder: str = "transpose"  # "transpose" (ConvTranspose2d) or "upsample" (nearest x2 + Conv2d)

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.image_size % 4 != 0 or self.image_size < 4:
            raise ValueError(f"image_size must be a positive multiple of 4, got {self.image_size}")

    @property
    def code_shape(self) -> tuple[int, int, int]:
        """Shape of the bottleneck: 4 channels at a quarter of the input size."""
        return (4, self.image_size // 4, self.image_size // 4)

    @property
    def code_size(self) -> int:
        c, h, w = self.code_shape
        return c * h * w

    @property
    def input_size(self) -> int:
        return self.in_channels * self.image_size * self.image_size

    def to_dict(self) -> dict:
        return asdict(self)


class ConvAutoencoder(nn.Module):
    """Encoder conv1-relu-pool-conv2-relu-pool, then one of the two decoders.

    Args:
        config: the architecture; ``config.decoder`` picks the decoder.
    """

    def __init__(self, config: AEConfig | None = None) -> None:
        super().__init__()
        self.config = config or AEConfig()
        c = self.config.in_channels
        # Encoder, shared by both variants (course notebooks, Conv2d with padding=1 keeps size).
        self.conv1 = nn.Conv2d(c, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        # The code is only 4 ReLU channels: one that starts (or early on goes) negative for
        # every input is dead for good and costs a quarter of the code (seen here with
        # several seeds: ~19 dB instead of ~21). A small positive bias starts them active.
        nn.init.constant_(self.conv2.bias, 0.1)
        if self.config.decoder == "transpose":
            # kernel 2, stride 2: every output pixel gets exactly one tap (no overlap).
            self.t_conv1 = nn.ConvTranspose2d(4, 16, 2, stride=2)
            self.t_conv2 = nn.ConvTranspose2d(16, c, 2, stride=2)
        else:
            # Nearest upsampling followed by a 3x3 conv (Odena et al. 2016, "Deconvolution
            # and Checkerboard Artifacts"): avoids uneven kernel overlap.
            self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
            self.conv4 = nn.Conv2d(4, 16, 3, padding=1)
            self.conv5 = nn.Conv2d(16, c, 3, padding=1)

    def encoder_steps(self) -> list[tuple[str, nn.Module]]:
        return [
            ("conv1", self.conv1),
            ("relu1", nn.ReLU()),
            ("pool1", self.pool),
            ("conv2", self.conv2),
            ("relu2", nn.ReLU()),
            ("pool2", self.pool),
        ]

    def decoder_steps(self) -> list[tuple[str, nn.Module]]:
        if self.config.decoder == "transpose":
            return [
                ("t_conv1", self.t_conv1),
                ("relu3", nn.ReLU()),
                ("t_conv2", self.t_conv2),
                ("sigmoid", nn.Sigmoid()),
            ]
        return [
            ("upsample1", self.upsample),
            ("conv4", self.conv4),
            ("relu3", nn.ReLU()),
            ("upsample2", self.upsample),
            ("conv5", self.conv5),
            ("sigmoid", nn.Sigmoid()),
        ]

    def steps(self) -> list[tuple[str, nn.Module]]:
        """The forward pass as ordered (name, module) pairs; pool2's output is the code."""
        return self.encoder_steps() + self.decoder_steps()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], (N, C, H, W) -> codes (N, 4, H/4, W/4).

        Pools before the ReLU: max and ReLU commute (both monotone), so the code is
        identical to the course's relu -> pool order, but the ReLU and its backward
        touch 4x fewer values (about 1.5x faster training on CPU, bench/train_speed.py).
        """
        x = torch.relu(self.pool(self.conv1(x)))
        return torch.relu(self.pool(self.conv2(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (N, 4, h, w) -> images in [0, 1], (N, C, 4h, 4w)."""
        if self.config.decoder == "transpose":
            z = torch.relu(self.t_conv1(z))
            return torch.sigmoid(self.t_conv2(z))
        z = torch.relu(self.conv4(self.upsample(z)))
        return torch.sigmoid(self.conv5(self.upsample(z)))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Like decode() but before the sigmoid, for numerically stable BCE."""
        if self.config.decoder == "transpose":
            return self.t_conv2(torch.relu(self.t_conv1(z)))
        return self.conv5(self.upsample(torch.relu(self.conv4(self.upsample(z)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


CODE_STEP = "pool2"


def trace(model: ConvAutoencoder, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Run ``model`` step by step and return every activation with its name.

    The first entry is ("input", x). No hooks, no grad, no change to ``model``.

    Args:
        model: an autoencoder (may be shared between threads).
        x: images (N, C, H, W) in [0, 1].

    Returns:
        [("input", x), ("conv1", ...), ..., ("sigmoid", reconstruction)].
    """
    out = [("input", x)]
    with torch.no_grad():
        for name, module in model.steps():
            x = module(x)
            out.append((name, x))
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def infer_config(state_dict: dict[str, torch.Tensor]) -> AEConfig:
    """Guess the architecture of a bare course-notebook state_dict from its keys.

    Raises:
        ValueError: when the keys match neither decoder.
    """
    keys = set(state_dict)
    if {"t_conv1.weight", "t_conv2.weight"} <= keys:
        decoder = "transpose"
        out_c = state_dict["t_conv2.weight"].shape[1]
    elif {"conv4.weight", "conv5.weight"} <= keys:
        decoder = "upsample"
        out_c = state_dict["conv5.weight"].shape[0]
    else:
        raise ValueError(
            "the weights have neither t_conv1/t_conv2 (transpose decoder) nor conv4/conv5 "
            f"(upsample decoder) layers; keys found: {sorted(keys)[:8]}"
        )
    if "conv1.weight" not in keys:
        raise ValueError("the weights have no conv1 layer, so they are not a ConvAE encoder")
    in_c = state_dict["conv1.weight"].shape[1]
    if in_c != out_c:
        raise ValueError(f"encoder takes {in_c} channels but decoder gives {out_c}")
    # A bare state_dict does not record the image size: 1-channel course models were MNIST.
    return AEConfig(in_channels=int(in_c), image_size=32 if in_c == 3 else 28, decoder=decoder)
