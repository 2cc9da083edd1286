"""Rows of small pictures as one HTML block: crisp, scalable, described, and cheap to send.

A page shows many 32x32 pictures. Each is sent once as a tiny PNG in a data URI (about
1-3 kB, no extra HTTP request per picture, no server-side enlargement) and enlarged by
the browser with ``image-rendering: pixelated``, so the pixels stay sharp at any size.
The rows are a CSS grid whose columns share the page width: the pictures grow with the
window and the projector, never overflow it. Every picture has a text alternative for
screen readers (WCAG 1.1.1), and captions are real text that wraps between words only.

The matching CSS (classes ``cae-rows``, ``cae-row``, ``cae-pic``, ...) is the app's
(pages/glue/css.py): it decides how wide pictures are, so one block of HTML suits a
laptop, a projector and a phone.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


def png_bytes(img: np.ndarray) -> bytes:
    """A uint8 picture (H, W) or (H, W, 3) as PNG bytes, at its own size."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_uri(img: np.ndarray) -> str:
    """A picture as a ``data:image/png;base64,...`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode("ascii")


@dataclass
class PictureRow:
    """One row of pictures.

    Attributes:
        label: shown left of the row ("" for none), e.g. "A: cifar10-transpose".
        pictures: uint8 pictures (H, W) or (H, W, 3), any size (drawn pixelated).
        captions: short text under each picture (or None), e.g. "22.4 dB".
        alts: a text alternative for each picture: what it shows, in words a screen
            reader user can follow ("test airplane #0, rebuilt by cifar10-upsample,
            23.6 dB"); defaults to the label with the caption.
        marked: indices of pictures to outline (e.g. the one shown in a close-up).
    """

    label: str
    pictures: Sequence[np.ndarray]
    captions: Sequence[str] | None = None
    alts: Sequence[str] | None = None
    marked: Sequence[int] = field(default_factory=tuple)

    def alt(self, i: int) -> str:
        if self.alts is not None:
            return self.alts[i]
        cap = self.captions[i] if self.captions else ""
        return ", ".join(t for t in (self.label, cap) if t) or "picture"


def picture_rows_html(
    rows: Sequence[PictureRow],
    columns: int | None = None,
    label_width: str = "9rem",
    max_px: int | None = None,
    title: str = "",
) -> str:
    """Rows of pictures as one HTML block (styled by the app's CSS, pages/glue/css.py).

    Args:
        rows: the rows, top to bottom.
        columns: pictures per line (default: the longest row); a shorter row leaves its
            last columns empty, so pictures line up between rows, and a longer one wraps.
        label_width: width of the label column ("0" when no row has a label).
        max_px: largest width of one picture in CSS pixels (None: as wide as its column).
        title: an accessible name for the whole block (aria-label).
    """
    n = columns or max((len(r.pictures) for r in rows), default=1)
    has_labels = any(r.label for r in rows)
    style = f"--cae-n: {max(n, 1)}; --cae-label: {label_width};"
    if max_px:
        style += f" --cae-max: {int(max_px)}px;"
    cls = "cae-rows cae-labelled" if has_labels else "cae-rows"
    parts = [
        f'<div class="{cls}" role="group" style="{style}"'
        + (f' aria-label="{html.escape(title)}"' if title else "")
        + ">"
    ]
    for row in rows:
        parts.append('<div class="cae-row">')
        if has_labels:
            parts.append(f'<div class="cae-row-label">{html.escape(row.label)}</div>')
        for i, pic in enumerate(row.pictures):
            cap = row.captions[i] if row.captions and i < len(row.captions) else ""
            cls = "cae-pic cae-marked" if i in row.marked else "cae-pic"
            parts.append(
                f'<figure class="{cls}"><img src="{data_uri(pic)}" '
                f'alt="{html.escape(row.alt(i))}">'
                + (f"<figcaption>{html.escape(cap)}</figcaption>" if cap else "")
                + "</figure>"
            )
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


@dataclass
class OptionCard:
    """One answer option of a class question: its letter and picture.

    Attributes:
        letter: "A", "B", ... (what the student taps).
        picture: a uint8 picture (H, W) or (H, W, 3), shown at true size and enlarged.
        alt: its text alternative, e.g. "picture A" (never what the option is before the
            reveal: a screen reader must not give the answer away).
        caption: text under it ("" before the reveal; after it, what the option was).
    """

    letter: str
    picture: np.ndarray
    alt: str
    caption: str = ""


def option_cards_html(cards: Sequence[OptionCard], title: str = "") -> str:
    """Answer options as cards: each picture at its true pixel size (one screen pixel per
    picture pixel) and enlarged by the browser with nearest neighbour (the app's CSS:
    ``cae-cards``), the option's letter above, an optional caption under.

    Args:
        cards: the options, in order.
        title: an accessible name for the group.
    """
    parts = [
        f'<div class="cae-cards" role="group" style="--cae-n: {max(len(cards), 1)};"'
        + (f' aria-label="{html.escape(title)}"' if title else "")
        + ">"
    ]
    for c in cards:
        uri = data_uri(c.picture)
        h, w = c.picture.shape[:2]
        alt = html.escape(c.alt)
        parts.append(
            '<figure class="cae-card">'
            f'<p class="cae-card-letter">{html.escape(c.letter)}</p>'
            f'<img class="cae-card-big" src="{uri}" alt="{alt}, enlarged">'
            f'<span class="cae-card-true"><img src="{uri}" width="{w}" height="{h}" '
            f'alt="{alt} at its true size, {w} by {h} pixels"> true size</span>'
            + (f"<figcaption>{html.escape(c.caption)}</figcaption>" if c.caption else "")
            + "</figure>"
        )
    parts.append("</div>")
    return "".join(parts)
