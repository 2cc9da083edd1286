"""Figure builders for the app: image grids, activation maps, curves, architecture diagram.

Plain numpy / PIL / plotly, no Streamlit, so every figure can be built and checked in a
test. Small images are always enlarged by repeating pixels (nearest neighbour): a 32x32
CIFAR-10 image scaled by the browser's smooth filter looks blurred, and blur is exactly
what a student must not confuse with the autoencoder's own loss of detail.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw
from plotly.subplots import make_subplots

from .maps import (
    COLOUR_MODE_LABELS,
    COLOUR_MODES,
    DIVERGING,
    SEQUENTIAL,
    colour_table,
    plotly_scale,
)

# The colour maps and their tables live in .maps (one copy): viridis for values that
# cannot be negative, cmocean's "balance" (blue < 0 < red, white at zero) for signed ones.
PART_COLOURS = {"input": "#7f7f7f", "encoder": "#1f77b4", "code": "#d62728", "decoder": "#2ca02c"}
RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


# ----------------------------------------------------------------- photo images


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """One image (C, H, W) in [0, 1] -> uint8 (H, W, 3) or (H, W) for greyscale."""
    a = (x.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge an (H, W[, C]) image by repeating each pixel ``factor`` times (no blur)."""
    factor = max(1, int(factor))
    return img.repeat(factor, axis=0).repeat(factor, axis=1)


