"""Figure builders for the Compare page (and the Layers page's compare mode).

Plain numpy / PIL / plotly, no Streamlit, like the rest of :mod:`convae.figures`: every picture the
page shows can be built and checked in a test. The numbers come from
:mod:`convae.compare` and :mod:`convae.metrics`; this module only draws them.

The grid-artifact measures (:data:`MEASURES`) come from :mod:`convae.metrics` already in
8-bit grey levels, each with a floor (what error of the same size without grid structure
scores); the figures and tables here show the floor beside the value, never one alone.
Errors are drawn in grey levels too: "7 levels" is easier to picture than "0.027".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..family import (
    CHECKER_FLOOR_TIMES,
    CHECKER_VISIBLE,
    TILES_VISIBLE,
    draws_tiles,
    shows_checkerboard,
)
from ..metrics import GREY_LEVELS
from ..models import step_role
from . import RUN_COLOURS, display_scale, run_line, to_uint8, upscale
from .maps import colour_table

ERROR_SCALE = "Inferno"  # dark = no error, bright = large: errors pop out of a dark map
INPUT_COLOUR = "#7f7f7f"
# Where a stride-2 pattern sits in the radially averaged spectrum (cycles per pixel).
STRIPE_FREQ = 0.5  # period-2 stripes: (pi, 0) and (0, pi)
CHECKER_FREQ = 0.5 * 2**0.5  # a 2-pixel checkerboard: (pi, pi), the spectrum's corner


_ERROR_LUT = colour_table(ERROR_SCALE)


def error_image(abs_error: torch.Tensor, vmax: float, target_px: int = 96) -> np.ndarray:
    """One image's absolute error (C, H, W) as an enlarged colour map on the scale 0..vmax.

    The largest error over the colour channels is shown at each pixel, so with ``vmax``
    = :attr:`convae.compare.Comparison.error_max` the worst pixel of either model is
    the top of the scale and both models' maps read on the same colours.
    """
    e = abs_error.detach().float().cpu().amax(0).numpy()
    idx = np.clip(np.round(e / max(vmax, 1e-12) * 255), 0, 255).astype(np.int64)
    return upscale(_ERROR_LUT[idx], display_scale(e.shape[-1], target_px))


def error_images(abs_error: torch.Tensor, vmax: float, target_px: int = 96) -> list[np.ndarray]:
    """:func:`error_image` for each image of a batch (N, C, H, W)."""
    return [error_image(e, vmax, target_px) for e in abs_error]


def error_scale_bar(vmax: float, width: int = 256, height: int = 14) -> np.ndarray:
    """The error colour scale as a horizontal strip (left 0, right ``vmax``)."""
    row = _ERROR_LUT[np.linspace(0, 255, width).round().astype(np.int64)]
    return np.repeat(row[None], height, axis=0)


def swipe_image(
    a: torch.Tensor,
    b: torch.Tensor,
    split: int,
    target_px: int = 320,
    line: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Two reconstructions (C, H, W) on one picture: ``a`` left of column ``split``,
    ``b`` from it on, with a thin divider line, enlarged without blur.

    ``split`` 0 shows only ``b``, ``split`` = W only ``a``.
    """
    w = a.shape[-1]
    split = int(np.clip(split, 0, w))
    f = display_scale(w, target_px)
    left, right = to_uint8(a), to_uint8(b)
    out = upscale(np.concatenate([left[:, :split], right[:, split:]], axis=1), f)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    if 0 < split < w:
        out = out.copy()
        out[:, max(0, split * f - 1) : split * f + 1] = line
    return out


def error_maps_figure(
    errors: Mapping[str, torch.Tensor], vmax: float, height: int = 330
) -> go.Figure:
    """Each model's absolute error of one image (C, H, W) as a heatmap, side by side, on
    one colour axis from 0 to ``vmax``; hovering reads the error in grey levels."""
    names = list(errors)
    fig = make_subplots(
        rows=1,
        cols=len(names),
        subplot_titles=[f"|{n} - input|"[:40] for n in names],
        horizontal_spacing=0.04,
    )
    for i, name in enumerate(names, start=1):
        e = errors[name].detach().float().cpu().amax(0).numpy()
        fig.add_trace(
            go.Heatmap(
                z=e * GREY_LEVELS,
                coloraxis="coloraxis",
                name=name,
                hovertemplate=(
                    f"{name}<br>row %{{y}}, col %{{x}}<br>error %{{z:.1f}} "
                    "grey levels<extra></extra>"
                ),
            ),
            row=1,
            col=i,
        )
        fig.update_yaxes(
            autorange="reversed", scaleanchor=f"x{'' if i == 1 else i}", visible=False, row=1, col=i
        )
        fig.update_xaxes(visible=False, constrain="domain", row=1, col=i)
    fig.update_layout(
        coloraxis=dict(
            colorscale=ERROR_SCALE,
            cmin=0,
            cmax=vmax * GREY_LEVELS,
            colorbar=dict(title=dict(text="grey levels", side="right"), thickness=12),
        ),
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
    )
    return fig


