"""Activation maps as small coloured pictures, with a legend that says what colours mean.

Every channel of a step becomes one picture (a 256-entry colour table applied to its
values): a Layers click then sends 16 tiny PNGs (about 20 kB) instead of a 16,384-cell
plotly heatmap with hover data (about 700 kB and 60 ms of server CPU to build and encode,
measured). Exact values stay one click away in :func:`channel_heatmap`, a hoverable plotly
heatmap of a single channel.

Colour maps are perceptually uniform and readable with colour-vision deficiency:
viridis for values that cannot be negative (after a ReLU, a pool, the sigmoid), cmocean's
"balance" (blue, white at zero, red) for signed values (a convolution's output), and plain
grey for a picture's own colour planes. The legend names the step's colour map and its
range in words and numbers, because colour must never be the only carrier.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import sample_colorscale

from .html import PictureRow, picture_rows_html, png_bytes

SEQUENTIAL = "Viridis"
DIVERGING = "balance"  # cmocean: perceptually uniform, blue < 0 < red, white at zero
GREY = "Greys_r"
COLOUR_MODES = ("channel", "layer", "model")
COLOUR_MODE_LABELS = {"channel": "per channel", "layer": "per layer", "model": "whole model"}
IMAGE_STEPS = ("input", "sigmoid")
PLANE_NAMES = {3: ("red", "green", "blue"), 1: ("grey",)}


@lru_cache(maxsize=8)
def colour_table(scale: str) -> np.ndarray:
    """256 RGB colours (uint8, shape (256, 3)) sampled from a plotly colour scale."""
    if scale == DIVERGING:
        from plotly.colors import cmocean

        stops = cmocean.balance
    elif scale == GREY:
        stops = ["rgb(0,0,0)", "rgb(255,255,255)"]
    else:
        stops = scale
    cols = sample_colorscale(stops, list(np.linspace(0, 1, 256)), colortype="tuple")
    return (np.array(cols) * 255).round().astype(np.uint8)


def plotly_scale(scale: str) -> list | str:
    """The plotly colorscale spec for one of this module's scale names."""
    if scale == DIVERGING:
        from plotly.colors import cmocean

        return cmocean.balance
    if scale == GREY:
        return [[0, "rgb(0,0,0)"], [1, "rgb(255,255,255)"]]
    return scale


@dataclass
class MapLegend:
    """What the colours of a step's maps mean.

    Attributes:
        scale: colour map name (SEQUENTIAL, DIVERGING or GREY).
        low, high: the values at the two ends of the colour bar ("channel" mode: each
            map's own range, shown as 0 and 1).
        words: the legend in words, e.g. "blue: negative, white: zero, red: positive".
    """

    scale: str
    low: float
    high: float
    words: str


@dataclass
class StepMaps:
    """One step's channel maps as uint8 RGB pictures (H, W, 3), with their legend."""

    pictures: list[np.ndarray]
    captions: list[str]
    legend: MapLegend


def _value_range(a: np.ndarray, mode: str, model_range: tuple[float, float] | None):
    if mode == "model":
        if model_range is None:
            raise ValueError("the whole-model colour scale needs the model's value range")
        return model_range
    return float(a.min()), float(a.max())


def step_maps(
    activation: torch.Tensor,
    step: str,
    mode: str = "layer",
    model_range: tuple[float, float] | None = None,
    in_channels: int = 3,
) -> StepMaps:
    """Every channel of one image's activation at ``step`` as a coloured picture.

    Args:
        activation: (C, H, W) or (1, C, H, W).
        step: the step's name; "input" and "sigmoid" with the picture's channel count
            are shown as the picture's planes on a fixed 0..1 grey scale (their values
            are intensities, so a wider "whole model" range would only wash them out).
        mode: "channel" (each map over its own min..max), "layer" (one range for the
            step) or "model" (one range for every step, given as ``model_range``).
        in_channels: the model's picture channels (3 for RGB).

    Returns:
        The pictures, a caption per channel ("ch 3", or "red plane") and the legend.
    """
    if mode not in COLOUR_MODES:
        raise ValueError(f"colour mode must be one of {COLOUR_MODES}, got {mode!r}")
    a = (activation[0] if activation.ndim == 4 else activation).detach().float().cpu().numpy()
    c = a.shape[0]
    if step in IMAGE_STEPS and c == in_channels:
        idx = np.clip(np.round(a * 255), 0, 255).astype(np.int64)
        lut = colour_table(GREY)
        planes = PLANE_NAMES.get(c, tuple(f"ch {i}" for i in range(c)))
        words = (
            "the picture's own colour planes: black is 0 (none of that colour), white is 1 (full)"
        )
        return StepMaps(
            [lut[i] for i in idx], [f"{p} plane" for p in planes], MapLegend(GREY, 0.0, 1.0, words)
        )
    if mode == "channel":
        lo = a.reshape(c, -1).min(1)[:, None, None]
        hi = a.reshape(c, -1).max(1)[:, None, None]
        norm = (a - lo) / np.where(hi > lo, hi - lo, 1.0)
        legend = MapLegend(
            SEQUENTIAL,
            0.0,
            1.0,
            "each map stretched over its own range: dark purple is that "
            "channel's smallest value, yellow its largest",
        )
    else:
        lo, hi = _value_range(a, mode, model_range)
        if lo < 0 < hi:  # signed: white at zero, so the sign reads at a glance
            m = max(-lo, hi)
            lo, hi = -m, m
            legend = MapLegend(
                DIVERGING,
                lo,
                hi,
                "blue is negative, white is zero, red is positive; the "
                "stronger the colour, the larger the value",
            )
        else:
            if hi <= lo:
                hi = lo + 1e-6
            legend = MapLegend(
                SEQUENTIAL,
                lo,
                hi,
                "dark purple is zero or the smallest value (a unit switched "
                "off), yellow the largest",
            )
        norm = (a - lo) / (hi - lo)
    idx = np.clip(np.round(norm * 255), 0, 255).astype(np.int64)
    lut = colour_table(legend.scale)
    return StepMaps([lut[i] for i in idx], [f"ch {i}" for i in range(c)], legend)


