"""What one code cell does, what it sees, and the arithmetic of one output pixel.

Three views a student can check by hand, for any :class:`~convae.models.ConvAutoencoder`:

* :func:`cell_footprint` - nudge one number of an image's 4x8x8 code by ``d`` and see
  what changes in the output, ``decode(z + d e) - decode(z)``. The transpose decoder
  (kernel 2, stride 2, no overlap) changes exactly the cell's own 4x4 block: a hard
  tile. The upsample decoder's two 3x3 convolutions spread it over up to 10x10
  pixels: a soft patch that overlaps its neighbours' (:func:`decoder_field_box`).
* :func:`receptive_field` - the other direction: which input pixels the code cell
  depends on, as the gradient of the cell with respect to the input, inside the
  10x10 window that conv1, pool1, conv2 and pool2 reach (:func:`receptive_field_box`).
* :func:`pixel_arithmetic` - one output pixel (row, column, colour channel) as rows of
  value x weight = product, plus a bias, through a ReLU and a sigmoid, for either
  decoder, with every hidden value that feeds it broken down the same way.

Models are shared between Streamlit sessions, so nothing here changes one: no hooks,
no ``requires_grad`` changes on parameters and no train/eval switch. The gradient is
taken with ``torch.autograd.grad`` with respect to a copy of the input only, so no
parameter's ``.grad`` is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from .models import SEED_DECODERS, ConvAutoencoder

# A box of pixels, (top, left, bottom, right) with bottom and right exclusive, like a slice.
Box = tuple[int, int, int, int]


def _check_cell(model: ConvAutoencoder, cell: tuple[int, int, int]) -> tuple[int, int, int]:
    c, h, w = model.config.code_shape
    if len(cell) != 3:
        raise ValueError(f"a code cell is (channel, row, column), got {cell}")
    ch, r, col = (int(v) for v in cell)
    if not (0 <= ch < c and 0 <= r < h and 0 <= col < w):
        raise ValueError(
            f"code cell {cell} is outside the {c}x{h}x{w} code: channel 0-{c - 1}, "
            f"row 0-{h - 1}, column 0-{w - 1}"
        )
    return ch, r, col


def _as_image(model: ConvAutoencoder, image: torch.Tensor) -> torch.Tensor:
    """One image (C, H, W) or (1, C, H, W), uint8 or float in [0, 1] -> float (1, C, H, W)."""
    x = image[None] if image.dim() == 3 else image
    if x.dim() != 4 or len(x) != 1:
        raise ValueError(f"give one image (C, H, W), got shape {tuple(image.shape)}")
    cfg = model.config
    if x.shape[1:] != (cfg.in_channels, cfg.image_size, cfg.image_size):
        raise ValueError(
            f"the model takes images ({cfg.in_channels}, {cfg.image_size}, {cfg.image_size}), "
            f"got {tuple(x.shape[1:])}: pick a model trained on this data set"
        )
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    return x.to(next(model.parameters()).device)


def _as_code(model: ConvAutoencoder, code: torch.Tensor) -> torch.Tensor:
    """A code (4, h, w) or (1, 4, h, w) -> float (1, 4, h, w) on the model's device."""
    z = code[None] if code.dim() == 3 else code
    if z.dim() != 4 or len(z) != 1 or tuple(z.shape[1:]) != model.config.code_shape:
        raise ValueError(
            f"a code of this model has shape {model.config.code_shape}, got {tuple(code.shape)}"
        )
    return z.float().to(next(model.parameters()).device)


@torch.no_grad()
def encode_image(model: ConvAutoencoder, image: torch.Tensor) -> torch.Tensor:
    """The code of one image, (4, h, w) on the CPU (the model is not modified).

    Args:
        model: an autoencoder.
        image: (C, H, W) uint8 or float in [0, 1].
    """
    return model.encode(_as_image(model, image))[0].cpu()


# ------------------------------------------------------------------ geometry