# The grid-artifact measures: key -> (short label with unit, one-line meaning for a
# student). Keys are those of :class:`convae.compare.ImageScores`; each has "<key>_floor".
MEASURES = {
    "blockiness4": (
        "4x4 tile edges (grey levels)",
        "How much more the picture steps between neighbouring pixels across the edges of "
        "the 4x4 tiles each code cell paints than inside a tile, beyond the input's own "
        "difference, in grey levels of 255. 0 = no tiles; the floor is what error of this "
        "size with no grid structure scores.",
    ),
    "blockiness2": (
        "2x2 block edges (grey levels)",
        "The same across the edges of the 2x2 blocks of the decoder's second layer.",
    ),
    "checkerboard": (
        "checkerboard (grey levels)",
        "Amplitude of a 2-pixel checkerboard or stripe pattern with the same phase in "
        "every image (one built into the decoder's weights), above what the error shows "
        "by chance; the floor is that chance level, which falls as more images are pooled.",
    ),
}


def measure_text(row: dict, key: str, digits: int = 2) -> str:
    """One measure with its floor for a caption, e.g. "9.11 (floor -0.35)".

    Args:
        row: a dict with ``key`` and ``key + "_floor"`` (``ImageScores.mean()``, a
            per-class row or a ``Comparison.per_image()`` row).
        key: one of :data:`MEASURES`.
    """
    return f"{row[key]:.{digits}f} (floor {row[key + '_floor']:.{digits}f})"


def per_image_table(
    names: Sequence[str], scores: Mapping, class_names: Sequence[str], first_index: int = 0
) -> list[dict]:
    """One row per image with both models' figures next to each other, for a sortable
    table: PSNR of A and B and B - A, SSIM, the grid-artifact measures (grey levels) with
    each image's floor, and MSE. Columns say "A" and "B" (model names are long; the page
    says which is which).

    Args:
        names: the two model labels (A, B).
        scores: label -> :class:`convae.compare.ImageScores` (``Comparison.scores``).
        class_names: each image's class.
        first_index: the index of the first image in its (filtered) split.
    """
    sa, sb = scores[names[0]], scores[names[1]]
    short = {"blockiness4": "tiles 4", "blockiness2": "tiles 2", "checkerboard": "checker"}
    keys = [*short, *(k + "_floor" for k in short)]
    # each column once (the checkerboard ones are computed properties)
    col_a, col_b = ({k: getattr(s, k).tolist() for k in keys} for s in (sa, sb))
    rows = []
    for i, cls in enumerate(class_names):
        row = {
            "image": first_index + i,
            "class": cls,
            "PSNR A": float(sa.psnr[i]),
            "PSNR B": float(sb.psnr[i]),
            "PSNR B - A": float(sb.psnr[i] - sa.psnr[i]),
            "SSIM A": float(sa.ssim[i]),
            "SSIM B": float(sb.ssim[i]),
        }
        for key, label in short.items():
            for tag, cols in (("A", col_a), ("B", col_b)):
                row[f"{label} {tag}"] = cols[key][i]
                row[f"{label} floor {tag}"] = cols[key + "_floor"][i]
        row["MSE A"], row["MSE B"] = float(sa.mse[i]), float(sb.mse[i])
        rows.append(row)
    return rows