def legend_html(legend: MapLegend, mode: str) -> str:
    """The colour bar with its two end values and the legend in words, as HTML."""
    bar = colour_table(legend.scale)[None, :, :].repeat(8, axis=0)
    uri = "data:image/png;base64," + base64.b64encode(png_bytes(bar)).decode("ascii")
    if legend.scale == GREY or mode == "channel":
        ends = ("0", "1") if legend.scale == GREY else ("smallest", "largest")
    else:
        ends = (f"{legend.low:.3g}", f"{legend.high:.3g}")
    where = COLOUR_MODE_LABELS.get(mode, mode)
    return (
        f'<div class="cae-legend" role="note"><span>{html.escape(ends[0])} '
        f'<img class="cae-swatch" src="{uri}" alt=""> {html.escape(ends[1])}</span>'
        f"<span>Colours ({html.escape(where)}): {html.escape(legend.words)}.</span></div>"
    )


def channel_heatmap(
    activation: torch.Tensor, channel: int, legend: MapLegend, step: str, height: int = 360
) -> go.Figure:
    """One channel as a hoverable heatmap (row, column, value) on the step's colours."""
    a = (activation[0] if activation.ndim == 4 else activation).detach().float().cpu()
    z = a[channel].numpy().astype(np.float32)
    lo, hi = (
        (float(z.min()), float(z.max()))
        if legend.scale == SEQUENTIAL
        and legend.low == 0.0
        and legend.high == 1.0
        and step not in IMAGE_STEPS
        else (legend.low, legend.high)
    )
    fig = go.Figure(
        go.Heatmap(
            z=z,
            colorscale=plotly_scale(legend.scale),
            zmin=lo,
            zmax=hi,
            colorbar=dict(thickness=12, title=dict(text="value", side="right")),
            hovertemplate="row %{y}, column %{x}<br>value %{z:.4f}<extra></extra>",
        )
    )
    fig.update_xaxes(constrain="domain", title_text="column")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", title_text="row")
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        title=dict(
            text=f"{step}, channel {channel}: hover a cell for its value", x=0, font=dict(size=14)
        ),
    )
    return fig


def maps_html(
    acts: list[tuple[str, torch.Tensor]],
    step: str,
    mode: str,
    in_channels: int,
    columns: int,
    joint: tuple[float, float] | None = None,
) -> str:
    """One step's channel maps and their colour legend as HTML (Layers).

    Args:
        acts: the model's trace (:func:`convae.models.trace`), a batch of one picture.
        step: the step to draw.
        mode: one of :data:`COLOUR_MODES`.
        in_channels: the picture's colour planes (the input and output steps show them).
        columns: maps per line.
        joint: one value range shared with another model's maps (compare mode); the
            maps are then coloured on it, whatever ``mode`` says.
    """
    from ..summary import value_range  # summary imports models only; figures stay light

    act = dict(acts)[step]
    if joint is not None:
        maps = step_maps(act, step, "model", joint, in_channels)
    else:
        rng = value_range(acts) if mode == "model" else None
        maps = step_maps(act, step, mode, rng, in_channels)
    alts = [f"{step}, {c}" for c in maps.captions]
    row = PictureRow("", maps.pictures, maps.captions, alts)
    body = picture_rows_html([row], columns=columns, title=f"{step}: channel maps")
    return body + legend_html(maps.legend, mode)


def path_strip_html(
    names: list[str], thumbnails: list[np.ndarray], step: str, code_step: str
) -> str:
    """Every step of a model as a small picture, encoder and decoder in two labelled rows,
    ``step`` marked (Layers' "whole path")."""
    split = names.index(code_step) + 1
    strip = [
        PictureRow(
            title,
            thumbnails[a:b],
            [("▶ " if names[j] == step else "") + names[j] for j in range(a, b)],
            [f"{names[j]}{' (shown above)' if names[j] == step else ''}" for j in range(a, b)],
            marked=[j - a for j in range(a, b) if names[j] == step],
        )
        for title, a, b in (("Encoder", 0, split), ("Decoder", split, len(names)))
    ]
    columns = max(split, len(names) - split)
    return picture_rows_html(strip, columns=columns, label_width="5rem", max_px=110)
