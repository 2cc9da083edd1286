"""The code as a compressed image: editing it, walking between codes, and its byte cost.

The encoder turns a 3x32x32 image (3,072 bytes as uint8) into a 4x8x8 code of 256
numbers. Stored as float32 that is 1,024 bytes, as float16 512, and quantised to
``b`` bits per value ``256 b / 8`` bytes plus two float32 (the code's min and max).
Against that stands JPEG at about the same byte count: the classical codec the
course compares with. Both byte counts leave out what is shared by every image (the
decoder's weights; JPEG's quantisation and Huffman tables), so ``jpeg_bytes`` reports
the file and its entropy-coded scan alone.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .metrics import mse, psnr_from_mse
from .models import ConvAutoencoder

RAW_BYTES_PER_VALUE = 1  # uint8 pixels
SCALE_BYTES = 8  # a quantised code also stores its min and max as float32
# The shared CIFAR-10 copy is itself JPEG quality 75. Re-encoding near 75 on the same
# 8x8 grid reproduces those very artifacts (double compression: 40-50 dB for few bytes),
# which flatters JPEG, so comparisons stop at quality 70.
MAX_QUALITY = 70


# ----------------------------------------------------------------- editing


def edit_code(
    z: torch.Tensor,
    channel: int | None = None,
    scale: float = 1.0,
    paint: tuple[int, int, int, int] | None = None,
    value: float = 0.0,
) -> torch.Tensor:
    """A copy of code ``z`` (4, h, w) or (1, 4, h, w) with one channel edited.

    Args:
        channel: which channel to edit (None: return an unchanged copy).
        scale: multiply the channel by this (0 zeroes it).
        paint: (top, left, height, width) cells of the channel set to ``value`` after
            scaling (None: no painting).
    """
    out = z.detach().clone()
    if channel is None:
        return out
    maps = out[0] if out.ndim == 4 else out
    if not 0 <= channel < maps.shape[0]:
        raise ValueError(f"channel must be 0..{maps.shape[0] - 1}, got {channel}")
    maps[channel] *= scale
    if paint is not None:
        top, left, h, w = paint
        maps[channel, top : top + h, left : left + w] = value
    return out


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` codes on the straight line from z0 to z1, both ends included exactly.

    Written as (1 - t) z0 + t z1 so t = 0 and t = 1 give z0 and z1 bit for bit.
    Returns (steps, *z0.shape without a leading 1).
    """
    if steps < 2:
        raise ValueError(f"interpolation needs at least 2 steps, got {steps}")
    a, b = z0.reshape(-1, *z0.shape[-3:])[0], z1.reshape(-1, *z1.shape[-3:])[0]
    if a.shape != b.shape:
        raise ValueError(f"codes differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device).reshape(-1, 1, 1, 1)
    return (1 - t) * a + t * b


# ------------------------------------------------------------ quantisation


def quantise(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Round each code (per image) to ``bits`` levels between its min and max, and back.

    Bits 16 and 32 mean float16 and float32 (no min/max). The round-trip error of a
    value is at most half a step, (max - min) / (2 (2^bits - 1)).
    """
    if bits == 32:
        return z.clone()
    if bits == 16:
        return z.half().float()
    if not 1 <= bits <= 15:
        raise ValueError(f"bits must be 1..15, 16 or 32, got {bits}")
    flat = z.reshape(z.shape[0], -1) if z.ndim == 4 else z.reshape(1, -1)
    lo = flat.min(1, keepdim=True).values
    hi = flat.max(1, keepdim=True).values
    levels = 2**bits - 1
    step = (hi - lo).clamp_min(1e-12) / levels
    q = ((flat - lo) / step).round().clamp(0, levels)
    return (lo + q * step).reshape(z.shape)


def code_bytes(n_values: int, bits: int) -> int:
    """Bytes to store ``n_values`` code values at ``bits`` each (plus min/max below 16)."""
    extra = 0 if bits in (16, 32) else SCALE_BYTES
    return -(-n_values * bits // 8) + extra


# -------------------------------------------------------------------- JPEG


@dataclass(frozen=True)
class Jpeg:
    quality: int
    file_bytes: int  # the whole .jpg
    scan_bytes: int  # the entropy-coded image data alone (no headers or tables)
    image: torch.Tensor  # decoded, (C, H, W) in [0, 1]


def _scan_bytes(data: bytes) -> int:
    """Bytes after the start-of-scan header up to the end-of-image marker."""
    sos = data.find(b"\xff\xda")
    if sos < 0:
        return len(data)
    header_len = int.from_bytes(data[sos + 2 : sos + 4], "big")
    return len(data) - (sos + 2 + header_len) - 2


def jpeg(x: torch.Tensor, quality: int) -> Jpeg:
    """Encode one image (C, H, W) in [0, 1] as JPEG (PIL, optimised Huffman tables)."""
    a = (x.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    im = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=int(quality), optimize=True)
    data = buf.getvalue()
    back = np.asarray(Image.open(io.BytesIO(data)).convert(im.mode), dtype=np.float32) / 255
    back_t = torch.from_numpy(back[None] if back.ndim == 2 else back.transpose(2, 0, 1))
    return Jpeg(int(quality), len(data), _scan_bytes(data), back_t.contiguous())


def jpeg_at_budget(
    x: torch.Tensor, budget: int, by: str = "scan", max_quality: int = MAX_QUALITY
) -> Jpeg:
    """The highest JPEG quality up to ``max_quality`` whose size (``by`` "scan" or
    "file") fits ``budget``.

    When even quality 1 is larger, quality 1 is returned (the caller shows its size).
    """
    lo, hi, best = 1, max_quality, None
    while lo <= hi:  # size grows with quality (near enough) -> binary search
        mid = (lo + hi) // 2
        j = jpeg(x, mid)
        size = j.scan_bytes if by == "scan" else j.file_bytes
        if size <= budget:
            best, lo = j, mid + 1
        else:
            hi = mid - 1
    return best or jpeg(x, 1)


# ----------------------------------------------------------- the ledger


@torch.no_grad()
def ledger(
    model: ConvAutoencoder, x: torch.Tensor, bits: Sequence[int] = (32, 16, 8)
) -> list[dict]:
    """Bytes and PSNR of one image (1, C, H, W) stored raw, as the code, and as JPEG.

    Rows: "raw", "code float32", "code float16", "code 8-bit" (as ``bits`` ask), then
    "JPEG" matched to the smallest code's byte count (scan bytes).
    """
    z = model.encode(x)
    rows = [
        {
            "form": "raw uint8 pixels",
            "bytes": x[0].numel() * RAW_BYTES_PER_VALUE,
            "psnr": float("inf"),
        }
    ]
    for b in bits:
        y = model.decode(quantise(z, b))
        name = {32: "float32", 16: "float16"}.get(b, f"{b}-bit")
        rows.append(
            {
                "form": f"code {name}",
                "bytes": code_bytes(z[0].numel(), b),
                "psnr": float(psnr_from_mse(mse(y, x)[0])),
            }
        )
    budget = min(r["bytes"] for r in rows[1:])
    j = jpeg_at_budget(x[0], budget)  # PIL encodes on the CPU; scored where x is
    rows.append(
        {
            "form": f"JPEG quality {j.quality} (scan; file {j.file_bytes} B)",
            "bytes": j.scan_bytes,
            "psnr": float(psnr_from_mse(mse(j.image[None].to(x.device), x)[0])),
        }
    )
    return rows


@torch.no_grad()
def rate_distortion(
    model: ConvAutoencoder,
    x: torch.Tensor,
    bits: Sequence[int] = (32, 16, 8, 6, 4, 3, 2),
    qualities: Sequence[int] = (1, 5, 10, 20, 30, 40, 50, 60, 70),
) -> dict:
    """Mean bytes per image and PSNR (of the mean MSE) over the images ``x``.

    Returns:
        {"code": [{"bits", "bytes", "psnr"}], "jpeg": [{"quality", "scan_bytes",
        "file_bytes", "psnr"}]}.
    """
    z = model.encode(x)
    code = []
    for b in bits:
        m = mse(model.decode(quantise(z, b)), x).mean()
        code.append(
            {"bits": b, "bytes": code_bytes(z[0].numel(), b), "psnr": float(psnr_from_mse(m))}
        )
    jp = []
    for q in qualities:
        js = [jpeg(img, q) for img in x]
        m = mse(torch.stack([j.image for j in js]).to(x.device), x).mean()
        jp.append(
            {
                "quality": q,
                "scan_bytes": float(np.mean([j.scan_bytes for j in js])),
                "file_bytes": float(np.mean([j.file_bytes for j in js])),
                "psnr": float(psnr_from_mse(m)),
            }
        )
    return {"code": code, "jpeg": jp}


@torch.no_grad()
def walk(
    model: ConvAutoencoder, xa: torch.Tensor, xb: torch.Tensor, frames: int
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """From picture ``xa`` to ``xb`` in ``frames`` steps, two ways: decoding the codes on
    the line between their codes, and a plain pixel cross-fade.

    Returns:
        (decoded frames, cross-faded frames, each frame's fraction of the way).
    """
    strip = model.decode(interpolate(model.encode(xa), model.encode(xb), frames))
    ts = torch.linspace(0, 1, frames)
    fade = (1 - ts).reshape(-1, 1, 1, 1) * xa + ts.reshape(-1, 1, 1, 1) * xb
    return strip, fade, ts.tolist()


@torch.no_grad()
def encode(model: ConvAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """The code of pictures (N, C, H, W) in [0, 1]; the model is not changed."""
    return model.encode(x)


@torch.no_grad()
def decode(model: ConvAutoencoder, z: torch.Tensor) -> torch.Tensor:
    """The pictures a code decodes to; the model is not changed."""
    return model.decode(z)
