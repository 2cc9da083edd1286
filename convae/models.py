"""The course's convolutional autoencoders and the family of decoders around them.

One encoder (conv1-relu-pool-conv2-relu-pool, a 4 x H/4 x W/4 code) feeds any decoder of
the family from Odena, Dumoulin and Olah (2016, "Deconvolution and Checkerboard
Artifacts"), Shi et al. (2016, sub-pixel convolution) and Aitken et al. (2017, ICNR).
Every decoder doubles the resolution twice, with 16 channels between its two steps,
then a sigmoid:

| decoder        | each doubling                                        | layers           |
| -------------- | ---------------------------------------------------- | ---------------- |
| transpose      | ConvTranspose2d k2 s2 (the seed: one tap per pixel)  | t_conv1, t_conv2 |
| transpose3     | ConvTranspose2d k3 s2 (uneven overlap: checkerboard) | t_conv1, t_conv2 |
| transpose4     | ConvTranspose2d k4 s2 (kernel divisible by stride)   | t_conv1, t_conv2 |
| upsample       | nearest x2, then Conv2d 3x3 (the seed)               | conv4, conv5     |
| bilinear       | bilinear x2, then Conv2d 3x3                         | conv4, conv5     |
| subpixel       | Conv2d 3x3 to 4x the channels, then PixelShuffle(2)  | sp_conv1, sp_conv2 |
| subpixel-icnr  | the same, initialised with ICNR                      | sp_conv1, sp_conv2 |

Layer names of the two seed decoders (conv1, conv2, t_conv1, t_conv2 / conv4, conv5)
match the course notebooks exactly, so a ``state_dict`` saved there loads here unchanged.

``steps()`` exposes the forward pass as an ordered list of named modules and
``trace()`` runs them one at a time, returning every intermediate activation.
It uses no forward hooks and never touches the model's state, because one
cached model is read by many Streamlit sessions at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

# The two decoders of the course, in the order pages show them.
SEED_DECODERS: tuple[str, ...] = ("transpose", "upsample")
# The whole family, in the order pages and tables show it.
DECODERS: tuple[str, ...] = (
    "transpose",
    "transpose3",
    "transpose4",
    "upsample",
    "bilinear",
    "subpixel",
    "subpixel-icnr",
)
# What each decoder's doubling is, in a few words (pickers, tables, legends).
DECODER_LABELS = {
    "transpose": "transpose conv, kernel 2",
    "transpose3": "transpose conv, kernel 3",
    "transpose4": "transpose conv, kernel 4",
    "upsample": "nearest upsample + conv",
    "bilinear": "bilinear upsample + conv",
    "subpixel": "sub-pixel conv",
    "subpixel-icnr": "sub-pixel conv, ICNR init",
}
TRANSPOSE_KERNELS = {"transpose": 2, "transpose3": 3, "transpose4": 4}
RESIZE_MODES = {"upsample": "nearest", "bilinear": "bilinear"}
SUBPIXEL = ("subpixel", "subpixel-icnr")
WIDTH = 16  # channels between the decoder's two doublings (as in the course)


@dataclass(frozen=True)
class AEConfig:
    """What defines an autoencoder's architecture (stored in every checkpoint)."""

    in_channels: int = 3  # 3 for CIFAR-10, 1 for MNIST / Fashion-MNIST
    image_size: int = 32  # 32 for CIFAR-10, 28 for MNIST; must be divisible by 4 (two 2x2 pools)
    decoder: str = "transpose"  # one of DECODERS; the two of the course: transpose, upsample

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(
                f"the decoder {self.decoder!r} is not one this app knows; known decoders: "
                f"{', '.join(DECODERS)}"
            )
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


