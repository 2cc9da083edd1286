"""Code: the 4x8x8 code of an image, edited live, interpolated, and priced in bytes."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

from convae.codec import edit_code, interpolate, ledger, rate_distortion
from convae.figures import activation_grid, image_list
from convae.figures.tasks import rate_distortion_figure
from convae.metrics import psnr
from pages.common import download_png, require_model, selected_classes, show_images
from pages.tasks_common import pick_image, require_data, test_images

RD_IMAGES = 200

st.title("Code")
st.caption(
    "The encoder squeezes an image into 4 maps of 8x8 numbers; the decoder rebuilds "
    "the image from them alone. Change the numbers and watch the picture change, walk "
    "from one image's code to another's, and see what the code costs in bytes."
)
data = require_data()
choice = require_model("code")
if not choice.fits(data):
    st.info(f"{choice.short} takes other images than this data set; pick a model for it.")
    st.stop()
model = choice.model
images = test_images(data, selected_classes())

# ---------------------------------------------------------------- editing
st.subheader("Edit the code")
left, right = st.columns([1, 3], gap="large")
with left:
    x, cls = pick_image("code", images)
    with torch.no_grad():
        z = model.encode(x)
    c, h, w = z.shape[1:]
    channel = st.selectbox(
        "Channel to edit",
        list(range(c)),
        key="code_channel",
        format_func=lambda i: f"ch {i}",
        persist_state="session",
    )
    scale = st.slider(
        "Scale the channel (0 zeroes it)",
        0.0,
        3.0,
        1.0,
        0.05,
        key="code_scale",
        persist_state="session",
    )
    paint = st.toggle("Paint a value", key="code_paint", persist_state="session")
    rect, value = None, 0.0
    if paint:
        zmax = float(z.max())
        value = st.slider(
            "Value",
            0.0,
            round(max(2 * zmax, 1.0), 1),
            round(zmax, 1),
            key="code_value",
            persist_state="session",
        )
        rows = st.slider("Rows", 0, h, (2, 4), key="code_rows", persist_state="session")
        cols = st.slider("Columns", 0, w, (2, 4), key="code_cols", persist_state="session")
        rect = (rows[0], cols[0], rows[1] - rows[0], cols[1] - cols[0])
    edited = edit_code(z, channel, scale, rect, value)
    with torch.no_grad():
        before, after = model.decode(z), model.decode(edited)
    edit_row = (
        [image_list(t, 128)[0] for t in (x, before, after)],
        [cls, f"decoded {float(psnr(before, x)[0]):.1f} dB", "from the edit"],
    )
    for col, img, cap in zip(st.columns(3), *edit_row, strict=True):
        col.image(img, caption=cap, width="stretch")
    download_png([("", *edit_row)], "code-edit.png", "code_edit_download")
with right:
    show_edit = st.toggle(
        "Show the edited code", True, key="code_show_edit", persist_state="session"
    )
    st.plotly_chart(
        activation_grid(edited if show_edit else z, "code (pool2)", "layer", tile_px=130),
        key="code_maps",
    )
    changed = int((edited != z).sum())
    st.caption(f"{changed} of {z.numel()} code values changed. Hover a cell for its value.")

# ------------------------------------------------------------ interpolation
st.subheader("Walk from one code to another")
i1, i2, i3 = st.columns([1, 1, 2])
with i1:
    xa, cls_a = pick_image("code", images, "From image", suffix="_a")
with i2:
    if "code_index_b" not in st.session_state:
        st.session_state["code_index_b"] = min(1, len(images) - 1)
    xb, cls_b = pick_image("code", images, "To image", suffix="_b")
with i3:
    frames = st.slider("Frames", 3, 12, 8, key="code_frames", persist_state="session")
    t = st.slider(
        "Position t (0: from, 1: to)", 0.0, 1.0, 0.5, 0.05, key="code_t", persist_state="session"
    )
with torch.no_grad():
    za, zb = model.encode(xa), model.encode(xb)
    path = interpolate(za, zb, frames)
    strip = model.decode(path)
    at_t = model.decode((1 - t) * za + t * zb)
ts = torch.linspace(0, 1, frames)
fade = (1 - ts).reshape(-1, 1, 1, 1) * xa + ts.reshape(-1, 1, 1, 1) * xb
t_caps = [f"t={v:.2f}" for v in ts.tolist()]
walk = [("code path", image_list(strip), t_caps), ("cross-fade", image_list(fade), t_caps)]
st.markdown(f"**Decoded along the code path** ({cls_a} to {cls_b})")
show_images(*walk[0][1:], per_row=frames)
st.markdown(
    "**Pixel cross-fade** for comparison: the code path moves shapes and colours "
    "through what the decoder can draw; a cross-fade only overlays two pictures."
)
show_images(*walk[1][1:], per_row=frames)
download_png(walk, f"code-walk-{cls_a}-{cls_b}.png", "code_walk_download")
g1, g2, _ = st.columns([1, 1, 4])
g1.image(image_list(at_t, 160)[0], caption=f"decoded at t = {t:.2f}", width="stretch")
g2.image(
    image_list((1 - t) * xa + t * xb, 160)[0], caption=f"cross-fade at t = {t:.2f}", width="stretch"
)

# ------------------------------------------------------------------ ledger
st.subheader("What the code costs")
rows = ledger(model, x)
table = pd.DataFrame(rows).rename(
    columns={"form": "stored as", "bytes": "bytes", "psnr": "PSNR (dB)"}
)
raw = images.channels * images.image_size**2  # 3,072 on CIFAR-10, 784 on Fashion-MNIST
table["vs raw"] = [f"{raw / b:.1f}x smaller" if b < raw else "-" for b in table["bytes"]]
st.dataframe(table, hide_index=True, key="code_ledger")
st.caption(
    f"For the image picked above ({cls}). Quantised codes store their min and max "
    "too (8 bytes). JPEG is matched to the 8-bit code's size on its entropy-coded scan "
    "(its headers and tables, like the decoder's weights, are shared by every image); "
    "the whole file is larger. The data set itself is a JPEG (quality 75) copy, and "
    "re-encoding it near quality 75 would replay its own artifacts almost exactly, "
    "so JPEG qualities stop at 70."
)


@st.cache_data(show_spinner="Measuring rate and distortion...", max_entries=8)
def _rd(_model, model_id: tuple, source: str, classes: tuple) -> dict:
    xs = test_images(data, list(classes)).floats(slice(0, RD_IMAGES))
    return rate_distortion(_model, xs)


rd = _rd(model, (choice.key, id(model)), data.source, tuple(selected_classes()))
st.plotly_chart(rate_distortion_figure(rd, rows[1:]), key="code_rd")
st.caption(
    f"Means over the first {RD_IMAGES} test images of the chosen classes (PSNR of the "
    "mean MSE); the crosses are the image above. The code cannot get better than the "
    "model's reconstruction however many bits it gets; JPEG keeps improving with bytes."
)
