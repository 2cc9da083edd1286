"""Code cells: what one of the code's 256 numbers paints in each decoder, which input
pixels it comes from, and the arithmetic of one output pixel, checkable by hand.

The cell and pixel controls are an ``st.fragment``: a click reruns only them.
"""

from __future__ import annotations

import streamlit as st
import torch

from convae.catalog import ModelEntry
from convae.cells import cell_footprint, encode_image, pixel_arithmetic, receptive_field
from convae.figures.cells import (
    code_cells_figure,
    footprint_figure,
    pixel_waterfall,
    receptive_field_figure,
)
from convae.models import SEED_DECODERS
from pages.glue import draw
from pages.glue.choose import pick_image, test_images
from pages.glue.state import available_models, require_data, selected_classes, selected_models

st.title("Code cells")
draw.takeaway(
    "The code is 256 numbers, 4 channels of 8x8 cells. Nudge one cell and see what it "
    "paints: the <b>transpose</b> decoder paints a hard 4x4 tile of its own, the "
    "<b>upsample</b> decoder a soft patch that overlaps its neighbours'."
)
data = require_data()


def _per_decoder() -> dict[str, ModelEntry]:
    """Two models of different decoders that take these pictures: the sidebar's first two
    picks, else plain models of the course's two decoders (transpose, upsample)."""
    fitting = [m for m in selected_models() if m.fits(data)]
    fitting += [
        m
        for dec in SEED_DECODERS
        for m in available_models().values()
        if m.fits(data) and m.task == "plain" and m.config.decoder == dec and m not in fitting
    ]
    out: dict[str, ModelEntry] = {}
    for m in fitting:
        if m.config.decoder not in out and len(out) < 2:
            out[m.config.decoder] = m
    return out


models = _per_decoder()
if not models:
    st.info("Pick a model for these pictures in the sidebar (or train one).")
    st.stop()
images = test_images(data, selected_classes())
first = next(iter(models.values()))
h, w = first.config.code_shape[1:]
side = first.config.image_size

p1, _ = st.columns([1, 3])
with p1:
    x, cls = pick_image("cells", images)
codes = {dec: encode_image(m.model, x[0]) for dec, m in models.items()}


def _cell_from_click(event) -> None:
    """A click on the code grid picks that cell (its customdata: channel, row, col)."""
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points:
        ch, r, c = (int(v) for v in points[0]["customdata"][:3])
        st.session_state.update(cells_channel=ch, cells_row=r, cells_col=c)


@draw.fragment
def cell_view() -> None:
    st.subheader("One code cell")
    c1, c2, c3, c4 = st.columns([1, 1, 1, 2])
    ch = c1.selectbox("Channel", list(range(4)), key="cells_channel", persist_state="session")
    r = c2.selectbox("Row", list(range(h)), index=h // 2, key="cells_row", persist_state="session")
    c = c3.selectbox(
        "Column", list(range(w)), index=w // 2, key="cells_col", persist_state="session"
    )
    delta = c4.slider(
        "Nudge the cell by",
        -2.0,
        2.0,
        1.0,
        0.1,
        key="cells_delta",
        persist_state="session",
        help="Added to that one number of the code, everything else unchanged.",
    )
    cell = (int(ch), int(r), int(c))
    prints = {
        dec: cell_footprint(models[dec].model, codes[dec], cell, float(delta)) for dec in models
    }
    pics, caps = [x[0]], [f"input ({cls})"]
    for dec, fp in prints.items():
        pics += [fp.before, fp.after]
        caps += [f"{dec}", f"{dec}, cell nudged"]
    draw.pictures(
        [draw.row("", torch.stack(pics), caps, [f"{c}, test picture: {cls}" for c in caps])],
        columns=len(pics),
        max_px=200,
        title="The picture, and each decoder's output before and after the nudge",
    )
    left, right = st.columns([1, 1.6], gap="large")
    with left:
        dec0 = next(iter(models))
        event = draw.chart(
            code_cells_figure(codes[dec0], cell),
            key="cells_code",
            on_select="rerun",
            selection_mode="points",
        )
        _cell_from_click(event)
        st.caption(
            f"The code of test picture {st.session_state.get('cells_index', 0)} ({cls}) "
            f"in {models[dec0].name}: click a cell, or choose it above. The outlined one "
            f"is channel {ch}, row {r}, column {c}."
        )
    with right:
        draw.chart(
            footprint_figure(prints),
            key="cells_footprint",
            summary=" ".join(
                f"{dec}: the nudge changes the pixels in rows {b[0]}-{b[2] - 1}, columns "
                f"{b[1]}-{b[3] - 1}."
                if (b := prints[dec].changed_box(1e-6))
                else f"{dec}: the nudge changes nothing (that cell's path is switched off)."
                for dec in prints
            ),
        )
    field = receptive_field(models[dec0].model, x[0], cell)
    draw.chart(
        receptive_field_figure(x[0], field),
        key="cells_field",
        summary=f"Where the cell's value comes from: the {field.box[2] - field.box[0]}x"
        f"{field.box[3] - field.box[1]} input window the encoder can see for it "
        "(outlined), and how strongly each input pixel moves the value (its gradient).",
    )


@draw.fragment
def pixel_view() -> None:
    st.subheader("One output pixel, by hand")
    q1, q2, q3, _ = st.columns([1, 1, 1, 2])
    pr = q1.number_input(
        "Pixel row", 0, side - 1, side // 2, key="cells_px_row", persist_state="session"
    )
    pc = q2.number_input(
        "Pixel column", 0, side - 1, side // 2, key="cells_px_col", persist_state="session"
    )
    planes = ["red", "green", "blue"] if data.test.channels == 3 else ["grey"]
    pch = q3.selectbox(
        "Colour",
        list(range(len(planes))),
        key="cells_px_channel",
        format_func=lambda i: planes[i],
        persist_state="session",
    )
    pixel = (int(pr), int(pc), int(pch))
    cols = st.columns(len(models), gap="large")
    for col, (dec, m) in zip(cols, models.items(), strict=True):
        if dec not in SEED_DECODERS:
            col.info(
                f"{m.name} ({dec}): the sums are worked out by hand for the course's two "
                "decoders, transpose and upsample; the footprint above works for every one."
            )
            continue
        arith = pixel_arithmetic(m.model, codes[dec], pixel)
        with col:
            st.markdown(f"**{dec}: {m.name}** reads {len(arith.code_cells())} code cells")
            draw.chart(
                pixel_waterfall(arith),
                key=f"cells_waterfall_{dec}",
                summary=f"{len(arith.output.terms)} products plus a bias make "
                f"{arith.logit:.3f}; the sigmoid turns it into {arith.value:.3f}, "
                f"{arith.value * 255:.0f} of 255 in {planes[pixel[2]]}.",
            )
            draw.table(
                arith.output.rows(),
                {"value": "%.4f", "weight": "%.4f", "product": "%.4f"},
                key=f"cells_rows_{dec}",
            )


cell_view()
pixel_view()
