"""How pages draw things: picture rows, rows of reconstructions, charts, tables, the
takeaway line, notes, details and downloads, in the normal look and in presentation mode.

Every picture goes through :func:`pictures` (or :func:`picture_html` for HTML a page
caches): one HTML block per group of rows, each picture crisp, growing with the window,
wrapping on a phone and enlarged on a projector by the app's CSS (pages/glue/css.py), and
each with a text alternative. A row of reconstructions with "x dB" under each picture is
built once, by :func:`recon_row`. Charts go through :func:`chart` (scaled for a projector,
with a one-line text summary) and tables through :func:`table`. A part of a page that
reruns alone is made by :func:`fragment`, never by ``st.fragment`` directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import plotly.graph_objects as go
import streamlit as st
import torch

from convae.figures import display_scale, rows_png, to_uint8, upscale
from convae.figures.html import PictureRow, picture_rows_html
from convae.recon import Reconstruction
from pages.glue import css
from pages.glue.links import PRESENT_KEY

__all__ = ["PictureRow"]

# Plotly charts keep one toolbar button: save the figure as PNG. The browser draws it
# (plotly.js toImage), so no kaleido / server-side renderer is needed.
PNG_EXPORT = {
    "displaylogo": False,
    "modeBarButtons": [["toImage"]],
    "toImageButtonOptions": {"format": "png", "scale": 3},
}
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


def fragment(func: Callable | None = None, /, **options):
    """``st.fragment(func, **options)`` (as a decorator too), drawn in a container of its
    own, so that nothing after it can be lost to a rerun of it.

    Why (Streamlit 1.67, found in issue 21; tests/e2e/test_fragment_crossing.py shows it):
    when a fragment's rerun was asked for while a full run was going (its timer, or a click
    in it), Streamlit starts that rerun the moment the full run ends and drops the full
    run's not yet sent messages for the fragment, but still tells the browser the full run
    finished. The browser then takes the fragment's block, last drawn by an older run, for
    stale and removes it; the elements after it move up one place, and the fragment's
    rerun, which writes to its old place, draws over the next one (the Class page lost
    its Reveal / Export row under the live tally this way). In a container of its own the
    fragment is that container's only child: a removal there moves nothing else.
    """
    if func is None:
        return functools.partial(fragment, **options)
    part = st.fragment(func, **options)

    @functools.wraps(func)
    def in_own_container(*args, **kwargs):
        with st.container():
            return part(*args, **kwargs)

    return in_own_container


def html(body: str, where=None) -> None:
    """``st.html(body)`` (or ``where.html``) for HTML this app built, without the dedent."""
    (where or st).html(_Html(body))


def inject_css() -> None:
    """The app's styles for this run (app.py calls it once, before the page)."""
    html(f"<style>{css.stylesheet(presenting())}</style>")


def takeaway(text: str) -> None:
    """The page's one plain sentence, right under its title (HTML-escaped by the caller
    where it holds data; it may contain <b> for emphasis)."""
    html(f'<p class="cae-takeaway">{text}</p>')


def note(text: str) -> None:
    html(f'<p class="cae-note">{text}</p>')


# ------------------------------------------------------------------ pictures


def row(
    label: str,
    x: torch.Tensor,
    captions: Sequence[str] | None = None,
    alts: Sequence[str] | None = None,
    marked: Sequence[int] = (),
) -> PictureRow:
    """A picture row from a batch of images (N, C, H, W) in [0, 1]."""
    return PictureRow(label, [to_uint8(img) for img in x], captions, alts, marked)


def joined(*rows: PictureRow, label: str = "") -> PictureRow:
    """Several rows' pictures as one row (e.g. an input next to its reconstruction)."""
    out = PictureRow(label, [], [], [])
    for r in rows:
        out.pictures += list(r.pictures)
        out.captions += [r.captions[i] if r.captions else "" for i in range(len(r.pictures))]
        out.alts += [r.alt(i) for i in range(len(r.pictures))]
    return out


def picture_names(split: str, indices: Sequence[int], classes: Sequence[str]) -> list[str]:
    """How a reconstruction's alt text names its picture: "test picture 3 (cat)"."""
    return [f"{split} picture {i} ({c})" for i, c in zip(indices, classes, strict=True)]


def input_alts(split: str, indices: Sequence[int], classes: Sequence[str]) -> list[str]:
    """How a picture's own alt text reads: "test picture 3: cat"."""
    return [f"{split} picture {i}: {c}" for i, c in zip(indices, classes, strict=True)]


def input_row(
    label: str,
    x: torch.Tensor,
    classes: Sequence[str],
    alts: Sequence[str],
    marked: Sequence[int] = (),
) -> PictureRow:
    """The pictures themselves, their class under each (``alts``: :func:`input_alts`)."""
    return row(label, x, list(classes), list(alts), marked)


