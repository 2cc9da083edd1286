"""Overview: what an autoencoder does, shown with pictures first: test pictures over what
each picked model rebuilds from its code; then how the model is built."""

from __future__ import annotations

import streamlit as st

from convae.figures import architecture_markdown, table_csv
from convae.models import count_parameters
from convae.summary import compression
from pages.glue import caches, draw
from pages.glue.state import picked_models, require_data, selected_classes

N_IMAGES = 8  # 8 to a row: about 120 px each at 1440 px wide, 160 px at 1920

st.title("ConvAE Explorer")
data = require_data()
models = picked_models(data)[:2]
comp = compression(models[0].model)
c, h, w = comp["code_shape"]
draw.takeaway(
    f"An autoencoder squeezes each picture into a short code and rebuilds it from that code "
    f"alone. Top: test pictures ({comp['input_values']:,} numbers each). Below: what each "
    f"model rebuilt from <b>{comp['code_values']:,} numbers</b>, "
    f"{comp['ratio']:.0f} times fewer."
)

test = data.test.filter(selected_classes()).head(N_IMAGES)
if len(test) == 0:
    st.warning(
        f"The test split has no pictures of {', '.join(selected_classes())}. Pick other "
        "classes in the sidebar."
    )
    st.stop()
x = test.floats()
classes = [test.classes[i] for i in test.labels.tolist()]
pictures = caches.split_key(data, "test", selected_classes(), N_IMAGES)
recons = [(m.name, caches.reconstruction(m.digest, m.model, x, pictures)) for m in models]
rows = draw.recon_rows(x, "test", range(len(x)), classes, recons)
draw.pictures(rows, columns=N_IMAGES, title="Test pictures and their reconstructions")
st.caption(
    "Under each rebuilt picture: its PSNR, how close it is to the original (higher is "
    "closer; about 20 dB looks soft, 30 dB is hard to tell apart). The Reconstructions page "
    "shows more, sorted best or worst first."
)
draw.download_png(rows, "overview-reconstructions.png", "overview_download")

model = models[0]
st.subheader(f"Inside {model.name}")
cols = st.columns(4)
cols[0].metric("Input", f"{comp['input_values']:,} numbers")
cols[1].metric("Code", f"{comp['code_values']:,} numbers", help=f"{c} channels of {h}x{w}")
cols[2].metric("Compression", f"{comp['ratio']:.0f}x smaller")
cols[3].metric(
    "Weights",
    f"{count_parameters(model.model):,}",
    help=f"Learned parameters of the {model.config.decoder} decoder model.",
)
layer_rows, diagram = caches.architecture(model)
# A picture and a Markdown table, not plotly / st.dataframe: this is the first page, and
# those two front-end libraries add ~2 s to a cold start (bench/app_speed.py).
st.image(
    diagram,
    width="stretch",
    alt="Block diagram: the picture shrinks through conv1, pool1, conv2 and pool2 to the "
    f"{c}x{h}x{w} code, then grows back through the decoder to {model.config.in_channels}"
    f"x{model.config.image_size}x{model.config.image_size}.",
    caption="Block height: picture side; width: channels. Grey input, blue encoder, red "
    "code, green decoder.",
)


def _layer_table() -> None:
    st.markdown(architecture_markdown(layer_rows))
    st.download_button(
        "Download the layer table (CSV)",
        table_csv(layer_rows),
        file_name=f"architecture-{model.config.decoder}.csv",
        mime="text/csv",
        key="overview_table_csv",
        on_click="ignore",
    )
    st.caption(
        f"Total: {count_parameters(model.model):,} trainable parameters. The code is the "
        f"output of pool2 ({c}x{h}x{w}); the decoder grows it back to the picture's size."
    )


draw.details("Layer by layer: shapes and parameters", _layer_table)
