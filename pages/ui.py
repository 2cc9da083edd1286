"""How pages draw things (not a page): picture rows, charts, the takeaway line, details,
presentation mode, and the app's CSS.

Every page shows its pictures through :func:`pictures` (one HTML block: crisp, growing
with the window, each picture with a text alternative) and its charts through
:func:`chart` (scaled for a projector in presentation mode, with a title and a text
summary). Presentation mode (sidebar toggle or ``?present=1``) makes text, pictures and
chart labels large and hides the advanced parts that :func:`details` wraps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import plotly.graph_objects as go
import streamlit as st
import torch

from convae.figures import display_scale, rows_png, to_uint8, upscale
from convae.figures.html import PICTURE_CSS, PictureRow, picture_rows_html
from pages.links import PRESENT_KEY

# Plotly charts keep one toolbar button: save the figure as PNG. The browser draws it
# (plotly.js toImage), so no kaleido / server-side renderer is needed.
PNG_EXPORT = {
    "displaylogo": False,
    "modeBarButtons": [["toImage"]],
    "toImageButtonOptions": {"format": "png", "scale": 3},
}

# Text colours chosen for WCAG AA contrast on white (>= 4.5:1): Streamlit draws captions
# at 60% opacity, which makes them #93959d on white, 3.0:1 (axe, color-contrast).
BASE_CSS = """
[data-testid="stMainBlockContainer"] {padding-top: 2.5rem;}
.stApp [data-testid="stCaptionContainer"], .stApp [data-testid="stCaptionContainer"] p,
.stApp [data-testid="stWidgetLabel"] p, .stApp [data-testid="stImageCaption"]
  {color: #4b4f5c; opacity: 1;}
.stApp .cae-nav-group p {font-weight: 600; color: #31333f; margin: 0.6rem 0 0 0;}
.cae-takeaway {font-size: 1.15rem; line-height: 1.45; margin: 0 0 0.5rem 0;
               color: #1f2330;}
.cae-note {font-size: 0.9rem; color: #4b4f5c; margin: 0.1rem 0 0.4rem 0;}
.cae-legend {display: flex; flex-wrap: wrap; gap: 0.3rem 1.2rem; font-size: 0.9rem;
             color: #31333f; margin: 0.2rem 0 0.4rem 0;}
.cae-swatch {display: inline-block; width: 4.5rem; height: 0.8rem; vertical-align: middle;
             margin-right: 0.35rem; border: 1px solid #8a8d99;}
"""

# Presentation mode: everything measured in rem grows with the root font size (Streamlit
# sizes text, widgets and spacing in rem), so one rule scales the page for a projector;
# body text is then 22 px, and captions, labels and notes 20 px.
PRESENT_CSS = """
html {font-size: 22px;}
[data-testid="stMainBlockContainer"] {max-width: 100%; padding-left: 2.5rem;
                                      padding-right: 2.5rem;}
.cae-takeaway {font-size: 1.3rem;}
/* Row labels go above their row, so the pictures get the whole width. */
.cae-rows.cae-labelled .cae-row {grid-template-columns: repeat(var(--cae-n), minmax(0, 1fr));}
.cae-rows.cae-labelled .cae-row-label {grid-column: 1 / -1; margin-top: 0.3rem;}
/* Small print is still 20 px on a projector: captions, labels, notes, legends. */
.cae-pic figcaption, .cae-note, .cae-legend,
.stApp [data-testid="stMain"] [data-testid="stCaptionContainer"],
.stApp [data-testid="stMain"] [data-testid="stCaptionContainer"] p,
.stApp [data-testid="stMain"] [data-testid="stWidgetLabel"] p,
.stApp [data-testid="stMain"] [data-testid="stMetricLabel"] p {font-size: 0.92rem;}
/* Any other text that Streamlit draws smaller (0.875rem = 19.25 px: notices, help text)
   comes up to the same 20 px; larger text keeps its size. */
.stApp [data-testid="stMain"] :is(p, li):not(.cae-takeaway) {
  font-size: max(0.92rem, 1em);}
/* The projected part is the page, not the sidebar: keep the sidebar at its usual size, so
   it does not grow past the screen and scroll (axe: scrollable-region-focusable). */
[data-testid="stSidebarContent"] {zoom: 0.66;}
"""

CHART_FONT_SCALE = 1.6  # chart text in presentation mode (10-12 px labels -> 16-19 px)


def presenting() -> bool:
    """True in presentation mode."""
    return bool(st.session_state.get(PRESENT_KEY))


class _Html(str):
    """HTML that st.html takes as is: an object with ``_repr_html_`` skips Streamlit's
    ``textwrap.dedent`` of the body, which on a Layers step's 30-60 kB of maps cost about
    8 % of the server's CPU for the click (py-spy, 2026-11-26)."""

    def _repr_html_(self) -> str:
        return str(self)


def html(body: str, where=None) -> None:
    """``st.html(body)`` (or ``where.html``) for HTML this app built, without the dedent."""
    (where or st).html(_Html(body))


def inject_css() -> None:
    """The app's styles for this run (called once by app.py before the page)."""
    css = BASE_CSS + PICTURE_CSS + (PRESENT_CSS if presenting() else "")
    html(f"<style>{css}</style>")


def takeaway(text: str) -> None:
    """The page's one plain sentence, right under its title (HTML-escaped by the caller
    where it holds data; it may contain <b> for emphasis)."""
    html(f'<p class="cae-takeaway">{text}</p>')


def note(text: str) -> None:
    html(f'<p class="cae-note">{text}</p>')


def pictures(
    rows: Sequence[PictureRow],
    columns: int | None = None,
    max_px: int | None = None,
    title: str = "",
    label_width: str = "9rem",
) -> None:
    """Rows of pictures that share the width (see :mod:`convae.figures.html`)."""
    if presenting() and max_px:
        max_px = int(max_px * 1.6)
    html(
        picture_rows_html(
            rows, columns=columns, max_px=max_px, title=title, label_width=label_width
        )
    )


def download_png(
    rows: Sequence[PictureRow],
    file_name: str,
    key: str,
    label: str = "Download these pictures (PNG)",
) -> None:
    """A button that saves picture rows as one PNG; drawn only when clicked, and the click
    does not rerun the page."""
    if presenting():
        return

    def build() -> bytes:
        # The page's pictures are tiny and enlarged by the browser; the file enlarges
        # them itself (nearest neighbour, about 96 px) so it reads on its own.
        def big(p):
            return upscale(p, display_scale(p.shape[1], 96))

        return rows_png([(r.label, [big(p) for p in r.pictures], r.captions) for r in rows])

    st.download_button(
        label, build, file_name=file_name, mime="image/png", key=key, on_click="ignore"
    )


def row(
    label: str,
    x: torch.Tensor,
    captions: Sequence[str] | None = None,
    alts: Sequence[str] | None = None,
    marked: Sequence[int] = (),
) -> PictureRow:
    """A picture row from a batch of images (N, C, H, W) in [0, 1]."""
    return PictureRow(label, [to_uint8(img) for img in x], captions, alts, marked)


def scale_fonts(fig: go.Figure, factor: float) -> go.Figure:
    """Every font size in a plotly figure times ``factor`` (presentation mode)."""
    base = fig.layout.font.size or 12
    fig.update_layout(font_size=round(base * factor))
    for ann in fig.layout.annotations or ():
        if ann.font and ann.font.size:
            ann.font.size = round(ann.font.size * factor)
    if fig.layout.title and fig.layout.title.font and fig.layout.title.font.size:
        fig.layout.title.font.size = round(fig.layout.title.font.size * factor)
    if fig.layout.height:
        fig.layout.height = round(fig.layout.height * (1 + (factor - 1) / 2))
    return fig


def chart(fig: go.Figure, key: str, summary: str = "") -> None:
    """A plotly chart with its PNG button, scaled in presentation mode, and a one-line
    text summary under it (what the chart shows, readable without seeing it)."""
    if presenting():
        fig = scale_fonts(go.Figure(fig), CHART_FONT_SCALE)
    st.plotly_chart(fig, key=key, config=PNG_EXPORT)
    if summary:
        st.caption(summary)


def details(label: str, body: Callable[[], None], expanded: bool = False) -> None:
    """Advanced tables, charts and controls: in an expander, and left out entirely in
    presentation mode."""
    if presenting():
        return
    with st.expander(label, expanded=expanded):
        body()
