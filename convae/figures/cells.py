"""Figures for the code-cell footprint, a code cell's receptive field and one pixel's sums.

Plain plotly, no Streamlit, like the rest of :mod:`convae.figures`; the numbers come from
:mod:`convae.cells`. Pixel rows and columns are drawn as in an image (row 0 at the
top), and boxes are outlined on pixel edges, so "the 4x4 block of code cell (3, 5)"
lines up with the pixels it covers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..cells import Box, Footprint, PixelArithmetic, ReceptiveField
from ..metrics import GREY_LEVELS
from . import DIVERGING, RUN_COLOURS, SEQUENTIAL, plotly_scale, to_uint8

CELL_COLOUR = "#222222"  # outline of the code cell's own 4x4 block
FIELD_COLOUR = "#2ca02c"  # outline of the box the cell can reach


def _box_shape(box: Box, colour: str, dash: str | None, xref: str, yref: str) -> dict:
    top, left, bottom, right = box
    return dict(
        type="rect",
        x0=left - 0.5,
        x1=right - 0.5,
        y0=top - 0.5,
        y1=bottom - 0.5,
        line=dict(color=colour, width=2, dash=dash),
        xref=xref,
        yref=yref,
    )


def code_cells_figure(
    code: torch.Tensor, selected: tuple[int, int, int] | None = None, height: int = 240
) -> go.Figure:
    """An image's code (4, h, w) as four small grids of squares, one per channel, to click.

    One scatter trace of square markers (not a heatmap) so that Streamlit's
    ``st.plotly_chart(on_select="rerun", selection_mode="points")`` reports the clicked
    cell: each point's ``customdata`` is [channel, row, column, value].

    Args:
        code: (4, h, w) code values (>= 0, after the ReLU).
        selected: (channel, row, column) to outline, or None.
    """
    z = code.detach().float().cpu()
    if z.dim() != 3:
        raise ValueError(f"a code is (channels, rows, columns), got shape {tuple(z.shape)}")
    c, h, w = z.shape
    ch, r, col = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    values = z.numpy()
    x = (ch * (w + 1) + col).ravel()  # one empty column between channels
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=r.ravel(),
            mode="markers",
            marker=dict(
                symbol="square",
                size=max(8, min(22, int(height / (h + 2)))),
                color=values.ravel(),
                colorscale=SEQUENTIAL,
                cmin=0,
                cmax=max(float(values.max()), 1e-6),
                colorbar=dict(title=dict(text="value", side="right"), thickness=10),
            ),
            customdata=np.stack([ch.ravel(), r.ravel(), col.ravel(), values.ravel()], axis=1),
            hovertemplate="channel %{customdata[0]}, row %{customdata[1]}, column "
            "%{customdata[2]}<br>value %{customdata[3]:.3f}<extra></extra>",
            showlegend=False,
        )
    )
    if selected is not None:
        sc, sr, scol = selected
        fig.add_trace(
            go.Scatter(
                x=[sc * (w + 1) + scol],
                y=[sr],
                mode="markers",
                marker=dict(
                    symbol="square-open", size=max(12, int(height / (h + 2)) + 6), color="#d62728"
                ),
                hoverinfo="skip",
                showlegend=False,
            )
        )
    for k in range(c):
        fig.add_annotation(
            x=k * (w + 1) + (w - 1) / 2, y=-1.2, text=f"channel {k}", showarrow=False
        )
    fig.update_xaxes(visible=False, range=[-1, c * (w + 1) - 1])
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        clickmode="event+select",
        dragmode=False,
    )
    return fig


def footprint_figure(footprints: Mapping[str, Footprint], height: int = 360) -> go.Figure:
    """Each decoder's footprint of the same code cell side by side, on one colour scale.

    Each heatmap is the change of the output, averaged over the colour channels, in grey
    levels (hover shows each colour's change), on a shared diverging scale centred on 0.
    The cell's own 4x4 block is outlined in black, the pixels the decoder can reach
    from it (:func:`convae.cells.decoder_field_box`) in dashed green.

    Args:
        footprints: label -> :class:`convae.cells.Footprint`, e.g. {"transpose": ...,
            "upsample": ...} for the same code cell and nudge.
    """
    names = list(footprints)
    diffs = {n: footprints[n].difference.float() * GREY_LEVELS for n in names}
    vmax = max(max(float(d.abs().max()) for d in diffs.values()), 1e-6)
    fig = make_subplots(
        rows=1,
        cols=len(names),
        subplot_titles=[
            f"{n}: cell {footprints[n].cell}, +{footprints[n].delta:g}"[:48] for n in names
        ],
        horizontal_spacing=0.05,
    )
    for i, name in enumerate(names, start=1):
        d = diffs[name]
        fp = footprints[name]
        fig.add_trace(
            go.Heatmap(
                z=d.mean(0).numpy(),
                customdata=d.permute(1, 2, 0).numpy(),
                coloraxis="coloraxis",
                name=name,
                hovertemplate="row %{y}, col %{x}<br>change %{z:.2f} grey levels"
                + (
                    "<br>R %{customdata[0]:.2f}, G %{customdata[1]:.2f}, B %{customdata[2]:.2f}"
                    if d.shape[0] == 3
                    else ""
                )
                + f"<extra>{name}</extra>",
            ),
            row=1,
            col=i,
        )
        _, r, c = fp.cell
        k = 4  # output pixels per code cell along each side: two 2x2 pools
        suffix = "" if i == 1 else str(i)
        fig.add_shape(
            _box_shape(
                (r * k, c * k, r * k + k, c * k + k), CELL_COLOUR, None, f"x{suffix}", f"y{suffix}"
            )
        )
        fig.add_shape(_box_shape(fp.box, FIELD_COLOUR, "dash", f"x{suffix}", f"y{suffix}"))
        fig.update_yaxes(
            autorange="reversed", scaleanchor=f"x{suffix}", visible=False, row=1, col=i
        )
        fig.update_xaxes(visible=False, constrain="domain", row=1, col=i)
    fig.update_layout(
        coloraxis=dict(
            colorscale=plotly_scale(DIVERGING),
            cmin=-vmax,
            cmax=vmax,
            colorbar=dict(title=dict(text="grey levels", side="right"), thickness=12),
        ),
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return fig


def receptive_field_figure(
    image: torch.Tensor, field: ReceptiveField, height: int = 340
) -> go.Figure:
    """The input image and the code cell's gradient over it, the 10x10 window outlined.

    Left: the image. Right: ``|d code / d pixel|`` summed over the colour channels, so a
    student sees which input pixels the code value depends on (zero where a max-pool did
    not pick the pixel, and everywhere when the value is 0: its ReLU is off).

    Args:
        image: (C, H, W) float in [0, 1] or uint8, the image the code came from.
        field: :func:`convae.cells.receptive_field` of that image.
    """
    x = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    picture = to_uint8(x)
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=2)
    g = field.gradient.abs().sum(0).numpy()
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("input", f"|gradient| of code cell {field.cell} (value {field.value:.3f})"),
        horizontal_spacing=0.06,
    )
    fig.add_trace(go.Image(z=picture, hovertemplate="row %{y}, col %{x}<extra></extra>"), 1, 1)
    fig.add_trace(
        go.Heatmap(
            z=g,
            colorscale=SEQUENTIAL,
            zmin=0,
            colorbar=dict(title=dict(text="|gradient|", side="right"), thickness=12),
            hovertemplate="row %{y}, col %{x}: %{z:.4f}<extra></extra>",
        ),
        1,
        2,
    )
    for i, suffix in ((1, ""), (2, "2")):
        fig.add_shape(_box_shape(field.box, FIELD_COLOUR, "dash", f"x{suffix}", f"y{suffix}"))
        fig.update_xaxes(visible=False, constrain="domain", row=1, col=i)
        fig.update_yaxes(visible=False, scaleanchor=f"x{suffix}", row=1, col=i)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def pixel_waterfall(arith: PixelArithmetic, top: int = 16, height: int = 380) -> go.Figure:
    """The output pixel's sum as a waterfall: each product, the bias, then the total.

    The ``top`` largest products by size are drawn one by one (for the transpose
    decoder that is all 16), the rest as one "other" bar; the last bar is the sum
    before the sigmoid, and the title gives the sigmoid and the pixel in grey levels.

    Args:
        arith: :func:`convae.cells.pixel_arithmetic` of one pixel.
        top: how many products to show on their own.
    """
    terms = sorted(arith.output.terms, key=lambda t: -abs(t.product))
    shown, rest = terms[:top], terms[top:]
    labels = [t.source for t in shown]
    values = [t.product for t in shown]
    text = [f"{t.value:.3f} x {t.weight:+.3f}" for t in shown]
    if rest:
        labels.append(f"{len(rest)} other inputs")
        values.append(sum(t.product for t in rest))
        text.append("")
    labels += ["bias", "sum"]
    values += [arith.output.bias, arith.logit]
    text += ["", f"{arith.logit:+.3f}"]
    colour = RUN_COLOURS[0] if arith.decoder == "transpose" else RUN_COLOURS[1]
    fig = go.Figure(
        go.Waterfall(
            x=labels,
            y=values,
            measure=["relative"] * (len(values) - 1) + ["total"],
            text=text,
            textposition="outside",
            hovertemplate="%{x}: %{y:+.4f}<extra></extra>",
            totals=dict(marker=dict(color=colour)),
        )
    )
    r, c, ch = arith.pixel
    fig.update_layout(
        title=dict(
            text=f"{arith.decoder}: pixel ({r}, {c}), channel {ch}: sigmoid({arith.logit:+.3f}) "
            f"= {arith.value:.4f} = {arith.value * GREY_LEVELS:.1f} grey levels",
            x=0,
            font=dict(size=14),
        ),
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        yaxis=dict(title="contribution before the sigmoid"),
        showlegend=False,
    )
    return fig