def display_scale(image_size: int, target_px: int = 96) -> int:
    """The integer enlargement that brings an image closest to ``target_px`` wide."""
    return max(1, round(target_px / image_size))


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def rows_png(
    rows: Sequence[tuple[str, Sequence[np.ndarray], Sequence[str] | None]],
    gap: int = 4,
    label_px: int = 150,
) -> bytes:
    """Rows of already drawn uint8 pictures (H, W) or (H, W, 3) as one labelled PNG.

    What a page shows as ``st.image`` rows (reconstructions, error maps, a code walk) is
    saved this way. Pictures may differ in size; each row is as tall as its tallest one.

    Args:
        rows: (row label, pictures, captions or None); label "" leaves no label column.
    """
    if not rows or not any(len(imgs) for _, imgs, _ in rows):
        raise ValueError("rows_png needs at least one picture")
    caption_px = 14 if any(caps for _, _, caps in rows) else 0
    label_px = label_px if any(label for label, _, _ in rows) else 0
    heights = [max((im.shape[0] for im in imgs), default=0) for _, imgs, _ in rows]
    widths = [sum(im.shape[1] + gap for im in imgs) for _, imgs, _ in rows]
    width = label_px + max(widths) + gap
    height = sum(h + caption_px + gap for h in heights) + gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    top = gap
    for (label, imgs, caps), side in zip(rows, heights, strict=True):
        if label:
            draw.text((gap, top + side // 2 - 6), label[:24], fill="black")
        left = label_px + gap
        for c, img in enumerate(imgs):
            canvas.paste(Image.fromarray(_rgb(np.ascontiguousarray(img))), (left, top))
            if caps and c < len(caps) and caps[c]:
                draw.text((left + 2, top + img.shape[0] + 1), caps[c], fill="black")
            left += img.shape[1] + gap
        top += side + caption_px + gap
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------- activation maps


def grid_shape(channels: int) -> tuple[int, int]:
    """(rows, cols) for tiling channel maps: up to 4 in one row, else a near-square grid
    (16 maps as 4x4 keeps each map large enough to read)."""
    cols = channels if channels <= 4 else math.ceil(math.sqrt(channels))
    return math.ceil(channels / cols), cols


def colour_range(
    activation: torch.Tensor, mode: str, model_range: tuple[float, float] | None = None
) -> tuple[float, float]:
    """The (min, max) a colour scale spans in ``mode`` ("layer" or "model")."""
    if mode == "model":
        if model_range is None:
            raise ValueError("the whole-model colour scale needs the model's value range")
        lo, hi = model_range
    else:
        lo, hi = float(activation.min()), float(activation.max())
    if hi <= lo:  # a constant map: widen so the colour scale is defined
        hi = lo + 1e-6
    return lo, hi


def activation_grid(
    activation: torch.Tensor,
    step: str,
    mode: str = "layer",
    model_range: tuple[float, float] | None = None,
    tile_px: int = 150,
) -> go.Figure:
    """Every channel of one image's activation as a tiled heatmap with hover values.

    One heatmap trace holds all tiles (NaN gaps between them): one trace instead of 16
    subplots keeps a layer step fast to build and to draw. (The pages draw channel maps
    as pictures now, :func:`convae.figures.maps.step_maps`; bench/train_priority.py still
    measures this plotly figure, which is what the Layers page used to send.)

    Args:
        activation: (C, H, W) or (1, C, H, W).
        step: the step's name (title).
        mode: "channel" (each map stretched over its own min..max; the colourbar reads
            0 = that channel's min, 1 = its max), "layer" (one scale for this step) or
            "model" (one scale for every step, given as ``model_range``).
        tile_px: about how many screen pixels each map gets.
    """
    if mode not in COLOUR_MODES:
        raise ValueError(f"colour mode must be one of {COLOUR_MODES}, got {mode!r}")
    a = (activation[0] if activation.ndim == 4 else activation).detach().float().cpu()
    c, h, w = a.shape
    rows, cols = grid_shape(c)
    shown, colours = _heatmap_colours(a, mode, model_range)
    z, cd, annotations = _tiles(a.numpy(), shown, cols, gap=max(2, h // 4))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=cd,
            hoverongaps=False,
            hovertemplate=(
                "channel %{customdata[0]}<br>row %{customdata[1]}, "
                "col %{customdata[2]}<br>value %{customdata[3]:.4f}<extra></extra>"
            ),
            **colours,
        )
    )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    label = COLOUR_MODE_LABELS[mode]
    fig.update_layout(
        title=dict(
            text=f"{step}: {c} channel{'s' * (c > 1)} of {h}x{w} (colour scale {label})",
            x=0,
            font=dict(size=14),
        ),
        annotations=annotations,
        height=rows * tile_px + 70,
        margin=dict(l=10, r=10, t=60, b=10),
    )
    return fig


def _heatmap_colours(
    a: torch.Tensor, mode: str, model_range: tuple[float, float] | None
) -> tuple[np.ndarray, dict]:
    """The values as coloured (normalised per channel in "channel" mode) and the
    heatmap's colour settings: viridis, or balance centred on zero for signed values."""
    values = a.numpy()
    bar = dict(thickness=14, len=1.0, title=dict(text="value", side="right"))
    if mode == "channel":
        flat = values.reshape(len(values), -1)
        lo, hi = flat.min(1)[:, None, None], flat.max(1)[:, None, None]
        shown = (values - lo) / np.where(hi > lo, hi - lo, 1.0)
        bar.update(
            title=dict(text="own range", side="right"),
            tickvals=[0, 0.5, 1],
            ticktext=["channel min", "mid", "channel max"],
        )
        return shown, dict(colorscale=plotly_scale(SEQUENTIAL), zmin=0.0, zmax=1.0, colorbar=bar)
    zmin, zmax = colour_range(a, mode, model_range)
    if zmin < 0 < zmax:  # signed: centre white on zero so sign reads at a glance
        m = max(-zmin, zmax)
        scale = dict(colorscale=plotly_scale(DIVERGING), zmin=-m, zmax=m, zmid=0.0)
    else:
        scale = dict(colorscale=plotly_scale(SEQUENTIAL), zmin=zmin, zmax=zmax)
    return values, {**scale, "colorbar": bar}


def _tiles(
    values: np.ndarray, shown: np.ndarray, cols: int, gap: int
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The channel maps tiled ``cols`` to a row with NaN gaps: the coloured values, the
    hover data per cell (channel, row, column, true value) and a "ch N" label per map."""
    c, h, w = values.shape
    rows = math.ceil(c / cols)
    big_h, big_w = rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap
    z = np.full((big_h, big_w), np.nan, dtype=np.float32)
    cd = np.full((big_h, big_w, 4), np.nan, dtype=np.float32)
    yy, xx = np.mgrid[:h, :w]
    annotations = []
    for ch in range(c):
        r, col = divmod(ch, cols)
        top, left = r * (h + gap), col * (w + gap)
        z[top : top + h, left : left + w] = shown[ch]
        cell = [np.full((h, w), ch), yy, xx, values[ch]]
        cd[top : top + h, left : left + w] = np.stack(cell, axis=-1)
        label = dict(x=left + w / 2 - 0.5, y=top - 0.5, text=f"ch {ch}", showarrow=False)
        annotations.append(dict(**label, yanchor="bottom", font=dict(size=11), xref="x", yref="y"))
    return z, cd, annotations


def step_thumbnail(
    activation: torch.Tensor, step: str, in_channels: int, target_px: int = 96
) -> np.ndarray:
    """A small picture of one step for the overview strip.

    Image-like steps (input and the final sigmoid with the image's channel count) are
    shown as the picture itself; other steps as their channel maps tiled, each stretched
    over its own range and coloured with viridis (structure, not scale, is what the
    strip is for).
    """
    a = (activation[0] if activation.ndim == 4 else activation).detach().float().cpu()
    c, h, w = a.shape
    if step in ("input", "sigmoid") and c == in_channels:
        img = to_uint8(a)
        return upscale(_rgb(img), display_scale(w, target_px))
    rows, cols = (
        (2, 2) if c == 4 else (math.ceil(c / math.ceil(math.sqrt(c))), math.ceil(math.sqrt(c)))
    )
    flat = a.reshape(c, -1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    norm = ((a - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))).numpy()
    gap = 1
    viridis = colour_table(SEQUENTIAL)
    mosaic = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for ch in range(c):
        r, col = divmod(ch, cols)
        idx = (norm[ch] * 255).round().astype(np.int64)
        top, left = r * (h + gap), col * (w + gap)
        mosaic[top : top + h, left : left + w] = viridis[idx]
    return upscale(mosaic, display_scale(mosaic.shape[1], target_px))


# ----------------------------------------------------------------------- curves


def training_curves(runs: Sequence[dict]) -> go.Figure:
    """Train loss per step and test PSNR over training, one colour per run, overlaid.

    Args:
        runs: dicts with "label", "steps" [(step, loss), ...] and either "psnr_points"
            [(step, test PSNR), ...] (measured during the run, so even a one-epoch run
            draws a curve) or "history" (fit()'s per-epoch dicts with "epoch", "step" and
            "test_psnr").
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("Training loss per step", "Test PSNR during training"),
    )
    for i, run in enumerate(runs):
        colour, label = RUN_COLOURS[i % len(RUN_COLOURS)], run["label"]
        steps = run.get("steps") or []
        if steps:
            fig.add_trace(run_line(*zip(*steps, strict=True), label, colour), row=1, col=1)
        points = run.get("psnr_points") or [
            (h.get("step", h["epoch"]), h["test_psnr"]) for h in run.get("history") or []
        ]
        if points:
            s, v = zip(*points, strict=True)
            line = run_line(s, v, label, colour, "lines+markers", showlegend=not steps)
            fig.add_trace(line, row=1, col=2)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="PSNR (dB)", row=1, col=2)
    fig.update_layout(
        height=330, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25)
    )
    return fig


def run_line(
    x: Sequence[float],
    y: Sequence[float],
    name: str,
    colour: str,
    mode: str = "lines",
    showlegend: bool = True,
    **line: object,
) -> go.Scatter:
    """One run's curve in its colour, grouped in the legend under its name (a click on
    the name hides all of that run's curves).

    Args:
        x, y: the points.
        name: the run's label.
        colour: its colour (e.g. from RUN_COLOURS).
        mode: plotly's "lines", "lines+markers", ...
        showlegend: False for the second and later curves of a run.
        line: more line settings, e.g. dash="dot", width=1.
    """
    return go.Scatter(
        x=list(x),
        y=list(y),
        mode=mode,
        name=name,
        legendgroup=name,
        showlegend=showlegend,
        line=dict(color=colour, **line),
    )


# --------------------------------------------------------- architecture diagram


def architecture_diagram(rows: Sequence[dict]) -> go.Figure:
    """Each step as a block whose height is its spatial size and whose width grows with
    its channel count, so the shapes visibly shrink to the code and grow back.

    Args:
        rows: :func:`convae.summary.architecture` output.
    """
    fig = go.Figure()
    max_side = max(int(r["output shape"].split(" x ")[-1]) for r in rows)
    for i, r in enumerate(rows):
        c, h, _w = (int(v) for v in r["output shape"].split(" x "))
        # capped: a sub-pixel layer's 64 channels would overlap the next block
        width = 0.25 + 0.55 * math.sqrt(min(c, 16) / 16)
        height = h / max_side
        colour = PART_COLOURS[r["part"]]
        fig.add_trace(
            go.Bar(
                x=[i],
                y=[height],
                base=[-height / 2],
                width=[width],
                marker_color=colour,
                name=r["part"],
                legendgroup=r["part"],
                showlegend=False,
                hovertemplate=(
                    f"<b>{r['step']}</b><br>{r['layer']}<br>{r['output shape']} = "
                    f"{r['values']:,} values<extra></extra>"
                ),
            )
        )
        fig.add_annotation(
            x=i,
            y=-0.5,
            text=r["output shape"].replace(" x ", "×"),
            showarrow=False,
            font=dict(size=11),
            yanchor="top",
        )
    for part, colour in PART_COLOURS.items():
        fig.add_trace(go.Bar(x=[None], y=[None], marker_color=colour, name=part))
    fig.update_xaxes(
        tickvals=list(range(len(rows))),
        ticktext=[r["step"] for r in rows],
        side="top",
        showgrid=False,
    )
    fig.update_yaxes(visible=False, range=[-0.68, 0.52])
    fig.update_layout(
        height=250,
        margin=dict(l=10, r=10, t=30, b=10),
        barmode="overlay",
        bargap=0,
        legend=dict(orientation="h", y=-0.02, x=0),
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def architecture_image(rows: Sequence[dict], scale: int = 2) -> np.ndarray:
    """The same diagram as :func:`architecture_diagram`, drawn as a plain RGB picture.

    The Overview is the first page a visitor sees; a picture needs no plotly.js, which
    the browser would otherwise fetch and start before the page is complete (about a
    second of a cold start on a 2-core machine).
    """
    col_w, max_h, top, bottom = 78 * scale, 70 * scale, 18 * scale, 18 * scale
    width, height = col_w * len(rows), top + max_h + bottom
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    max_side = max(int(r["output shape"].split(" x ")[-1]) for r in rows)
    mid = top + max_h // 2
    for i, r in enumerate(rows):
        c, h, _w = (int(v) for v in r["output shape"].split(" x "))
        bw = int(col_w * (0.2 + 0.5 * math.sqrt(min(c, 16) / 16)))
        bh = max(3 * scale, int(max_h * h / max_side))
        cx = i * col_w + col_w // 2
        draw.rectangle(
            (cx - bw // 2, mid - bh // 2, cx + bw // 2, mid + bh // 2), fill=PART_COLOURS[r["part"]]
        )
        for text, y in (
            (r["step"], 3 * scale),
            (r["output shape"].replace(" x ", "x"), height - bottom + 3 * scale),
        ):
            tw = draw.textlength(text, font_size=10 * scale)
            draw.text((cx - tw / 2, y), text, fill="black", font_size=10 * scale)
    return np.asarray(canvas)


def architecture_markdown(rows: Sequence[dict]) -> str:
    """The architecture as a Markdown table (step, layer, output shape, parameters)."""
    lines = ["| step | layer | output shape | parameters |", "| --- | --- | --- | ---: |"]
    for r in rows:
        code = " **(code)**" if r["part"] == "code" else ""
        lines.append(
            f"| {r['step']}{code} | {r['layer']} | {r['output shape']} | {r['parameters']:,} |"
        )
    return "\n".join(lines)


def table_csv(rows: Sequence[dict]) -> bytes:
    """A list of dict rows as CSV bytes (for a table drawn as Markdown or a picture)."""
    import csv

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()
