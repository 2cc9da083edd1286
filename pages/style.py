"""Style: Gram matrices of the encoder's layers, and style transfer with them."""

from __future__ import annotations

import streamlit as st
import torch

from convae.figures import image_list
from convae.figures.tasks import gram_figure, loss_curve_figure
from convae.images import ImageDecodeError, image_to_input
from convae.style import (
    EncoderFeatures,
    StyleConfig,
    VGGFeatures,
    VGGWeightsError,
    layer_grams,
    style_transfer,
    vgg_weights_path,
)
from convae.train import reconstruct
from pages.common import download_png, require_model, selected_classes, selected_models
from pages.tasks_common import pick_image, require_data, test_images

SIZES = (32, 64, 96)
BETAS = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp"]

st.title("Style")
st.caption(
    "A layer's Gram matrix G = F F^T (F: channels x positions) says which channels "
    "fire together, wherever in the picture: texture and colour, not layout. Style "
    "transfer (Gatys et al. 2016, as in the course notes) paints an image whose "
    "activations match one image (content) and whose Gram matrices match another "
    "(style)."
)
data = require_data()
choice = require_model("style")
if not choice.fits(data):
    st.info(f"{choice.short} takes other images than this data set; pick a model for it.")
    st.stop()
images = test_images(data, selected_classes())


@st.cache_resource(show_spinner=False, max_entries=8)
def _encoder(_model, model_id: tuple) -> EncoderFeatures:
    return EncoderFeatures(_model)


@st.cache_resource(show_spinner="Loading VGG-19 from the local torch hub cache...")
def _vgg(path: str) -> VGGFeatures:
    return VGGFeatures(path)


encoder = _encoder(choice.model, (choice.key, id(choice.model)))

# --------------------------------------------------------------- Gram matrices
st.subheader("Gram matrices")
g1, g2 = st.columns([1, 3], gap="large")
with g1:
    x, cls = pick_image("style", images)
    layer = st.selectbox(
        "Layer",
        encoder.layers,
        index=encoder.layers.index("relu1"),
        key="style_gram_layer",
        persist_state="session",
    )
models = [m for m in selected_models() if m.fits(data)] or [choice]
shown = {f"original ({cls})": x}
decs = [m.config.decoder for m in models[:3]]
for m in models[:3]:
    tag = m.config.decoder if decs.count(m.config.decoder) == 1 else m.short
    shown[f"{tag} output"] = reconstruct(m.model, x)
grams = {name: layer_grams(encoder, img, [layer])[layer] for name, img in shown.items()}
with g1:
    for col, img in zip(st.columns(len(shown)), shown.values(), strict=True):
        col.image(image_list(img, 96)[0], width="stretch")
    # One line under the row: captions under pictures this small break mid-word.
    st.caption("Left to right: " + ", ".join(shown) + ".")
with g2:
    st.plotly_chart(gram_figure(grams, layer), key="style_gram")
    st.caption(
        f"All measured with {choice.short}'s encoder. A blurry reconstruction keeps "
        "the diagonal (how strongly each channel fires) but loses off-diagonal "
        "detail in edge-sensitive layers."
    )

# -------------------------------------------------------------- style transfer
st.subheader("Style transfer")


def _image(role: str, default_index: int) -> torch.Tensor | None:
    """A content or style image: a test image (enlarged) or an upload, at ``size``."""
    src = st.radio(
        f"{role.capitalize()} image",
        ["test image", "upload"],
        key=f"style_{role}_src",
        horizontal=True,
        persist_state="session",
    )
    if src == "upload":
        up = st.file_uploader(
            f"Upload the {role} image", type=UPLOAD_TYPES, key=f"style_{role}_upload"
        )
        if up is None:
            st.caption("Waiting for an upload.")
            return None
        try:
            img = image_to_input(up.getvalue(), 3, size, up.name)
        except ImageDecodeError as exc:
            st.error(str(exc))
            return None
        st.image(image_list(img, 128)[0], caption=f"{role}, {size} px", width=128)
        return img
    key = f"style_index_{role}"
    if key not in st.session_state:
        st.session_state[key] = min(default_index, len(images) - 1)
    img, _ = pick_image("style", images, "Test image", suffix=f"_{role}")
    f = size // img.shape[-1]
    img = img.repeat_interleave(f, 2).repeat_interleave(f, 3) if f > 1 else img
    st.image(image_list(img, 128)[0], caption=f"{role}, {img.shape[-1]} px", width=128)
    return img


s1, s2, s3 = st.columns(3, gap="large")
with s3:
    size = st.select_slider(
        "Size (pixels)",
        SIZES,
        value=64,
        key="style_size",
        persist_state="session",
        help="The encoder is fully convolutional, so any size works; "
        "test images are enlarged by repeating pixels.",
    )
    extractors = ["encoder"]
    vgg_path = vgg_weights_path()
    if vgg_path is not None and data.test.channels == 3:
        extractors.append("vgg19")
    ex_name = st.radio(
        "Features from",
        extractors,
        key="style_extractor",
        format_func={"encoder": f"{choice.short} encoder", "vgg19": "VGG-19 (local weights)"}.get,
        persist_state="session",
    )
    if vgg_path is None:
        st.caption(
            "VGG-19 is offered when its weights are already in the torch hub cache "
            "(they are never downloaded from here)."
        )