def spectrum_figure(
    curves: Mapping[str, tuple[torch.Tensor, torch.Tensor]], height: int = 360
) -> go.Figure:
    """Radially averaged power spectra (from :func:`convae.metrics.radial_power_spectrum`)
    on a log scale, and each reconstruction's power relative to the input's.

    Args:
        curves: label -> (freqs, power); the first entry is the input, the rest are
            reconstructions. The DC term (frequency 0) is left out: it is the mean
            brightness, orders of magnitude above the rest.
    """
    names = list(curves)
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("Power by spatial frequency", "Reconstruction power / input power"),
    )
    f0, p0 = (t.double().numpy() for t in curves[names[0]])
    keep = f0 > 0
    for i, name in enumerate(names):
        f, p = (t.double().numpy() for t in curves[name])
        colour = INPUT_COLOUR if i == 0 else RUN_COLOURS[(i - 1) % len(RUN_COLOURS)]
        dash = "dot" if i == 0 else None
        fig.add_trace(
            go.Scatter(
                x=f[keep],
                y=p[keep],
                mode="lines",
                name=name,
                legendgroup=name,
                line=dict(color=colour, dash=dash),
                hovertemplate=f"%{{x:.3f}} cycles/px: %{{y:.2e}}<extra>{name}</extra>",
            ),
            row=1,
            col=1,
        )
        if i > 0:
            fig.add_trace(
                go.Scatter(
                    x=f[keep],
                    y=p[keep] / np.maximum(p0[keep], 1e-30),
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=False,
                    line=dict(color=colour),
                    hovertemplate=f"%{{x:.3f}} cycles/px: x%{{y:.2f}}<extra>{name}</extra>",
                ),
                row=1,
                col=2,
            )
    for col in (1, 2):
        for x, text in ((STRIPE_FREQ, "stripes"), (CHECKER_FREQ, "checkerboard")):
            label = (
                dict(annotation_text=text, annotation_position="top left", annotation_font_size=10)
                if col == 1
                else {}
            )
            fig.add_vline(
                x=x, line=dict(color="#bbbbbb", dash="dash", width=1), row=1, col=col, **label
            )
        fig.update_xaxes(title_text="cycles per pixel", range=[0, 0.72], row=1, col=col)
        fig.update_yaxes(type="log", dtick=1, row=1, col=col)
    fig.add_hline(y=1, line=dict(color="#888888", width=1), row=1, col=2)
    fig.update_yaxes(title_text="power (log)", row=1, col=1)
    fig.update_yaxes(title_text="ratio (log)", row=1, col=2)
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.22)
    )
    return fig


CLASS_METRICS = {"psnr": "PSNR (dB)", "ssim": "SSIM", **{k: v[0] for k, v in MEASURES.items()}}


def per_class_rows(rows: Sequence[dict]) -> list[dict]:
    """:func:`convae.compare.per_class_table` rows for display, one row per class and
    model: PSNR, SSIM, each grid-artifact measure (grey levels) followed by its floor, MSE."""
    out = []
    for r in rows:
        row = {"class": r["class"], "model": r["model"], "images": r["n"]}
        row["PSNR (dB)"], row["SSIM"] = r["psnr"], r["ssim"]
        for key, (label, _) in MEASURES.items():
            row[label] = r[key]
            row[label.replace(" (grey levels)", " floor")] = r[key + "_floor"]
        row["MSE"] = r["mse"]
        out.append(row)
    return out


def per_class_bars(rows: Sequence[dict], metric: str = "psnr", height: int = 340) -> go.Figure:
    """Grouped bars: one group per class, one bar per model, of ``metric`` (a key of
    :data:`CLASS_METRICS`); each model's "all" row is a dashed line, and for a
    grid-artifact measure its floor over all images a dotted one."""
    if metric not in CLASS_METRICS:
        raise ValueError(f"metric must be one of {list(CLASS_METRICS)}, got {metric!r}")
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig = go.Figure()
    for i, m in enumerate(models):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        mine = [r for r in rows if r["model"] == m and r["class"] != "all"]
        floors = [r.get(metric + "_floor") for r in mine]
        fig.add_trace(
            go.Bar(
                x=[r["class"] for r in mine],
                y=[r[metric] for r in mine],
                name=m,
                marker_color=colour,
                customdata=floors if metric in MEASURES else None,
                hovertemplate="%{x}: %{y:.3f}"
                + (" (floor %{customdata:.3f})" if metric in MEASURES else "")
                + "<extra>"
                + m
                + "</extra>",
            )
        )
        overall = [r for r in rows if r["model"] == m and r["class"] == "all"]
        if overall:
            fig.add_hline(y=overall[0][metric], line=dict(color=colour, dash="dash", width=1))
            if metric in MEASURES:
                fig.add_hline(
                    y=overall[0][metric + "_floor"], line=dict(color=colour, dash="dot", width=1)
                )
    label = CLASS_METRICS[metric]
    lows = [r[metric] for r in rows]
    # PSNR and SSIM differ by a few percent between decoders: start the axis near the
    # data so the difference is visible (the axis says where it starts). The artifact
    # measures start at their natural zero (no artifact).
    y_range = None if metric in MEASURES else [min(lows) * 0.95, max(lows) * 1.02]
    note = ", dotted: floor" if metric in MEASURES else ""
    fig.update_layout(
        barmode="group",
        height=height,
        yaxis=dict(title=label, range=y_range),
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"),
        title=dict(text=f"{label} per class (dashed: all classes{note})", x=0, font=dict(size=14)),
    )
    return fig


