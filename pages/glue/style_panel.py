"""The Style page's settings panel, and the run's recipe read back from it.

Every default comes from :class:`convae.style.StyleConfig` and
:func:`convae.style.default_style_weight` / ``default_content_layer``, so the page and the
library cannot disagree.
"""

from __future__ import annotations

import streamlit as st
import torch

from convae.data import ImageSet
from convae.images import ImageDecodeError, image_to_input
from convae.style import (
    EncoderFeatures,
    StyleConfig,
    VGGFeatures,
    VGGWeightsError,
    default_content_layer,
    default_style_weight,
    vgg_weights_path,
)
from pages.glue import caches
from pages.glue.choose import UPLOAD_TYPES
from pages.glue.widgets import ladder_slider, nearest, radio_row

SIZES = (32, 64, 96)
DEFAULT_SIZE = 64
BETAS = (0, 10, 100, 300, 1_000, 3_000, 10_000, 100_000)
TVS = (0, 1, 3, 10, 30, 100, 300)
LRS = (0.005, 0.01, 0.02, 0.05, 0.1)
DEFAULTS = StyleConfig()
# A pair and settings whose result reads as style transfer with this small encoder
# (tried on a grid of pairs, style weights 1e3-1e4 and smoothness 3-300): a ship repainted
# in a frog's browns and yellows. Higher style weights or less smoothness turn the
# picture into coloured pixel noise, because a 3x3-filter encoder barely sees pixel noise.
DEFAULT_PICTURES = {"content": ("ship", 0), "style": ("frog", 3)}


def settings(model_name: str, extractor: str, layers: list[str], colour: bool) -> None:
    """The panel: size, features, uploads, weights, steps, start, content and style layers."""
    s1, s2, s3 = st.columns(3, gap="large")
    with s1:
        st.select_slider(
            "Size (pixels)",
            SIZES,
            value=DEFAULT_SIZE,
            key="style_size",
            persist_state="session",
            help="The encoder is fully convolutional, so any size works; test pictures are "
            "enlarged by repeating pixels.",
        )
        have_vgg = vgg_weights_path() is not None
        st.radio(
            "Features from",
            ["encoder", "vgg19"] if have_vgg and colour else ["encoder"],
            key="style_extractor",
            format_func={"encoder": f"{model_name} encoder", "vgg19": "VGG-19 (local weights)"}.get,
            persist_state="session",
        )
        if not have_vgg:
            st.caption(
                "VGG-19 is offered when its weights are already in the torch hub cache (they "
                "are never downloaded from here)."
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
            DEFAULTS.alpha,
            0.1,
            key="style_alpha",
            persist_state="session",
        )
        ladder_slider("Style weight (beta)", BETAS, DEFAULTS.beta, "style_beta")
        ladder_slider(
            "Smoothness (total-variation weight)",
            TVS,
            DEFAULTS.tv,
            "style_tv",
            help="Pixel noise barely changes a 3x3 encoder's activations, so without "
            "smoothness the result turns grainy.",
        )
        st.slider("Steps", 20, 500, DEFAULTS.steps, 10, key="style_steps", persist_state="session")
        ladder_slider("Step size (Adam on the pixels)", LRS, DEFAULTS.lr, "style_lr")
        radio_row("Start from", ["content", "noise"], "style_init")
    with s3:
        st.selectbox(
            "Content layer",
            layers,
            index=layers.index(default_content_layer(layers)),
            key=f"style_content_layer_{extractor}",
            persist_state="session",
        )
        st.markdown("Style layer weights w<sub>i</sub>", unsafe_allow_html=True)
        for n in layers:
            st.slider(
                n,
                0.0,
                1.0,
                default_style_weight(n),
                0.1,
                key=f"style_w_{extractor}_{n}",
                persist_state="session",
            )


def size() -> int:
    return int(st.session_state.get("style_size", DEFAULT_SIZE))


def recipe(extractor: str, layers: list[str]) -> StyleConfig:
    """The run's recipe from the panel's widgets (their defaults while it was never open)."""
    state = st.session_state
    return StyleConfig.for_layers(
        layers,
        content_layer=state.get(f"style_content_layer_{extractor}", default_content_layer(layers)),
        style_weights={
            n: float(state.get(f"style_w_{extractor}_{n}", default_style_weight(n))) for n in layers
        },
        alpha=float(state.get("style_alpha", DEFAULTS.alpha)),
        beta=float(state.get("style_beta", nearest(BETAS, DEFAULTS.beta))),
        tv=float(state.get("style_tv", nearest(TVS, DEFAULTS.tv))),
        steps=int(state.get("style_steps", DEFAULTS.steps)),
        lr=float(state.get("style_lr", nearest(LRS, DEFAULTS.lr))),
        init=state.get("style_init", DEFAULTS.init),
    )


def _default_index(role: str, images: ImageSet) -> int:
    cls, i = DEFAULT_PICTURES[role]
    hits = (
        (images.labels == images.classes.index(cls)).nonzero().flatten().tolist()
        if cls in images.classes
        else []
    )
    return hits[i] if len(hits) > i else (0 if role == "content" else min(7, len(images) - 1))


def picture(role: str, images: ImageSet, size: int) -> tuple[torch.Tensor | None, str]:
    """The content or style picture at ``size`` px: an upload, else a test picture."""
    up = st.session_state.get(f"style_{role}_upload")
    if up is not None:
        try:
            return image_to_input(up.getvalue(), 3, size, up.name), f"{role}: {up.name}"
        except ImageDecodeError as exc:
            st.error(str(exc))
    key = f"style_index_{role}"
    if key not in st.session_state:
        st.session_state[key] = _default_index(role, images)
    i = min(int(st.session_state[key]), len(images) - 1)
    img = images.floats(slice(i, i + 1))
    f = size // img.shape[-1]
    img = img.repeat_interleave(f, 2).repeat_interleave(f, 3) if f > 1 else img
    return img, f"{role}: test picture {i} ({images.classes[int(images.labels[i])]})"


def features(encoder: EncoderFeatures) -> tuple[str, EncoderFeatures | VGGFeatures]:
    """The picked feature extractor; a broken VGG file is reported and the encoder kept."""
    name = st.session_state.get("style_extractor", "encoder")
    path = vgg_weights_path()
    if name != "vgg19" or path is None:
        return "encoder", encoder
    try:
        return "vgg19", caches.vgg_features(str(path))
    except VGGWeightsError as exc:  # a broken file in the hub cache
        st.error(str(exc))
        return "encoder", encoder
