"""Turning a user's photo into a model input: decode, centre-crop, resize.

Kept apart from data.py because an upload is one untrusted file of any size and kind,
not a data set: it must fail with a clear message, never with a PIL traceback.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

# A phone photo is ~12 Mpx; anything far beyond that is a decompression bomb, not a photo.
MAX_PIXELS = 50_000_000


class ImageDecodeError(ValueError):
    """An upload that is not a readable image; the message is meant for the user."""


def centre_crop_square(im: Image.Image) -> Image.Image:
    """The largest centred square of ``im`` (the models take square images)."""
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
)


def _sniff(data: bytes) -> str | None:
    """The image format the first bytes announce, even when the rest is missing."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for magic, fmt in _SIGNATURES if data.startswith(magic)), None)


def image_to_input(data: bytes, channels: int, size: int, name: str = "the upload") -> torch.Tensor:
    """Decode image bytes into a (1, C, size, size) float tensor in [0, 1].

    The photo is centre-cropped to a square, then shrunk with a box/area filter (it
    averages all source pixels, so a large photo does not alias the way nearest or
    bilinear sampling would), and converted to RGB or greyscale as the model needs.

    Raises:
        ImageDecodeError: empty, not an image, truncated, or absurdly large.
    """
    if not data:
        raise ImageDecodeError(f"{name} is empty (0 bytes). Choose a JPEG or PNG photo.")
    fmt = None  # the format named by the file's header, once PIL has recognised it
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            if im.size[0] * im.size[1] > MAX_PIXELS:
                raise ImageDecodeError(
                    f"{name} is {im.size[0]}x{im.size[1]} pixels, too large to open "
                    "safely. Use a photo under 50 megapixels."
                )
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                # 16-bit / 32-bit greyscale: PIL's convert("L") clips at 255 (a white
                # square); scale the real range of the format down to 8 bits instead.
                values = np.asarray(im, dtype=np.float64)
                if im.mode == "F":  # floats: no fixed range, stretch to the image's own
                    top = max(float(values.max()), 1e-12)
                else:
                    top = 65535.0 if im.mode.startswith("I;16") or values.max() > 255 else 255.0
                grey = np.clip(values / top * 255, 0, 255)
                im = Image.fromarray(grey.round().astype(np.uint8), "L")
            # Transparent PNGs: composite on white so transparent areas are not black.
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            im = im.convert("RGB" if channels == 3 else "L")
            im = centre_crop_square(im).resize((size, size), Image.Resampling.BOX)
            arr = np.asarray(im, dtype=np.uint8)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError:  # PIL's own limit, hit while opening
        raise ImageDecodeError(
            f"{name} has too many pixels to open safely (a decompression bomb or a huge "
            "scan). Use a photo under 50 megapixels."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        fmt = fmt or _sniff(data)
        if fmt is not None:  # a real header, then the picture data broke off or is damaged
            raise ImageDecodeError(
                f"{name} starts as a {fmt} image but its picture data is cut short or "
                f"damaged ({len(data):,} bytes; an interrupted download or copy?). "
                "Save or download it again, or choose another photo."
            ) from None
        raise ImageDecodeError(
            f"{name} is not an image: its bytes are not a JPEG, PNG, GIF, BMP or WebP "
            "picture. Choose a photo in one of those formats."
        ) from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy()).float().div_(255)[None]