def pattern_image(pattern: torch.Tensor, size: int, gain: float) -> np.ndarray:
    """A period-2 pattern (C, 2, 2) (:func:`convae.metrics.period2_pattern`) tiled over a
    ``size`` x ``size`` picture around mid-grey, ``gain`` times stronger than it is, so
    that a pattern of a grey level or two can be seen at all."""
    c = pattern.shape[0]
    tiled = pattern.float().repeat(1, size // 2, size // 2)[:, :size, :size]
    return to_uint8((0.5 + gain * tiled).clamp(0, 1).reshape(c, size, size))


def overlap_figure(
    counts: torch.Tensor, kernel_size: int, stride: int = 2, height: int = 420
) -> go.Figure:
    """The overlap count map (:func:`convae.compare.overlap_map`) as an annotated heatmap."""
    z = counts.detach().cpu().numpy()
    fig = go.Figure(
        go.Heatmap(
            z=z,
            text=z.astype(int).astype(str),
            texttemplate="%{text}",
            textfont=dict(size=13),
            colorscale="Blues",
            zmin=0,
            zmax=max(4.0, float(z.max())),
            colorbar=dict(title=dict(text="taps", side="right"), thickness=12),
            hovertemplate="row %{y}, col %{x}: %{z:.0f} taps<extra></extra>",
        )
    )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_layout(
        title=dict(
            text=f"ConvTranspose2d kernel {kernel_size}, stride {stride}: kernel taps "
            "landing on each output pixel",
            x=0,
            font=dict(size=14),
        ),
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return fig


def snapshot_curves(
    curves: Mapping[str, Sequence[dict]],
    current_steps: Sequence[int] = (),
    measure: str = "blockiness4",
    height: int = 320,
) -> go.Figure:
    """PSNR and one grid-artifact measure (with its floor, dotted) over training, one
    colour per model.

    Args:
        curves: label -> [{"step", "psnr", measure, measure + "_floor"}, ...] (one per
            snapshot, e.g. ``{"step": s, **score_images(model, x).mean()}``).
        current_steps: steps to mark with a vertical line (the snapshot shown).
        measure: a key of :data:`MEASURES` (default: the 4x4 tiles).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {list(MEASURES)}, got {measure!r}")
    label = MEASURES[measure][0]
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=(
            "PSNR over training",
            label.replace(" (grey levels)", "") + " over training",
        ),
    )
    for i, (name, pts) in enumerate(curves.items()):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        steps = [p["step"] for p in pts]
        marked = "lines+markers"
        psnr = run_line(steps, [p["psnr"] for p in pts], name, colour, marked)
        fig.add_trace(psnr, row=1, col=1)
        value = run_line(steps, [p[measure] for p in pts], name, colour, marked, False)
        fig.add_trace(value, row=1, col=2)
        floors = [p[measure + "_floor"] for p in pts]
        floor = run_line(steps, floors, name, colour, showlegend=False, dash="dot", width=1)
        floor.update(name=f"{name}: floor", hovertemplate=f"floor %{{y:.3f}}<extra>{name}</extra>")
        fig.add_trace(floor, row=1, col=2)
    for s in dict.fromkeys(current_steps):
        for col in (1, 2):
            fig.add_vline(x=s, line=dict(color="#999999", dash="dot", width=1), row=1, col=col)
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="PSNR (dB)", row=1, col=1)
    fig.update_yaxes(title_text="grey levels (dotted: floor)", row=1, col=2)
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25)
    )
    return fig


def matching_step(step: str, names: Sequence[str]) -> str:
    """The step of another model that plays the part of ``step``: the same name when it
    has one, else the step with the same role in its decoder (its first or second layer
    with weights, :func:`convae.models.step_role`; a resize or shuffle is matched to the
    layer that does its job); the last step when nothing matches."""
    if step in names:
        return step
    role = step_role(step)
    role = {
        "upsample1": "first",
        "shuffle1": "first",
        "upsample2": "second",
        "shuffle2": "second",
    }.get(step, role)
    return next((n for n in names if step_role(n) == role), names[-1])


def artifact_sentence(summary: Sequence[dict]) -> str:
    """One sentence with the numbers, for the top of the Compare page.

    Args:
        summary: the two models' set-level rows, A then B (``Comparison.summary()`` or
            the "all" rows of :func:`convae.compare.per_class_table`), each with "model".

    Returns:
        e.g. "Across the 4x4 tile edges of the decoder grid, transpose steps 9.11 grey
        levels more than inside a tile (floor -0.35) and upsample -0.73 (floor -0.33);
        checkerboard 0.11 vs 0.09 grey levels (floor 0.01), on 10,000 images."
    """
    if len(summary) != 2:
        raise ValueError(f"give the two models' rows, got {len(summary)}")
    a, b = summary
    return (
        f"Across the 4x4 tile edges of the decoder grid, {a['model']} steps "
        f"{a['blockiness4']:.2f} grey levels more than inside a tile (floor "
        f"{a['blockiness4_floor']:.2f}) and {b['model']} {b['blockiness4']:.2f} (floor "
        f"{b['blockiness4_floor']:.2f}); checkerboard {a['checkerboard']:.2f} vs "
        f"{b['checkerboard']:.2f} grey levels (floor {a['checkerboard_floor']:.2f} / "
        f"{b['checkerboard_floor']:.2f}), on {a['n']:,} images."
    )


# A tiling this many grey levels above its floor is called visible in the page's sentence
# (convae.family.TILES_VISIBLE): the shipped transpose decoder is 9.5 above, the upsample
# decoder within 0.1.
VISIBLE_TILES = TILES_VISIBLE


def finding_sentence(summary: Sequence[dict], pictures: str = "these pictures") -> str:
    """What the Compare page found, in one plain sentence with its numbers (HTML <b>), for
    any two models of the decoder family (or baselines).

    The closer model, then the 4x4 tiles (every decoder of the family paints its picture
    from a 4x4 grid of code cells; "draws tiles" when the step across that grid's edges is
    :data:`VISIBLE_TILES` grey levels above its floor), then the period-2 checkerboard
    (:func:`convae.family.shows_checkerboard`: at least half a grey level and twice its
    floor). Only what the figures say: no decoder is assumed to have either.

    Args:
        summary: the two models' set-level rows, A then B (``Comparison.summary()``),
            each with "model", "psnr", "blockiness4", "checkerboard" and their floors.
        pictures: what was compared, e.g. "these 8 pictures".

    Returns:
        e.g. "<b>B (upsample)</b> rebuilds these 8 pictures 1.2 dB closer than <b>A
        (transpose)</b> (22.5 against 21.3 dB), and A draws tiles: its pictures step 9.1
        grey levels more across the edges of the 4x4 grid of its code cells than inside
        it (B -0.4; error without any grid scores about -0.3). Neither shows a period-2
        checkerboard: A 0.31, B 0.20 grey levels (floors 0.40 and 0.37); it counts from
        0.5 and 2 times its floor."
    """
    if len(summary) != 2:
        raise ValueError(f"give the two models' rows, got {len(summary)}")
    rows = {"A": summary[0], "B": summary[1]}
    a, b = rows["A"], rows["B"]
    best, other = ("B", "A") if b["psnr"] > a["psnr"] else ("A", "B")
    diff = abs(b["psnr"] - a["psnr"])
    text = (
        f"<b>{best} ({rows[best]['model']})</b> rebuilds {pictures} {diff:.1f} dB closer "
        f"than <b>{other} ({rows[other]['model']})</b> ({rows[best]['psnr']:.1f} against "
        f"{rows[other]['psnr']:.1f} dB)"
    )
    tiled = [t for t, r in rows.items() if draws_tiles(r, 4)]
    floor = (a["blockiness4_floor"] + b["blockiness4_floor"]) / 2
    if len(tiled) == 1:
        t = tiled[0]
        u = "B" if t == "A" else "A"
        text += (
            f", and {t} draws tiles: its pictures step {rows[t]['blockiness4']:.1f} "
            "grey levels more across the edges of the 4x4 grid of its code cells than "
            f"inside it ({u} {rows[u]['blockiness4']:.1f}; error without any grid scores "
            f"about {floor:.1f})."
        )
    elif tiled:
        text += (
            f"; both draw tiles: {a['blockiness4']:.1f} and {b['blockiness4']:.1f} "
            "grey levels more across their 4x4 tile edges than inside (no grid: about "
            f"{floor:.1f})."
        )
    else:
        text += (
            f"; neither draws visible tiles ({a['blockiness4']:.1f} and "
            f"{b['blockiness4']:.1f} grey levels across 4x4 tile edges, about {floor:.1f} "
            "for error without any grid)."
        )
    return f"{text} {_checker_finding(rows)}"


def _checker_finding(rows: Mapping[str, Mapping]) -> str:
    """The checkerboard half of :func:`finding_sentence`."""
    shown = [t for t, r in rows.items() if shows_checkerboard(r)]
    a, b = rows["A"], rows["B"]
    values = (
        f"A {a['checkerboard']:.2f}, B {b['checkerboard']:.2f} grey levels (floors "
        f"{a['checkerboard_floor']:.2f} and {b['checkerboard_floor']:.2f})"
    )
    if len(shown) == 1:
        return f"{shown[0]} shows a period-2 checkerboard: {values}."
    if shown:
        return f"Both show a period-2 checkerboard: {values}."
    return (
        f"Neither shows a period-2 checkerboard: {values}; it counts from "
        f"{CHECKER_VISIBLE} and {CHECKER_FLOOR_TIMES:g} times its floor."
    )


def overlap_explanation(kernel: int, counts: torch.Tensor) -> tuple[str, str]:
    """What kernel/stride overlap does, in words, for the "Tiles and checkerboards" tab.

    Args:
        kernel: the kernel size of a stride-2 transpose convolution.
        counts: its :func:`convae.compare.overlap_map` (taps per output pixel).

    Returns:
        (the explanation as Markdown, one sentence on this kernel's coverage).
    """
    text = (
        "A transpose convolution with stride 2 paints a copy of its kernel, scaled by each "
        "input value, every 2 output pixels. The map counts how many kernel copies land on "
        "each output pixel (a real `ConvTranspose2d` with all weights 1 on an all-ones 4x4 "
        "input).\n\n"
        "- **k = s (2 here): tiles.** The copies never overlap: each code cell paints its "
        "own block on its own (one code cell per 4x4 block of the picture after both "
        "layers), so the block edges can show: a tiled look.\n"
        "- **k not a multiple of s (3): checkerboards.** The copies overlap unevenly, 1, 2 or "
        "4 taps from pixel to pixel, so even a flat input comes out as a checkerboard unless "
        "training balances the weights exactly.\n"
        "- **k a multiple of s (4): even overlap.** Every output pixel away from the border "
        "gets 4 taps, 2 in each direction: no built-in checkerboard, and the copies blend "
        "neighbouring cells, so no hard tile edges either.\n"
        "- **Resize, then a convolution** (nearest or bilinear) treats every position "
        "alike, which is why the upsample decoder shows neither.\n"
        "- **Sub-pixel convolution** (a convolution to 4x the channels, then PixelShuffle) "
        "has one kernel per position of each 2x2 block: nothing ties the four together, so "
        "at random initialisation they differ (a checkerboard at step 0) unless ICNR "
        "starts all four from one kernel (Aitken et al. 2017).\n\n"
        "(Odena, Dumoulin and Olah 2016, [Deconvolution and Checkerboard Artifacts]"
        "(https://distill.pub/2016/deconv-checkerboard/), Distill.)"
    )
    inside = sorted({int(v) for v in counts[2:-2, 2:-2].flatten().tolist()})
    even = len(inside) == 1
    verdict = (
        f"Kernel {kernel}, stride 2: away from the border every output pixel gets "
        f"{' or '.join(map(str, inside))} taps: "
        + (
            "even coverage, no built-in checkerboard (but no overlap at k = 2: tiles)."
            if even
            else "uneven coverage, a checkerboard is built in."
        )
    )
    return text, verdict
