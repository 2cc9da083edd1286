"""A QR code for a join link, big enough to scan from the back of a room.

Drawn by segno (a maintained QR encoder, ISO/IEC 18004; no home-made QR code): error
correction level M (15 % of the code may be unreadable, e.g. a projector's glare), the
standard quiet zone of 4 modules, black on white. The PNG is made at about ``min_px``
pixels square, each module a whole number of pixels, so the browser enlarges it sharply
(``image-rendering: pixelated``) and a phone's camera reads clean edges.
"""

from __future__ import annotations

import math

import segno

QUIET_ZONE = 4  # modules of white around the code (the standard's minimum)


def qr_png_data_uri(text: str, min_px: int = 440) -> str:
    """A QR code of ``text`` as a ``data:image/png;base64,...`` URI.

    Args:
        text: what the code holds (a join link).
        min_px: the PNG's least width in pixels (each module a whole number of them).

    Returns:
        The data URI of a square PNG at least ``min_px`` wide.
    """
    code = segno.make(text, error="m")
    modules = code.symbol_size(scale=1, border=QUIET_ZONE)[0]
    scale = max(1, math.ceil(min_px / modules))
    return code.png_data_uri(scale=scale, border=QUIET_ZONE, dark="#000000", light="#ffffff")
