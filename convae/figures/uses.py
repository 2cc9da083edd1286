"""Figure builders for the Uses pages (Denoise, Repair, Code, Style): plain plotly, no
Streamlit, so each is built and checked in tests like the rest of convae.figures."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from . import RUN_COLOURS

_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2))


def _titled(fig: go.Figure, title: str, height: int, **axes: str) -> go.Figure:
    """``fig`` with its title, height and axis titles (e.g. yaxis_title=...), in the
    layout these charts share (legend below)."""
    fig.update_layout(title=dict(text=title, x=0), height=height, **axes, **_LAYOUT)
    return fig


def psnr_curve_figure(
    strengths: Sequence[float],
    curves: dict[str, list[float]],
    x_title: str,
    marker: float | None = None,
) -> go.Figure:
    """PSNR against noise strength, one line per curve (the noisy input dashed grey).

    Args:
        marker: the strength now chosen on the page, drawn as a vertical line.
    """
    fig = go.Figure()
    # One colour per model, round again past the palette: the shipped family alone has
    # more models than colours (each curve is named in the legend and the hover).
    colours = itertools.cycle(RUN_COLOURS)
    for name, ys in curves.items():
        is_input = name == "noisy input"
        # 100 dB is PSNR's cap for "identical" (no noise on the input): leave it out so
        # the lines that matter keep the height of the chart.
        shown = [y if y < 99 else None for y in ys]
        fig.add_scatter(
            x=list(strengths),
            y=shown,
            name=name,
            mode="lines+markers",
            line=dict(
                dash="dash" if is_input else "solid", color="#7f7f7f" if is_input else next(colours)
            ),
            hovertemplate=f"{name}<br>{x_title} %{{x:.3g}}<br>%{{y:.2f}} dB<extra></extra>",
        )
    if marker is not None:
        fig.add_vline(x=marker, line=dict(color="#d62728", width=1, dash="dot"))
    _titled(fig, "PSNR against the clean image", 380, xaxis_title=x_title, yaxis_title="PSNR (dB)")
    finite = [y for ys in curves.values() for y in ys if y < 99]
    if finite:
        fig.update_yaxes(range=[min(finite) - 1, max(finite) + 1])
    return fig


def gram_figure(grams: dict[str, torch.Tensor], layer: str) -> go.Figure:
    """Gram matrices (C, C) of one layer for several images side by side, one shared
    colour scale so their strengths compare."""
    names = list(grams)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.04)
    hi = max(float(g.max()) for g in grams.values()) or 1.0
    lo = min(0.0, min(float(g.min()) for g in grams.values()))
    for i, name in enumerate(names, start=1):
        g = grams[name].detach().float().cpu().numpy()
        fig.add_heatmap(
            z=g,
            zmin=lo,
            zmax=hi,
            colorscale="Viridis",
            showscale=i == 1,
            colorbar=dict(thickness=12, title=dict(text="G", side="right")),
            hovertemplate="channels %{y} x %{x}<br>G = %{z:.4f}<extra></extra>",
            row=1,
            col=i,
        )
        fig.update_xaxes(row=1, col=i, constrain="domain", title_text="channel")
        # Channel numbers on the first map only: the maps share their axes, and the
        # others' labels would sit on the neighbouring map's edge.
        fig.update_yaxes(
            row=1,
            col=i,
            autorange="reversed",
            scaleanchor=f"x{i if i > 1 else ''}",
            constrain="domain",
            showticklabels=i == 1,
            title_text="channel" if i == 1 else None,
        )
    c = next(iter(grams.values())).shape[0]
    fig.update_layout(
        title=dict(text=f"Gram matrix G = F F<sup>T</sup> / positions of {layer} ({c} x {c})", x=0),
        height=330,
        margin=dict(l=10, r=10, t=80, b=10),
    )
    return fig


def rate_distortion_figure(rd: dict, image_point: list[dict] | None = None) -> go.Figure:
    """Mean PSNR against bytes per image: the code at several bit depths and JPEG
    (entropy-coded scan, and whole file) at several qualities; log byte axis."""
    fig = go.Figure()
    code = rd["code"]
    fig.add_scatter(
        x=[p["bytes"] for p in code],
        y=[p["psnr"] for p in code],
        mode="lines+markers+text",
        name="autoencoder code",
        text=[{32: "f32", 16: "f16"}.get(p["bits"], f"{p['bits']}b") for p in code],
        textposition="top center",
        line=dict(color=RUN_COLOURS[0]),
        hovertemplate="code %{text}<br>%{x:.0f} B<br>%{y:.2f} dB<extra></extra>",
    )
    jp = rd["jpeg"]
    for key, name, dash in (
        ("scan_bytes", "JPEG (scan only)", "solid"),
        ("file_bytes", "JPEG (whole file)", "dot"),
    ):
        fig.add_scatter(
            x=[p[key] for p in jp],
            y=[p["psnr"] for p in jp],
            mode="lines+markers",
            name=name,
            text=[f"q{p['quality']}" for p in jp],
            line=dict(color=RUN_COLOURS[1], dash=dash),
            hovertemplate=name + " %{text}<br>%{x:.0f} B<br>%{y:.2f} dB<extra></extra>",
        )
    if image_point:
        fig.add_scatter(
            x=[p["bytes"] for p in image_point],
            y=[p["psnr"] for p in image_point],
            mode="markers",
            name="this image",
            text=[p["form"] for p in image_point],
            marker=dict(symbol="x", size=10, color="#d62728"),
            hovertemplate="%{text}<br>%{x:.0f} B<br>%{y:.2f} dB<extra></extra>",
        )
    fig.add_vline(
        x=3072,
        line=dict(color="#7f7f7f", dash="dash"),
        annotation_text="raw 3,072 B",
        annotation_position="top left",
    )
    fig.update_xaxes(type="log", title_text="bytes per image (log scale)")
    return _titled(fig, "Rate and distortion over test images", 420, yaxis_title="PSNR (dB)")


def loss_curve_figure(history: list[dict], alpha: float, beta: float) -> go.Figure:
    """Style-transfer losses per step (log scale): weighted content, weighted style, total."""
    steps = [h["step"] for h in history]
    fig = go.Figure()
    for name, values, colour in (
        ("total", [h["total"] for h in history], "#000000"),
        ("alpha x content", [alpha * h["content"] for h in history], RUN_COLOURS[0]),
        ("beta x style", [beta * h["style"] for h in history], RUN_COLOURS[1]),
    ):
        fig.add_scatter(x=steps, y=values, name=name, line=dict(color=colour))
    fig.update_yaxes(type="log", title_text="loss")
    return _titled(fig, "Loss while the image is optimised", 330, xaxis_title="step")
