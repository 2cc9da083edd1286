"""Style: style transfer with Gram matrices of the encoder's layers (Gatys et al. 2016, as
in the course notes), and the Gram matrices themselves."""

from __future__ import annotations

import streamlit as st
import torch

from convae.figures.uses import gram_figure, loss_curve_figure
from convae.images import ImageDecodeError, image_to_input
from convae.recon import reconstruct_scored
from convae.style import (
    EncoderFeatures,
    StyleConfig,
    VGGFeatures,
    VGGWeightsError,
    layer_grams,
    style_transfer,
    vgg_weights_path,
)
from pages import ui
from pages.common import require_data, require_model, selected_classes, selected_models
from pages.tasks_common import test_images

SIZES = (32, 64, 96)
BETAS = (0, 10, 100, 300, 1_000, 3_000, 10_000, 100_000)
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp"]
# A pair and settings whose result reads as style transfer with this small encoder
# (tried on a grid of pairs, style weights 1e3-1e4 and smoothness 3-300): a ship repainted
# in a frog's browns and yellows. Higher style weights or less smoothness turn the
# picture into coloured pixel noise, because a 3x3-filter encoder barely sees pixel noise.
DEFAULT_PICTURES = {"content": ("ship", 0), "style": ("frog", 3)}
DEFAULTS = dict(size=64, beta=1_000, tv=30, steps=200, lr=0.02)

st.title("Style")
ui.takeaway(
    "Style transfer paints a new picture that keeps the layout of one picture (the "
    "<b>content</b>) and takes the colours and textures of another (the <b>style</b>), as "
    "this model's encoder sees them."
)
data = require_data()
choice = require_model("style")
if not choice.fits(data):
    st.info(f"{choice.name} takes other pictures than this data set; pick a model for it.")
    st.stop()
images = test_images(data, selected_classes())


@st.cache_resource(show_spinner=False, max_entries=8)
def _encoder(digest: str, _model) -> EncoderFeatures:
    return EncoderFeatures(_model)


@st.cache_resource(show_spinner="Loading VGG-19 from the local torch hub cache...")
def _vgg(path: str) -> VGGFeatures:
    return VGGFeatures(path)


encoder = _encoder(choice.digest, choice.model)


def _default_index(role: str) -> int:
    cls, i = DEFAULT_PICTURES[role]
    hits = (
        (images.labels == images.classes.index(cls)).nonzero().flatten().tolist()
        if cls in images.classes
        else []
    )
    return hits[i] if len(hits) > i else (0 if role == "content" else min(7, len(images) - 1))


def _picture(role: str, size: int) -> tuple[torch.Tensor | None, str]:
    """The content or style picture at ``size`` px: an upload, else a test picture."""
    up = st.session_state.get(f"style_{role}_upload")
    if up is not None:
        try:
            return image_to_input(up.getvalue(), 3, size, up.name), f"{role}: {up.name}"
        except ImageDecodeError as exc:
            st.error(str(exc))
    key = f"style_index_{role}"
    if key not in st.session_state:
        st.session_state[key] = _default_index(role)
    i = min(int(st.session_state[key]), len(images) - 1)
    img = images.floats(slice(i, i + 1))
    f = size // img.shape[-1]
    img = img.repeat_interleave(f, 2).repeat_interleave(f, 3) if f > 1 else img
    return img, f"{role}: test picture {i} ({images.classes[int(images.labels[i])]})"


# --------------------------------------------------------------- the transfer
size = int(st.session_state.get("style_size", DEFAULTS["size"]))
content, content_name = _picture("content", size)
style, style_name = _picture("style", size)
result = st.session_state.get("style_result")
p1, p2, p3, p4 = st.columns([1, 1, 1, 1.1], gap="medium", vertical_alignment="top")
for col, img, name in ((p1, content, content_name), (p2, style, style_name)):
    with col:
        if img is not None:
            ui.pictures([ui.row("", img, [name], [f"{name} picture"])], columns=1)
live = p3.empty()
if result is not None:
    with p3:
        ui.pictures(
            [ui.row("", result["image"], ["result"], [f"style transfer result: {result['what']}"])],
            columns=1,
        )