def icnr_(weight: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """ICNR initialisation of a sub-pixel convolution's weight, in place (Aitken et al.
    2017, "Checkerboard artifact free sub-pixel convolution").

    PixelShuffle(r) sends output channels c*r^2 .. c*r^2 + r^2 - 1 to the r x r positions
    of channel c. Giving those r^2 channels one and the same kernel (drawn as usual for a
    convolution with r^2 times fewer outputs) makes the layer, at initialisation, a
    convolution followed by nearest-neighbour upsampling: no checkerboard to unlearn.
    """
    out_c, in_c, kh, kw = weight.shape
    base = torch.empty(out_c // scale**2, in_c, kh, kw)
    nn.init.kaiming_uniform_(base, a=5**0.5)  # nn.Conv2d's own default
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(scale**2, dim=0))
    return weight


class ConvAutoencoder(nn.Module):
    """Encoder conv1-relu-pool-conv2-relu-pool, then one decoder of the family.

    Args:
        config: the architecture; ``config.decoder`` picks the decoder (see the module
            docstring's table).
    """

    def __init__(self, config: AEConfig | None = None) -> None:
        super().__init__()
        self.config = config or AEConfig()
        c = self.config.in_channels
        # Encoder, shared by every decoder (course notebooks, Conv2d with padding=1 keeps size).
        self.conv1 = nn.Conv2d(c, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        # The code is only 4 ReLU channels: one that starts (or early on goes) negative for
        # every input is dead for good and costs a quarter of the code (seen here with
        # several seeds: ~19 dB instead of ~21). A small positive bias starts them active.
        nn.init.constant_(self.conv2.bias, 0.1)
        dec = self.config.decoder
        if dec in TRANSPOSE_KERNELS:
            # Stride 2 doubles the size: padding (k - 2) / 2 rounded up with an output
            # padding for odd k gives exactly 2n for k = 2, 3, 4. k = 2 puts one tap on
            # every output pixel (no overlap), k = 3 one or two (uneven overlap), k = 4 two.
            k = TRANSPOSE_KERNELS[dec]
            pad, out_pad = (k - 1) // 2, k % 2
            self.t_conv1 = nn.ConvTranspose2d(4, WIDTH, k, 2, pad, out_pad)
            self.t_conv2 = nn.ConvTranspose2d(WIDTH, c, k, 2, pad, out_pad)
        elif dec in RESIZE_MODES:
            # Resize, then a 3x3 conv (Odena et al. 2016): every position is treated alike,
            # so no uneven overlap. align_corners=False: the usual image resize.
            mode = RESIZE_MODES[dec]
            corners = None if mode == "nearest" else False
            self.upsample = nn.Upsample(scale_factor=2, mode=mode, align_corners=corners)
            self.conv4 = nn.Conv2d(4, WIDTH, 3, padding=1)
            self.conv5 = nn.Conv2d(WIDTH, c, 3, padding=1)
        else:
            # Sub-pixel convolution (Shi et al. 2016): a 3x3 conv to 4x the channels, then
            # PixelShuffle(2) moves each group of 4 channels to a 2x2 block of pixels.
            self.sp_conv1 = nn.Conv2d(4, WIDTH * 4, 3, padding=1)
            self.sp_conv2 = nn.Conv2d(WIDTH, c * 4, 3, padding=1)
            self.shuffle = nn.PixelShuffle(2)
            if dec == "subpixel-icnr":
                icnr_(self.sp_conv1.weight)
                icnr_(self.sp_conv2.weight)
                for conv in (self.sp_conv1, self.sp_conv2):  # biases alike per block too
                    b = conv.bias.detach().view(-1, 4)[:, :1].repeat(1, 4).flatten()
                    conv.bias.data.copy_(b)

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
        """The decoder's steps: its first doubling, relu3, its second doubling, sigmoid."""
        dec = self.config.decoder
        if dec in TRANSPOSE_KERNELS:
            first, second = [("t_conv1", self.t_conv1)], [("t_conv2", self.t_conv2)]
        elif dec in RESIZE_MODES:
            first = [("upsample1", self.upsample), ("conv4", self.conv4)]
            second = [("upsample2", self.upsample), ("conv5", self.conv5)]
        else:
            first = [("sp_conv1", self.sp_conv1), ("shuffle1", self.shuffle)]
            second = [("sp_conv2", self.sp_conv2), ("shuffle2", self.shuffle)]
        return [*first, ("relu3", nn.ReLU()), *second, ("sigmoid", nn.Sigmoid())]

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
        return torch.sigmoid(self.decode_logits(z))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Like decode() but before the sigmoid, for numerically stable BCE."""
        dec = self.config.decoder
        if dec in TRANSPOSE_KERNELS:
            return self.t_conv2(torch.relu(self.t_conv1(z)))
        if dec in RESIZE_MODES:
            return self.conv5(self.upsample(torch.relu(self.conv4(self.upsample(z)))))
        z = torch.relu(self.shuffle(self.sp_conv1(z)))
        return self.shuffle(self.sp_conv2(z))

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
    """Guess the architecture of a bare state_dict (a course notebook's) from its keys.

    Transpose decoders are told apart by their kernel size; the layers of the nearest and
    bilinear decoders, and of the two sub-pixel ones, have the same shapes, so a bare
    state_dict is read as the course's (nearest) or the plain sub-pixel decoder. The app's
    own checkpoints store their decoder and are never guessed.

    Raises:
        ValueError: when the keys match no decoder.
    """
    keys = set(state_dict)
    if {"t_conv1.weight", "t_conv2.weight"} <= keys:
        k = int(state_dict["t_conv1.weight"].shape[-1])
        kinds = {v: n for n, v in TRANSPOSE_KERNELS.items()}
        if k not in kinds:
            raise ValueError(f"a transpose decoder with kernel {k}: this app knows kernels 2-4")
        decoder, out_c = kinds[k], state_dict["t_conv2.weight"].shape[1]
    elif {"conv4.weight", "conv5.weight"} <= keys:
        decoder = "upsample"
        out_c = state_dict["conv5.weight"].shape[0]
    elif {"sp_conv1.weight", "sp_conv2.weight"} <= keys:
        decoder = "subpixel"
        out_c = state_dict["sp_conv2.weight"].shape[0] // 4
    else:
        raise ValueError(
            "the weights have neither t_conv1/t_conv2 (transpose decoder), conv4/conv5 "
            "(upsample decoder) nor sp_conv1/sp_conv2 (sub-pixel decoder) layers; keys "
            f"found: {sorted(keys)[:8]}"
        )
    if "conv1.weight" not in keys:
        raise ValueError("the weights have no conv1 layer, so they are not a ConvAE encoder")
    in_c = state_dict["conv1.weight"].shape[1]
    if in_c != out_c:
        raise ValueError(f"encoder takes {in_c} channels but decoder gives {out_c}")
    # A bare state_dict does not record the image size: 1-channel course models were MNIST.
    return AEConfig(in_channels=int(in_c), image_size=32 if in_c == 3 else 28, decoder=decoder)


def step_role(step: str) -> str:
    """What a decoder step does, the same for every decoder of the family: "first" or
    "second" doubling (the layer with weights), "resize" (a resize or shuffle without
    weights), or the step's own name (relu3, sigmoid, encoder steps). Layers' compare mode
    matches the steps of two decoders by it."""
    return {
        "t_conv1": "first",
        "conv4": "first",
        "sp_conv1": "first",
        "t_conv2": "second",
        "conv5": "second",
        "sp_conv2": "second",
    }.get(step, step)