def _walk_back(steps: list[tuple[str, nn.Module]], lo: int, hi: int) -> tuple[int, int]:
    """Rows [lo, hi] (inclusive) at the output of ``steps`` -> the input rows they read."""
    for _, m in reversed(steps):
        if isinstance(m, nn.Conv2d):
            k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
            lo, hi = lo * s - p, hi * s - p + k - 1
        elif isinstance(m, nn.MaxPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            lo, hi = lo * s, hi * s + k - 1
    return lo, hi


def _walk_forward(steps: list[tuple[str, nn.Module]], lo: int, hi: int) -> tuple[int, int]:
    """Rows [lo, hi] (inclusive) at the input of ``steps`` -> the output rows they reach.

    Every step of the decoder family: a transpose convolution writes input row i to rows
    i*s - p .. i*s - p + k - 1 (its output padding only adds rows at the far end); a
    stride-1 convolution widens by its reach on each side; nearest x2 doubles a row into
    2i, 2i+1; bilinear x2 (align_corners=False) reads each output row o at (o + 0.5) / 2 -
    0.5, so input row i also feeds rows 2i - 1 and 2i + 2, one more each side than
    nearest; PixelShuffle(r) moves row i's r*r channel groups to rows r*i .. r*i + r - 1.
    """
    for _, m in steps:
        if isinstance(m, nn.ConvTranspose2d):
            k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
            lo, hi = lo * s - p, hi * s - p + k - 1
        elif isinstance(m, nn.Conv2d):
            k, p = m.kernel_size[0], m.padding[0]  # stride 1 in these decoders
            lo, hi = lo - (k - 1 - p), hi + p
        elif isinstance(m, nn.Upsample):
            f = int(m.scale_factor)
            spread = f // 2 if m.mode == "bilinear" else 0  # 1 for x2
            lo, hi = lo * f - spread, hi * f + f - 1 + spread
        elif isinstance(m, nn.PixelShuffle):
            r = m.upscale_factor
            lo, hi = lo * r, hi * r + r - 1
    return lo, hi


def _clip_box(rows: tuple[int, int], cols: tuple[int, int], size: int) -> Box:
    return (
        max(rows[0], 0),
        max(cols[0], 0),
        min(rows[1], size - 1) + 1,
        min(cols[1], size - 1) + 1,
    )


def receptive_field_box(model: ConvAutoencoder, cell: tuple[int, int, int]) -> Box:
    """The input pixels a code cell can depend on, from the encoder's layer geometry.

    Walking back from code cell (row r): pool2 reads conv2 rows 2r..2r+1; conv2 (3x3,
    padding 1) reads pool1 rows 2r-1..2r+2; pool1 reads conv1 rows 4r-2..4r+5; conv1
    reads input rows 4r-3..4r+6: 10 rows, and likewise 10 columns, cut at the border.

    Args:
        model: an autoencoder (only its layer shapes are read).
        cell: (channel, row, column) of the code.

    Returns:
        (top, left, bottom, right), bottom and right exclusive: 10x10 inside the image.
    """
    _, r, c = _check_cell(model, cell)
    steps = model.encoder_steps()
    return _clip_box(_walk_back(steps, r, r), _walk_back(steps, c, c), model.config.image_size)


def decoder_field_box(model: ConvAutoencoder, cell: tuple[int, int, int]) -> Box:
    """The output pixels a code cell can change, from the decoder's layer geometry.

    Transpose decoder: each kernel-2, stride-2 layer doubles the cell's block without
    overlap, so exactly its own 4x4 block (rows 4r..4r+3). Upsample decoder: nearest x2,
    a 3x3 convolution (one more row each side), x2, 3x3 again: rows 4r-3..4r+6, 10x10.
    The rest of the family (see :func:`_walk_forward`): transpose kernel 3 rows 4r-3..4r+3
    (7x7), kernel 4 rows 4r-3..4r+6 (10x10), bilinear and sub-pixel rows 4r-6..4r+9
    (16x16).

    Returns:
        (top, left, bottom, right), bottom and right exclusive, cut at the border.
    """
    _, r, c = _check_cell(model, cell)
    steps = model.decoder_steps()
    return _clip_box(
        _walk_forward(steps, r, r), _walk_forward(steps, c, c), model.config.image_size
    )


# ------------------------------------------------------------------ footprint


@dataclass
class Footprint:
    """What nudging one code cell does to one decoder's output.

    Attributes:
        cell: (channel, row, column) of the nudged code value.
        delta: how much was added to it.
        code_value: its value before the nudge.
        before: ``decode(z)``, (C, H, W) in [0, 1].
        after: ``decode(z + delta * e_cell)``, same shape.
        box: :func:`decoder_field_box`, the pixels the cell can reach.
    """

    cell: tuple[int, int, int]
    delta: float
    code_value: float
    before: torch.Tensor
    after: torch.Tensor
    box: Box

    @property
    def difference(self) -> torch.Tensor:
        """``after - before``, (C, H, W): the cell's footprint on the output."""
        return self.after - self.before

    def changed_box(self, tol: float = 0.0) -> Box | None:
        """The bounding box of the pixels that changed by more than ``tol`` (None: none)."""
        moved = (self.difference.abs() > tol).any(0)
        if not moved.any():
            return None
        rows, cols = moved.any(1).nonzero()[:, 0], moved.any(0).nonzero()[:, 0]
        return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


@torch.no_grad()
def cell_footprint(
    model: ConvAutoencoder, code: torch.Tensor, cell: tuple[int, int, int], delta: float
) -> Footprint:
    """``decode(z + delta * e) - decode(z)`` for one code cell of one code.

    Show it for both decoders side by side with the same ``delta`` (the page's job):
    the transpose decoder's footprint is a 4x4 tile with hard edges, the upsample
    decoder's a soft patch up to 10x10 that overlaps its neighbours'.

    Args:
        model: an autoencoder (not modified).
        code: a code (4, h, w), e.g. :func:`encode_image` of an image (or an edited one).
        cell: (channel, row, column) to nudge.
        delta: the amount added to that one value (code values are ReLU outputs, 0 to
            a few units; a negative delta may take it below 0, which the decoder accepts).

    Returns:
        A :class:`Footprint` on the CPU.
    """
    ch, r, c = _check_cell(model, cell)
    if not math.isfinite(delta):
        raise ValueError(f"the nudge must be a finite number, got {delta}")
    z = _as_code(model, code)
    moved = z.clone()
    moved[0, ch, r, c] += delta
    both = model.decode(torch.cat([z, moved])).cpu()
    return Footprint(
        (ch, r, c),
        float(delta),
        float(z[0, ch, r, c]),
        both[0],
        both[1],
        decoder_field_box(model, cell),
    )


@dataclass
class ReceptiveField:
    """Which input pixels one code cell depends on, for one image.

    Attributes:
        cell: (channel, row, column) of the code value.
        value: the code value for this image.
        gradient: d(code value)/d(input), (C, H, W): how much the code value would change
            per unit change of each input pixel and colour. Zero outside ``box``; zero
            everywhere when the value is 0 (its ReLU is off), and zero at pixels the
            max-pools did not pick.
        box: :func:`receptive_field_box`, the 10x10 window the encoder can see.
    """

    cell: tuple[int, int, int]
    value: float
    gradient: torch.Tensor
    box: Box

    def used_box(self) -> Box | None:
        """Bounding box of the pixels with a non-zero gradient (None when all are zero)."""
        used = (self.gradient != 0).any(0)
        if not used.any():
            return None
        rows, cols = used.any(1).nonzero()[:, 0], used.any(0).nonzero()[:, 0]
        return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


def receptive_field(
    model: ConvAutoencoder, image: torch.Tensor, cell: tuple[int, int, int]
) -> ReceptiveField:
    """The gradient of one code cell with respect to the input image.

    Only the input gets ``requires_grad`` (a private copy), and ``torch.autograd.grad``
    returns the gradient for it alone, so the shared model's parameters and their
    ``.grad`` are left as they were; works inside a ``torch.no_grad()`` caller too.

    Args:
        model: an autoencoder (not modified).
        image: (C, H, W) uint8 or float in [0, 1].
        cell: (channel, row, column) of the code.

    Returns:
        A :class:`ReceptiveField` on the CPU.
    """
    ch, r, c = _check_cell(model, cell)
    x = _as_image(model, image).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        value = model.encode(x)[0, ch, r, c]
        (grad,) = torch.autograd.grad(value, x)
    return ReceptiveField(
        (ch, r, c), float(value.detach()), grad[0].cpu(), receptive_field_box(model, cell)
    )


# ------------------------------------------------------------------ pixel arithmetic


@dataclass(frozen=True)
class Term:
    """One input of a sum: ``value * weight = product``.

    Attributes:
        source: what the value is, e.g. "code[2, 3, 5]" (channel, row, column) or
            "t_conv1[7, 6, 10]" (a hidden value after its ReLU).
        value: the input value.
        weight: the kernel weight it is multiplied by; for the upsample decoder the sum
            of the weights of every kernel tap that reads this value (nearest upsampling
            repeats each value 2x2 times, so up to 4 taps of a 3x3 kernel read the same one).
        taps: the kernel positions (row, column) that read it.
    """

    source: str
    value: float
    weight: float
    taps: tuple[tuple[int, int], ...]

    @property
    def product(self) -> float:
        return self.value * self.weight


@dataclass
class Unit:
    """One value computed by a layer, as a sum a student can redo.

    ``pre_activation = sum(term.product) + bias``; ``activation`` is that through
    ``activation_name`` ("relu" or "sigmoid").

    Attributes:
        layer: "t_conv1", "t_conv2" (transpose) or "conv4", "conv5" (upsample).
        channel, row, col: where the value sits in the layer's output.
        terms: the inputs of the sum, in the order the kernel reads them.
        bias: the layer's bias for this channel.
        activation_name: "relu" for the hidden layer, "sigmoid" for the output.
    """

    layer: str
    channel: int
    row: int
    col: int
    terms: list[Term]
    bias: float
    activation_name: str

    @property
    def name(self) -> str:
        return f"{self.layer}[{self.channel}, {self.row}, {self.col}]"

    @property
    def pre_activation(self) -> float:
        return math.fsum(t.product for t in self.terms) + self.bias

    @property
    def activation(self) -> float:
        p = self.pre_activation
        if self.activation_name == "relu":
            return max(p, 0.0)
        return 1.0 / (1.0 + math.exp(-p))

    def rows(self) -> list[dict]:
        """The sum as table rows: one per term, then bias, sum and activation.

        Returns:
            [{"input", "value", "weight", "product", "taps"}, ...]; the last three rows
            have "input" "bias", "sum (before <activation>)" and "<activation>(sum)", with
            the figure in "product".
        """
        out = [
            {
                "input": t.source,
                "value": t.value,
                "weight": t.weight,
                "product": t.product,
                "taps": ", ".join(f"({a}, {b})" for a, b in t.taps),
            }
            for t in self.terms
        ]
        blank = {"value": None, "weight": None, "taps": ""}
        out.append({**blank, "input": "bias", "product": self.bias})
        out.append(
            {
                **blank,
                "input": f"sum (before {self.activation_name})",
                "product": self.pre_activation,
            }
        )
        out.append({**blank, "input": f"{self.activation_name}(sum)", "product": self.activation})
        return out


@dataclass
class PixelArithmetic:
    """How one decoder computes one output pixel from a code.

    Attributes:
        decoder: "transpose" or "upsample".
        pixel: (row, column, colour channel) of the output.
        output: the output layer's sum for that pixel (sigmoid activation = the pixel).
        hidden: every hidden value (after its ReLU) that ``output`` reads, as its own sum
            over code values, keyed by its ``Unit.name``.
    """

    decoder: str
    pixel: tuple[int, int, int]
    output: Unit
    hidden: dict[str, Unit] = field(default_factory=dict)

    @property
    def logit(self) -> float:
        """The pixel before the sigmoid."""
        return self.output.pre_activation

    @property
    def value(self) -> float:
        """The pixel, in [0, 1] (x255 for grey levels)."""
        return self.output.activation

    def code_cells(self) -> list[tuple[int, int, int]]:
        """The code cells (channel, row, column) the pixel depends on, in reading order."""
        seen: dict[tuple[int, int, int], None] = {}
        for unit in self.hidden.values():
            for t in unit.terms:
                seen[_parse_cell(t.source)] = None
        return list(seen)


def _parse_cell(source: str) -> tuple[int, int, int]:
    a, b, c = source[source.index("[") + 1 : -1].split(",")
    return int(a), int(b), int(c)


def _weights(model: ConvAutoencoder, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    layer = getattr(model, name)
    return layer.weight.detach().double().cpu(), layer.bias.detach().double().cpu()


class _Layer(NamedTuple):
    """A decoder layer worked out by hand: its name, its input (named ``src`` in the
    sums), its float64 weights and bias, and the activation after it."""

    name: str
    inp: torch.Tensor
    src: str
    w: torch.Tensor
    b: torch.Tensor
    act: str


def _transpose_unit(layer: _Layer, ch: int, r: int, c: int) -> Unit:
    """Output (ch, r, c) of a kernel-2, stride-2 ConvTranspose2d: one input position
    (r // 2, c // 2), one kernel tap (r % 2, c % 2), every input channel."""
    _, inp, src, w, b, act = layer
    i, j, p, q = r // 2, c // 2, r % 2, c % 2
    terms = [
        Term(f"{src}[{k}, {i}, {j}]", float(inp[k, i, j]), float(w[k, ch, p, q]), ((p, q),))
        for k in range(inp.shape[0])
    ]
    return Unit(layer.name, ch, r, c, terms, float(b[ch]), act)


def _conv_after_upsample_unit(layer: _Layer, ch: int, r: int, c: int) -> Unit:
    """Output (ch, r, c) of a 3x3, padding-1 Conv2d applied to ``inp`` upsampled x2 by
    nearest neighbour. The 3x3 window at full size reads the upsampled value at (r+dy,
    c+dx), which is ``inp`` at ((r+dy) // 2, (c+dx) // 2): taps that read the same
    ``inp`` value are one term, with their weights summed. Taps off the image read the
    zero padding and are left out."""
    _, inp, src, w, b, act = layer
    size = inp.shape[-1] * 2
    groups: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            y, x = r + dy, c + dx
            if 0 <= y < size and 0 <= x < size:
                for k in range(inp.shape[0]):
                    groups.setdefault((k, y // 2, x // 2), []).append((dy + 1, dx + 1))
    terms = [
        Term(
            f"{src}[{k}, {i}, {j}]",
            float(inp[k, i, j]),
            math.fsum(float(w[ch, k, a, bb]) for a, bb in taps),
            tuple(taps),
        )
        for (k, i, j), taps in sorted(groups.items())
    ]
    return Unit(layer.name, ch, r, c, terms, float(b[ch]), act)


@torch.no_grad()
def pixel_arithmetic(
    model: ConvAutoencoder, code: torch.Tensor, pixel: tuple[int, int, int]
) -> PixelArithmetic:
    """The sums that make one output pixel, for either decoder, from the weights.

    Transpose decoder: the pixel (R, C) reads one t_conv1 position (R // 2, C // 2), all
    16 of its channels, through one tap of t_conv2's 2x2 kernel; each of those reads one
    code cell (R // 4, C // 4), all 4 channels, through one tap of t_conv1's kernel. So
    16 products + bias -> sigmoid, and each of the 16 hidden values is 4 products +
    bias -> ReLU.

    Upsample decoder: conv5's 3x3 window over the x2-upsampled conv4 output reads 1, 2
    or 4 different conv4 positions (x 16 channels); each conv4 value's 3x3 window over
    the upsampled code reads 4 or fewer code positions (x 4 channels).

    Computed in float64 from the model's weights; the rows add up to the model's own
    output (tests/test_cells.py checks both decoders against ``decode``).

    Args:
        model: an autoencoder (not modified).
        code: a code (4, h, w), e.g. :func:`encode_image` of an image.
        pixel: (row, column, colour channel) of the output pixel.

    Returns:
        A :class:`PixelArithmetic`.
    """
    cfg = model.config
    if len(pixel) != 3:
        raise ValueError(f"a pixel is (row, column, colour channel), got {pixel}")
    R, C, ch = (int(v) for v in pixel)
    if not (0 <= R < cfg.image_size and 0 <= C < cfg.image_size and 0 <= ch < cfg.in_channels):
        raise ValueError(
            f"pixel {pixel} is outside the {cfg.image_size}x{cfg.image_size} output with "
            f"{cfg.in_channels} colour channel(s): row and column 0-{cfg.image_size - 1}, "
            f"channel 0-{cfg.in_channels - 1}"
        )
    if cfg.decoder not in SEED_DECODERS:
        raise ValueError(
            f"one pixel by hand is worked out for the course's two decoders "
            f"({' and '.join(SEED_DECODERS)}), not for {cfg.decoder}"
        )
    z = _as_code(model, code)[0].double().cpu()
    F = torch.nn.functional
    if cfg.decoder == "transpose":
        w1, b1 = _weights(model, "t_conv1")
        w2, b2 = _weights(model, "t_conv2")
        hidden = torch.relu(F.conv_transpose2d(z[None], w1, b1, stride=2))[0]
        unit = _transpose_unit
        first = _Layer("t_conv1", z, "code", w1, b1, "relu")
        last = _Layer("t_conv2", hidden, "t_conv1", w2, b2, "sigmoid")
    else:
        w4, b4 = _weights(model, "conv4")
        w5, b5 = _weights(model, "conv5")
        up = F.interpolate(z[None], scale_factor=2, mode="nearest")
        hidden = torch.relu(F.conv2d(up, w4, b4, padding=1))[0]
        unit = _conv_after_upsample_unit
        first = _Layer("conv4", z, "code", w4, b4, "relu")
        last = _Layer("conv5", hidden, "conv4", w5, b5, "sigmoid")
    out = unit(last, ch, R, C)
    hidden_units = (unit(first, *_parse_cell(t.source)) for t in out.terms)
    units = {u.name: u for u in hidden_units}
    return PixelArithmetic(cfg.decoder, (R, C, ch), out, units)