with s1:
    content = _image("content", 0)
with s2:
    style = _image("style", 7)

try:
    extractor = encoder if ex_name == "encoder" else _vgg(str(vgg_path))
except VGGWeightsError as exc:  # a broken file in the hub cache: say so, use the encoder
    st.error(str(exc))
    ex_name, extractor = "encoder", encoder
layers = extractor.layers
p1, p2, p3 = st.columns(3, gap="large")
with p1:
    default_content = "relu2" if "relu2" in layers else "relu4_2"
    content_layer = st.selectbox(
        "Content layer",
        layers,
        index=layers.index(default_content),
        key=f"style_content_layer_{ex_name}",
        persist_state="session",
    )
    alpha = st.slider(
        "alpha (content weight)", 0.0, 10.0, 1.0, 0.1, key="style_alpha", persist_state="session"
    )
    beta = st.select_slider(
        "beta (style weight)", BETAS, value=100, key="style_beta", persist_state="session"
    )
    tv = st.select_slider(
        "Smoothness (total variation weight)",
        (0, 1, 3, 10, 30),
        value=3,
        key="style_tv",
        persist_state="session",
        help="Pixel noise barely changes a 3x3 encoder's activations, so "
        "without it the result turns grainy.",
    )
with p2:
    st.markdown("Style layer weights w<sub>i</sub>", unsafe_allow_html=True)
    defaults = {
        "relu1": 1.0,
        "relu2": 1.0,
        "relu1_1": 1.0,
        "relu2_1": 1.0,
        "relu3_1": 1.0,
        "relu4_1": 1.0,
        "relu5_1": 1.0,
    }
    weights = {
        n: st.slider(
            n,
            0.0,
            1.0,
            defaults.get(n, 0.0),
            0.1,
            key=f"style_w_{ex_name}_{n}",
            persist_state="session",
        )
        for n in layers
    }
with p3:
    steps = st.slider("Steps", 20, 500, 150, 10, key="style_steps", persist_state="session")
    lr = st.select_slider(
        "Step size (Adam on pixels)",
        (0.005, 0.01, 0.02, 0.05, 0.1),
        value=0.02,
        key="style_lr",
        persist_state="session",
    )
    init = st.radio(
        "Start from",
        ["content", "noise"],
        key="style_init",
        horizontal=True,
        persist_state="session",
    )
    run = st.button(
        "Run style transfer",
        key="style_run",
        type="primary",
        disabled=content is None or style is None,
    )

if run and content is not None and style is not None:
    cfg = StyleConfig(
        content_layer=content_layer,
        style_weights=weights,
        alpha=alpha,
        beta=float(beta),
        tv=float(tv),
        steps=steps,
        lr=lr,
        init=init,
    )
    bar = st.progress(0.0, text="Optimising the image...")
    live = st.empty()

    def on_step(ev) -> None:
        if ev.step % 10 == 0 or ev.step == ev.steps:
            bar.progress(ev.step / ev.steps, text=f"step {ev.step}/{ev.steps}: loss {ev.total:.4g}")
            live.image(image_list(ev.image, 192)[0], caption=f"step {ev.step}", width=192)

    try:
        with torch.enable_grad():
            res = style_transfer(extractor, content, style, cfg, on_step)
    except ValueError as exc:
        st.error(str(exc))
    else:
        st.session_state["style_result"] = {
            "image": res.image,
            "history": res.history,
            "content": content,
            "style": style,
            "alpha": alpha,
            "beta": float(beta),
            "seconds": res.seconds,
            "extractor": ex_name,
        }
    bar.empty()
    live.empty()

result = st.session_state.get("style_result")
if result is None:
    st.info(
        "Choose a content and a style image, set the weights, and press **Run style transfer**."
    )
else:
    *cols, r4 = st.columns([1, 1, 1, 3])
    shown = ("content", "style", "result")
    pictures = [image_list(result[k], 192)[0] for k in ("content", "style", "image")]
    for col, img, cap in zip(cols, pictures, shown, strict=True):
        col.image(img, caption=cap, width="stretch")
    with cols[0]:
        download_png(
            [("", pictures, list(shown))],
            "style-transfer.png",
            "style_download",
            label="Download (PNG)",
        )
    with r4:
        st.plotly_chart(
            loss_curve_figure(result["history"], result["alpha"], result["beta"]), key="style_loss"
        )
    h = result["history"]
    st.caption(
        f"{len(h)} steps in {result['seconds']:.1f} s with the {result['extractor']} "
        f"features; total loss {h[0]['total']:.4g} -> {h[-1]['total']:.4g}."
    )