def recon_row(
    label: str,
    rec: Reconstruction,
    names: Sequence[str],
    by: str | None = None,
    verb: str = "rebuilt by",
) -> PictureRow:
    """What a model (or a noisy input, a baseline) made of the pictures ``names``: its PSNR
    under each, and an alt text "<name> rebuilt by <by>, 23.5 dB".

    Args:
        label: the row's label, e.g. the model's name, "A: cifar10-transpose".
        rec: the outputs and their PSNR (convae.recon).
        names: one description per picture (see :func:`picture_names`).
        by: who made them, for the alt text (default: the label).
        verb: how the alt text links the picture to ``by`` ("as" for a damaged input).
    """
    values = rec.psnr.tolist()
    alts = [f"{n} {verb} {by or label}, {v:.1f} dB" for n, v in zip(names, values, strict=True)]
    return row(label, rec.images, [f"{v:.1f} dB" for v in values], alts)


def recon_rows(
    x: torch.Tensor,
    split: str,
    indices: Sequence[int],
    classes: Sequence[str],
    recons: Sequence[tuple[str, Reconstruction]],
    original: str = "original",
) -> list[PictureRow]:
    """Pictures of a split on top, then one row per (label, reconstruction) of them."""
    names = picture_names(split, indices, classes)
    top = input_row(original, x, classes, input_alts(split, indices, classes))
    return [top] + [recon_row(label, rec, names) for label, rec in recons]


def picture_html(
    rows: Sequence[PictureRow],
    columns: int | None = None,
    max_px: int | None = None,
    title: str = "",
    label_width: str = "9rem",
) -> str:
    """Picture rows as HTML, for a page that caches it (draw it with :func:`html`). How
    wide pictures are is the CSS's business, so cached HTML suits every look."""
    return picture_rows_html(
        rows, columns=columns, max_px=max_px, title=title, label_width=label_width
    )


def pictures(
    rows: Sequence[PictureRow],
    columns: int | None = None,
    max_px: int | None = None,
    title: str = "",
    label_width: str = "9rem",
    where=None,
) -> None:
    """Rows of pictures that share the width (presentation mode makes a ``max_px`` 1.6
    times larger; a narrow screen wraps the rows instead of shrinking the pictures)."""
    html(picture_html(rows, columns, max_px, title, label_width), where)


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


# ------------------------------------------------------------ charts, tables


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


def chart(fig: go.Figure, key: str, summary: str = "", buttons: Sequence[str] = (), **kwargs):
    """A plotly chart with its PNG button, scaled in presentation mode, and a one-line
    text summary under it (what the chart shows, readable without seeing it). ``buttons``:
    plotly toolbar buttons to offer before the PNG one (a map's "lasso2d", "pan2d", ...).
    Extra arguments go to ``st.plotly_chart`` (e.g. ``on_select``, ``alt``); its return
    value is returned."""
    if presenting():
        fig = scale_fonts(go.Figure(fig), CHART_FONT_SCALE)
    config = {**PNG_EXPORT, "modeBarButtons": [[*buttons, "toImage"]]} if buttons else PNG_EXPORT
    event = st.plotly_chart(fig, key=key, config=config, **kwargs)
    if summary:
        st.caption(summary)
    return event


def table(
    rows: Sequence[Mapping],
    formats: Mapping[str, str] | None = None,
    key: str | None = None,
    **kwargs,
) -> None:
    """``st.dataframe`` of ``rows`` without its index, numbers formatted by column.

    Args:
        rows: one mapping per table row.
        formats: column name, or the start of column names, -> printf format
            ("%.2f"); the longest matching start wins.
        key: the widget key.
        **kwargs: more ``st.dataframe`` arguments (column_order, extra column_config).
    """
    config = dict(kwargs.pop("column_config", {}))
    if rows and formats:
        for col in rows[0]:
            match = max((p for p in formats if col.startswith(p)), key=len, default=None)
            if match is not None and col not in config:
                config[col] = st.column_config.NumberColumn(format=formats[match])
    st.dataframe(list(rows), hide_index=True, key=key, column_config=config, **kwargs)


def details(label: str, body: Callable[[], None], expanded: bool = False) -> None:
    """Advanced tables, charts and controls: in an expander, and left out entirely in
    presentation mode."""
    if presenting():
        return
    with st.expander(label, expanded=expanded):
        body()


def open_tab(
    parts: Mapping[str, tuple[str, Callable[[object], None]]],
    key: str,
    pick_key: str,
    open_key: str,
    view: object,
) -> None:
    """Tabs that draw only the open one (Compare's tabs, Code space's parts).

    Only the open tab's body runs: a closed tab costs nothing, and the tab's id is kept in
    ``st.session_state[open_key]`` for a shared link and a live class.

    Args:
        parts: id -> (tab title, body), in tab order; ``body(view)`` draws the tab.
        key: the tabs widget's key (its value is the open tab's title).
        pick_key: where a link or a lesson step leaves the id of the tab to open
            (pages/glue/links.py); taken once.
        open_key: where the open tab's id is kept.
        view: what every body is given (the page's chosen models, pictures, ...).
    """
    pick = st.session_state.pop(pick_key, None)
    if pick in parts:
        st.session_state[key] = parts[pick][0]
    tabs = st.tabs([title for title, _ in parts.values()], key=key, on_change="rerun")
    for (part, (_, body)), tab in zip(parts.items(), tabs, strict=True):
        if tab.open:
            st.session_state[open_key] = part
            with tab:
                body(view)
