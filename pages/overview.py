"""Overview: what an autoencoder does, the chosen model's architecture and a first look
at its reconstructions."""

from __future__ import annotations

import streamlit as st

from convae.figures import architecture_image, architecture_markdown, grid_png, image_list
from convae.inspect import architecture, compression
from convae.models import count_parameters
from convae.train import reconstruct
from pages.common import (
    current_data,
    require_model,
    selected_classes,
    show_images,
    table_csv,
)

st.title("ConvAE Explorer")
st.markdown(
    "An **autoencoder** learns to copy an image through a narrow gap. The **encoder** "
    "squeezes a 32x32 colour image (3,072 numbers) into a **code** of just 256 numbers; "
    "the **decoder** has to rebuild the whole picture from that code alone. Because the "
    "code is 12 times smaller than the image, the network cannot store every pixel: it "
    "must learn what matters (edges, colours, rough shapes) and let fine detail go, "
    "which is why its reconstructions look a little blurred. Nobody tells it what to "
    "keep; it learns that only by trying to make its copies match the originals."
)

choice = require_model("overview")
model = choice.model
comp = compression(model)
c, h, w = comp["code_shape"]

cols = st.columns(4)
cols[0].metric("Input", f"{comp['input_values']:,} values")
cols[1].metric("Code", f"{comp['code_values']:,} values", help=f"{c} channels of {h}x{w}")
cols[2].metric("Compression", f"{comp['ratio']:.0f}x smaller")
cols[3].metric(
    "Parameters", f"{count_parameters(model):,}", help=f"{choice.config.decoder} decoder"
)

st.subheader(f"Architecture: {choice.label}")
rows = architecture(model)
# A picture and a Markdown table, not plotly / st.dataframe: this is the first page, and
# those two front-end libraries add ~2 s to a cold start (bench/app_speed.py).
st.image(
    architecture_image(rows),
    width="stretch",
    caption="Block height: image side; width: channels. Grey input, blue encoder, "
    "red code, green decoder.",
)
with st.expander("Layer table", expanded=True):
    st.markdown(architecture_markdown(rows))
    st.download_button(
        "Download the layer table (CSV)",
        table_csv(rows),
        file_name=f"architecture-{choice.config.decoder}.csv",
        mime="text/csv",
        key="overview_table_csv",
        on_click="ignore",
    )
st.caption(
    f"Total: {count_parameters(model):,} trainable parameters. The code is the output "
    f"of pool2 ({c}x{h}x{w}); the decoder grows it back to the image size."
)

st.subheader("First test images and their reconstructions")
data = current_data()
if data is None:
    st.info(
        "No data set is loaded (see the sidebar), so there are no test images to "
        "show. The Layers page can still take your own photo."
    )
    st.stop()
if not choice.fits(data):
    st.warning(
        f"{choice.short} takes {choice.config.in_channels}-channel "
        f"{choice.config.image_size}px images; the data set has "
        f"{data.train.channels}-channel {data.train.image_size}px images. Pick a "
        "matching model or data set in the sidebar."
    )
    st.stop()
classes = selected_classes()
test = data.test.filter(classes).head(10)
if len(test) == 0:
    st.warning(
        f"The test split has no images of {', '.join(classes)}. Pick other classes in the sidebar."
    )
    st.stop()
x = test.floats()
st.caption(
    f"Top: originals (classes: {', '.join(classes)}). Bottom: what {choice.short} "
    "rebuilds from each 256-value code."
)
show_images(image_list(x), [test.classes[i] for i in test.labels.tolist()])
recons = reconstruct(model, x)
show_images(image_list(recons), ["reconstruction"] * len(x))
names = [test.classes[i] for i in test.labels.tolist()]
st.download_button(
    "Download these images (PNG)",
    lambda: grid_png([("original", x), (choice.short, recons)], [names, [""] * len(x)]),
    file_name="overview-reconstructions.png",
    mime="image/png",
    key="overview_download",
    on_click="ignore",
)