else:
    p3.info("The result appears here.")
with p4:
    run = st.button(
        "Run style transfer",
        key="style_run",
        type="primary",
        width="stretch",
        disabled=content is None or style is None,
        icon=":material/brush:",
    )
    n1, n2 = st.columns(2)
    n1.number_input(
        "Content picture", 0, len(images) - 1, key="style_index_content", persist_state="session"
    )
    n2.number_input(
        "Style picture", 0, len(images) - 1, key="style_index_style", persist_state="session"
    )
    bar = st.empty()


def _settings() -> None:
    s1, s2, s3 = st.columns(3, gap="large")
    with s1:
        st.select_slider(
            "Size (pixels)",
            SIZES,
            value=DEFAULTS["size"],
            key="style_size",
            persist_state="session",
            help="The encoder is fully convolutional, so any size works; test "
            "pictures are enlarged by repeating pixels.",
        )
        extractors = ["encoder"]
        if vgg_weights_path() is not None and data.test.channels == 3:
            extractors.append("vgg19")
        st.radio(
            "Features from",
            extractors,
            key="style_extractor",
            format_func={
                "encoder": f"{choice.name} encoder",
                "vgg19": "VGG-19 (local weights)",
            }.get,
            persist_state="session",
        )
        if vgg_weights_path() is None:
            st.caption(
                "VGG-19 is offered when its weights are already in the torch hub "
                "cache (they are never downloaded from here)."
            )
        for role in ("content", "style"):
            st.file_uploader(
                f"Your own {role} picture", type=UPLOAD_TYPES, key=f"style_{role}_upload"
            )
    with s2:
        st.slider(
            "Content weight (alpha)",
            0.0,
            10.0,
            1.0,
            0.1,
            key="style_alpha",
            persist_state="session",
        )
        st.select_slider(
            "Style weight (beta)",
            BETAS,
            value=DEFAULTS["beta"],
            key="style_beta",
            persist_state="session",
        )
        st.select_slider(
            "Smoothness (total-variation weight)",
            (0, 1, 3, 10, 30, 100, 300),
            value=DEFAULTS["tv"],
            key="style_tv",
            persist_state="session",
            help="Pixel noise barely changes a 3x3 encoder's activations, so "
            "without smoothness the result turns grainy.",
        )
        st.slider(
            "Steps", 20, 500, DEFAULTS["steps"], 10, key="style_steps", persist_state="session"
        )
        st.select_slider(
            "Step size (Adam on the pixels)",
            (0.005, 0.01, 0.02, 0.05, 0.1),
            value=DEFAULTS["lr"],
            key="style_lr",
            persist_state="session",
        )
        st.radio(
            "Start from",
            ["content", "noise"],
            key="style_init",
            horizontal=True,
            persist_state="session",
        )
    with s3:
        ex = ex_name
        layers = extractor.layers
        default_content = "relu2" if "relu2" in layers else "relu4_2"
        st.selectbox(
            "Content layer",
            layers,
            index=layers.index(default_content),
            key=f"style_content_layer_{ex}",
            persist_state="session",
        )
        st.markdown("Style layer weights w<sub>i</sub>", unsafe_allow_html=True)
        ones = {"relu1", "relu2", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
        for n in layers:
            st.slider(
                n,
                0.0,
                1.0,
                1.0 if n in ones else 0.0,
                0.1,
                key=f"style_w_{ex}_{n}",
                persist_state="session",
            )


def _features(name: str) -> tuple[str, EncoderFeatures | VGGFeatures]:
    """The picked feature extractor; a broken VGG file is reported and the encoder kept."""
    path = vgg_weights_path()
    if name != "vgg19" or path is None:
        return "encoder", encoder
    try:
        return "vgg19", _vgg(str(path))
    except VGGWeightsError as exc:  # a broken file in the hub cache
        st.error(str(exc))
        return "encoder", encoder


ex_name, extractor = _features(st.session_state.get("style_extractor", "encoder"))
ui.details("Settings: pictures, weights, layers, steps", _settings)

if run and content is not None and style is not None:
    state = st.session_state
    layers = extractor.layers
    weights = {
        n: float(
            state.get(
                f"style_w_{ex_name}_{n}",
                1.0 if n in ("relu1", "relu2") or n.endswith("_1") else 0.0,
            )
        )
        for n in layers
    }
    content_layer = state.get(
        f"style_content_layer_{ex_name}", "relu2" if "relu2" in layers else "relu4_2"
    )
    cfg = StyleConfig(
        content_layer=content_layer,
        style_weights=weights,
        alpha=float(state.get("style_alpha", 1.0)),
        beta=float(state.get("style_beta", DEFAULTS["beta"])),
        tv=float(state.get("style_tv", DEFAULTS["tv"])),
        steps=int(state.get("style_steps", DEFAULTS["steps"])),
        lr=float(state.get("style_lr", DEFAULTS["lr"])),
        init=state.get("style_init", "content"),
    )
    progress = bar.progress(0.0, text="Painting...")

    def on_step(ev) -> None:
        if ev.step % 10 == 0 or ev.step == ev.steps:
            progress.progress(ev.step / ev.steps, text=f"step {ev.step} of {ev.steps}")
            with live.container():
                ui.pictures(
                    [
                        ui.row(
                            "",
                            ev.image,
                            [f"step {ev.step}"],
                            [f"style transfer in progress, step {ev.step}"],
                        )
                    ],
                    columns=1,
                )

    try:
        with torch.enable_grad():
            res = style_transfer(extractor, content, style, cfg, on_step)
    except ValueError as exc:
        st.error(str(exc))
    else:
        state["style_result"] = {
            "image": res.image,
            "history": res.history,
            "content": content,
            "style": style,
            "alpha": cfg.alpha,
            "beta": cfg.beta,
            "seconds": res.seconds,
            "extractor": ex_name,
            "what": f"{content_name} painted in the style of {style_name}",
        }
    st.rerun()

if result is not None:
    ui.download_png(
        [
            ui.row(
                "",
                torch.cat([result["content"], result["style"], result["image"]]),
                ["content", "style", "result"],
            )
        ],
        "style-transfer.png",
        "style_download",
        label="Download (PNG)",
    )

    def _loss() -> None:
        h = result["history"]
        ui.chart(
            loss_curve_figure(h, result["alpha"], result["beta"]),
            key="style_loss",
            summary=f"{len(h)} steps in {result['seconds']:.1f} s with the "
            f"{result['extractor']} features; total loss {h[0]['total']:.4g} -> "
            f"{h[-1]['total']:.4g}.",
        )

    ui.details("How the loss fell", _loss)

# --------------------------------------------------------------- Gram matrices


def _grams() -> None:
    st.caption(
        "A layer's Gram matrix G = F F^T (F: channels x positions) says which channels "
        "fire together, wherever in the picture: texture and colour, not layout. Style "
        "transfer makes the result's Gram matrices match the style picture's."
    )
    g1, g2 = st.columns([1, 3], gap="large")
    x = images.floats(slice(0, 1))
    cls = images.classes[int(images.labels[0])]
    with g1:
        layer = st.selectbox(
            "Layer",
            encoder.layers,
            index=encoder.layers.index("relu1"),
            key="style_gram_layer",
            persist_state="session",
        )
        models = [m for m in selected_models() if m.fits(data)][:3] or [choice]
        shown = {f"original ({cls})": x}
        for m in models:
            shown[f"{m.name} output"] = reconstruct_scored(m.model, x).images
        ui.pictures(
            [
                ui.PictureRow(
                    "",
                    [ui.row("", v).pictures[0] for v in shown.values()],
                    list(shown),
                    list(shown),
                )
            ],
            columns=len(shown),
        )
    grams = {name: layer_grams(encoder, img, [layer])[layer] for name, img in shown.items()}
    with g2:
        ui.chart(
            gram_figure(grams, layer),
            key="style_gram",
            summary=f"All measured with {choice.name}'s encoder. A blurry reconstruction "
            "keeps the diagonal (how strongly each channel fires) but loses "
            "off-diagonal detail in edge-sensitive layers.",
        )


ui.details("Gram matrices: what 'style' means here", _grams)
