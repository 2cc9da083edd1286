"""Figures of the code space (the "Code space" page): maps of a split's pictures, the probe
chart, and the tables and sentences that go with them.

A map is a WebGL scatter (plotly ``Scattergl``): 10,000 points pan, zoom and take a lasso
smoothly in a browser, where an SVG scatter of that size stalls. Every point carries its
picture's index in the split (``customdata``), so a click or a lasso names pictures, not
positions in a trace.

Colours are readable with colour-vision deficiency and never the only carrier:

* by class: the Okabe-Ito palette (Okabe and Ito 2008, "Color Universal Design"), eight
  colours told apart by every common form of colour blindness, and a marker shape per
  class on top, so ten classes stay distinct in colour *and* shape; the legend names them;
* by a value (PSNR, the 4x4-tile measure): viridis, perceptually uniform and readable in
  grey, with a colour bar whose title says what is measured and in which unit.

Each figure comes with a one-line summary in words (what the chart shows, readable
without seeing it): :func:`map_summary`, :func:`probe_summary`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import torch

from .maps import SEQUENTIAL

# Okabe-Ito without its white: black, orange, sky blue, bluish green, yellow, blue,
# vermillion, reddish purple.
OKABE_ITO = (
    "#000000",
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
)
COLOUR_NAMES = (
    "black",
    "orange",
    "sky blue",
    "bluish green",
    "yellow",
    "blue",
    "vermillion",
    "reddish purple",
)
# Shapes WebGL scatters draw, distinct at 5-6 px; the 9th and 10th class repeat a colour
# (black, orange) with another shape.
SYMBOLS = (
    "circle",
    "square",
    "diamond",
    "triangle-up",
    "x",
    "cross",
    "triangle-down",
    "star",
    "hexagon",
    "pentagon",
)
POINT_SIZE = 5
OPACITY = 0.7  # the classes drawn last must not hide the others entirely
MAP_HEIGHT = 460
# The three probe series: blue, orange and bluish green of Okabe-Ito.
PROBE_COLOURS = ("#0072B2", "#E69F00", "#009E73")


def class_style(k: int) -> tuple[str, str]:
    """(colour, marker symbol) of class ``k``: a pair no other of the first 40 classes has."""
    return OKABE_ITO[k % len(OKABE_ITO)], SYMBOLS[k % len(SYMBOLS)]


def class_legend_words(classes: Sequence[str]) -> str:
    """The class legend in words: "airplane: black circle; automobile: orange square; ..."."""
    words = []
    for k, name in enumerate(classes):
        shape = SYMBOLS[k % len(SYMBOLS)].replace("-", " ")
        words.append(f"{name}: {COLOUR_NAMES[k % len(COLOUR_NAMES)]} {shape}")
    return "; ".join(words)


def shown_indices(
    labels: torch.Tensor, classes: Sequence[str], picked: Sequence[str]
) -> torch.Tensor:
    """Indices (ascending) of the pictures whose class is one of ``picked``.

    Args:
        labels: (N,) the split's classes.
        classes: class names, index = label.
        picked: the class names to keep (e.g. the sidebar's).
    """
    ids = torch.tensor([k for k, c in enumerate(classes) if c in set(picked)], dtype=torch.long)
    return torch.isin(labels.long(), ids).nonzero().flatten()


def _axis_titles(method: str, shares: Sequence[float]) -> tuple[str, str]:
    if method == "pca" and len(shares) >= 2:
        return tuple(  # type: ignore[return-value]
            f"axis {i + 1}: {100 * s:.0f} % of the variance" for i, s in enumerate(shares[:2])
        )
    if method == "pca":
        return "axis 1", "axis 2"
    return "t-SNE 1", "t-SNE 2"


def map_figure(
    coords: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    shown: torch.Tensor,
    method: str = "pca",
    shares: Sequence[float] = (),
    values: torch.Tensor | None = None,
    value_title: str = "",
    split: str = "test",
    height: int = MAP_HEIGHT,
) -> go.Figure:
    """A split's pictures as points in 2-D, coloured by class or by a value.

    Args:
        coords: (N, 2) every picture's position (row i = picture i of the split).
        labels: (N,) their classes.
        classes: class names, index = label.
        shown: indices of the pictures to draw (e.g. the sidebar's classes), ascending.
        method: "pca" (axes titled with their share of the variance) or "tsne".
        shares: PCA only: the share of the variance along each axis.
        values: (N,) a value per picture to colour by (None: colour by class).
        value_title: the colour bar's title, with its unit ("PSNR of A (dB)").
        split: the split's name for the hover text.
        height: the figure's height in px.

    Returns:
        A plotly figure of ``Scattergl`` traces; each point's ``customdata`` is its index
        in the split.
    """
    xy = coords.float().numpy()
    idx = shown.long().numpy()
    lab = labels.long().numpy()
    v = None if values is None else values.float().numpy()
    fig = go.Figure()
    # One trace per class in both colourings: the legend names the classes and their
    # shapes, and customdata stays a plain integer array (sent as binary, not as text).
    for k, name in enumerate(classes):
        keep = idx[lab[idx] == k]
        if len(keep) == 0:
            continue
        colour, symbol = class_style(k)
        marker: dict = {"size": POINT_SIZE, "symbol": symbol, "opacity": OPACITY}
        hover = f"{split} picture %{{customdata}}: {name}"
        if v is None:
            marker["color"] = colour
        else:
            marker.update(color=v[keep], coloraxis="coloraxis")
            hover += f"<br>{value_title}: %{{marker.color:.2f}}"
        fig.add_trace(
            go.Scattergl(
                x=xy[keep, 0],
                y=xy[keep, 1],
                mode="markers",
                name=name,
                customdata=keep,
                marker=marker,
                hovertemplate=hover + "<extra></extra>",
            )
        )
    _map_layout(fig, method, shares, height, value_title if v is not None else None)
    return fig


def _map_layout(
    fig: go.Figure, method: str, shares: Sequence[float], height: int, value_title: str | None
) -> None:
    """The map's axes, legend and (when coloured by a value) colour bar."""
    xt, yt = _axis_titles(method, shares)
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        # Below the map, in rows: beside it the legend took a third of a half-width map.
        legend={
            "itemsizing": "constant",
            "title": {"text": "class"},
            "orientation": "h",
            "y": -0.08,
            "yanchor": "top",
        },
        xaxis={"title": xt, "showticklabels": False, "zeroline": False},
        yaxis={"title": yt, "showticklabels": False, "zeroline": False},
        plot_bgcolor="white",
        hovermode="closest",
        uirevision=method,  # keep the zoom while the colouring changes
    )
    if value_title is not None:
        fig.update_layout(
            coloraxis={
                "colorscale": SEQUENTIAL,
                "colorbar": {"title": {"text": value_title, "side": "right"}, "x": 1.02},
            },
            legend={"title": {"text": "shape: class"}},
        )


def selected_indices(points: Sequence[Mapping]) -> list[int]:
    """The split indices of the points a click or a lasso selected (from the figure's
    ``customdata``), in order, without repeats.

    Args:
        points: the plotly selection's points (Streamlit's ``event.selection.points``).
    """
    out: list[int] = []
    seen: set[int] = set()
    for p in points:
        data = p.get("customdata")
        if data is None:
            continue
        first = data[0] if isinstance(data, list | tuple) else data
        try:
            i = int(first)
        except (TypeError, ValueError):
            continue
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def map_summary(
    n: int,
    classes: Sequence[str],
    space: str,
    method: str,
    shares: Sequence[float] = (),
    values: torch.Tensor | None = None,
    value_title: str = "",
    split: str = "test",
) -> str:
    """What a map shows, in one or two sentences.

    Args:
        n: points drawn.
        classes: the classes drawn.
        space: what was projected ("the 256-number codes of cifar10-transpose", "the
            3,072 raw pixel values").
        method: "pca" or "tsne".
        shares: PCA: the share of the variance along each axis.
        values: the colouring values of the drawn points, or None (by class).
        value_title: what they are, with the unit.
        split: the split's name.
    """
    if method == "pca":
        held = sum(shares[:2]) if shares else float("nan")
        how = "placed by PCA (the two directions along which they vary most"
        how += f", {100 * held:.0f} % of the variance)" if not math.isnan(held) else ")"
    else:
        how = (
            "placed by t-SNE (pictures close in the code stay close on the map; distances "
            "between groups mean little)"
        )
    head = f"{n:,} {split} pictures, one point each, from {space}, {how}."
    if values is None or len(values) == 0:
        return (
            f"{head} Colour and shape show the class ({len(classes)} classes, named in the legend)."
        )
    v = values.float()
    return (
        f"{head} Colour shows {value_title}: from {float(v.min()):.1f} (dark purple) to "
        f"{float(v.max()):.1f} (yellow), median {float(v.median()):.1f}."
    )


# ----------------------------------------------------------------- the probe


def probe_figure(results: Mapping[str, object], chance: float, height: int = 380) -> go.Figure:
    """Accuracy per class of each probe (grouped bars), with chance as a dashed line.

    Args:
        results: name -> :class:`convae.codespace.probe.ProbeResult` ("code", "pixels",
            "PCA 256 of pixels").
        chance: the accuracy of always answering the most frequent class.
        height: the figure's height in px.
    """
    fig = go.Figure()
    for (name, r), colour in zip(results.items(), PROBE_COLOURS * 3, strict=False):
        per = [100 * v if not math.isnan(v) else None for v in r.per_class]
        fig.add_trace(
            go.Bar(
                x=list(r.classes),
                y=per,
                name=f"{name} ({r.numbers:,} numbers): {100 * r.accuracy:.0f} %",
                marker_color=colour,
                hovertemplate="%{x}: %{y:.1f} %<extra>" + name + "</extra>",
            )
        )
    fig.add_hline(
        y=100 * chance,
        line_dash="dash",
        line_color="#444444",
        annotation_text=f"chance {100 * chance:.0f} %",
        annotation_position="top left",
    )
    fig.update_layout(
        barmode="group",
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        yaxis={"title": "test pictures classified right (%)", "rangemode": "tozero"},
        legend={"orientation": "h", "y": 1.12},
        plot_bgcolor="white",
    )
    return fig


def probe_summary(results: Mapping[str, object], chance: float) -> str:
    """The per-class chart in words: each probe's best and worst class, and chance."""
    parts = []
    for name, r in results.items():
        pairs = [(v, c) for v, c in zip(r.per_class, r.classes, strict=True) if not math.isnan(v)]
        if not pairs:
            continue
        best, worst = max(pairs), min(pairs)
        parts.append(
            f"{name}: best {best[1]} {100 * best[0]:.0f} %, worst {worst[1]} {100 * worst[0]:.0f} %"
        )
    return "Accuracy per class. " + "; ".join(parts) + f"; chance is {100 * chance:.0f} %."


def probe_rows(results: Mapping[str, object], chance: float) -> list[dict]:
    """The probe table: one row per probe and one for chance."""
    rows = [
        {
            "probe on": name,
            "numbers per picture": r.numbers,
            "test accuracy (%)": 100 * r.accuracy,
            "trained on": f"{r.n_train:,} pictures",
            "fit": "converged" if r.converged else f"stopped at {r.iterations} iterations",
        }
        for name, r in results.items()
    ]
    rows.append(
        {
            "probe on": "chance (always the commonest class)",
            "numbers per picture": None,
            "test accuracy (%)": 100 * chance,
            "trained on": "",
            "fit": "",
        }
    )
    return rows


# ---------------------------------------------------------------- channels


def switch_off_rows(reports: Mapping[str, object]) -> list[dict]:
    """One row per code channel: the PSNR each model keeps and loses with it switched off.

    Args:
        reports: model label ("A: cifar10-transpose") -> its
            :class:`convae.codespace.cached.ChannelReport`.
    """
    channels = max((len(r.switch_off) for r in reports.values()), default=0)
    rows = []
    for k in range(channels):
        row: dict = {"channel": k}
        for label, r in reports.items():
            if k < len(r.switch_off):
                row[f"{label}: PSNR drop (dB)"] = r.switch_off[k].drop
                row[f"{label}: PSNR with it off (dB)"] = r.switch_off[k].psnr
        rows.append(row)
    return rows


def correlation_rows(correlations: Mapping[str, Sequence[float]]) -> list[dict]:
    """The correlation table: one row per channel, Pearson's r with each property."""
    channels = max((len(v) for v in correlations.values()), default=0)
    return [
        {"channel": k, **{name: rs[k] for name, rs in correlations.items()}}
        for k in range(channels)
    ]
