"""Denoise: noisy test images through the plain model and a model trained to denoise."""

from __future__ import annotations

import streamlit as st
import torch

from convae.figures import image_list
from convae.figures.tasks import psnr_curve_figure
from convae.metrics import mse, psnr, psnr_from_mse
from convae.tasks import noisy, psnr_curve
from convae.train import reconstruct
from pages.common import download_png, selected_classes, show_images
from pages.tasks_common import (
    choose_decoder,
    decoders_present,
    missing_task_model,
    model_for,
    require_data,
    test_images,
)

KINDS = {"gauss": "Gaussian", "saltpepper": "salt and pepper"}
STRENGTH = {
    "gauss": ("noise std (sigma)", 0.5, 0.2, 0.01),
    "saltpepper": ("fraction of pixels hit", 0.5, 0.1, 0.01),
}
CURVE_IMAGES = 200
CURVE_POINTS = {
    "gauss": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5],
    "saltpepper": [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5],
}

st.title("Denoise")
st.caption(
    "An autoencoder trained on noisy inputs with clean targets learns to remove "
    "the noise (course notes: denoising). Compare it with the plain model, which "
    "only ever saw clean images. PSNR is always against the clean image."
)
data = require_data()
c1, c2, c3, c4 = st.columns([2, 3, 2, 2])
with c1:
    kind = st.segmented_control(
        "Noise",
        list(KINDS),
        key="denoise_kind",
        default="gauss",
        required=True,
        format_func=KINDS.get,
        persist_state="session",
    )
label, top, default, step = STRENGTH[kind]
with c2:
    strength = st.slider(
        label.capitalize(),
        0.0,
        top,
        default,
        step,
        key=f"denoise_strength_{kind}",
        persist_state="session",
    )
with c3:
    decoder = choose_decoder("denoise", data)
with c4:
    n = st.slider("Images", 4, 10, 8, key="denoise_n", persist_state="session")

classes = selected_classes()
images = test_images(data, classes)
x = images.floats(slice(0, n))
xn = noisy(x, kind, strength)
plain = model_for(data, "plain", decoder)
task = model_for(data, "denoise", decoder)
if task is None:
    missing_task_model("denoise", decoder)

names = [images.classes[i] for i in images.labels[:n].tolist()]


grid = [("clean", image_list(x), names)]  # what the page shows, for the PNG download


def _row(title: str, y: torch.Tensor, short: str) -> float:
    scores = psnr(y, x)
    mean = float(psnr_from_mse(mse(y, x).mean()))
    st.markdown(f"**{title}**: {mean:.2f} dB over these {n}")
    grid.append((short, image_list(y), [f"{v:.1f} dB" for v in scores.tolist()]))
    show_images(*grid[-1][1:])
    return mean


st.markdown("**Clean test images**")
show_images(*grid[0][1:])
means = {
    "noisy input": _row(
        f"Noisy input ({KINDS[kind]}, {label} {strength:g})", xn, f"{kind} {strength:g}"
    )
}
if plain is not None:
    means["plain"] = _row(f"Plain model: {plain.short}", reconstruct(plain.model, xn), plain.short)
if task is not None:
    means["denoiser"] = _row(f"Denoiser: {task.short}", reconstruct(task.model, xn), task.short)
download_png(grid, f"denoise-{kind}-{strength:g}.png", "denoise_download")
cols = st.columns(len(means))
for col, (name, v) in zip(cols, means.items(), strict=True):
    delta = None if name == "noisy input" else f"{v - means['noisy input']:+.2f} dB vs input"
    col.metric(f"PSNR, {name}", f"{v:.2f} dB", delta)


@st.cache_data(show_spinner="Scoring the models over noise strengths...", max_entries=16)
def _curves(
    _models: dict, model_ids: tuple, source: str, classes: tuple, kind: str
) -> dict[str, list[float]]:
    xs = test_images(data, list(classes)).floats(slice(0, CURVE_IMAGES))
    return psnr_curve(_models, xs, kind, CURVE_POINTS[kind])


st.subheader("PSNR against noise strength")
curve_models = {}
for dec in decoders_present(data):
    for t, tag in (("plain", "plain"), ("denoise", "denoiser")):
        m = model_for(data, t, dec)
        if m is not None:
            curve_models[f"{tag} {dec}"] = m
ids = tuple((k, m.key, id(m.model)) for k, m in curve_models.items())
curves = _curves(
    {k: m.model for k, m in curve_models.items()}, ids, data.source, tuple(classes), kind
)
st.plotly_chart(
    psnr_curve_figure(CURVE_POINTS[kind], curves, label, marker=strength), key="denoise_curve"
)
st.caption(
    f"Mean over the first {min(CURVE_IMAGES, len(images))} test images of the chosen "
    "classes (PSNR of the mean MSE), the same noise for every model. Where a line "
    "sits above the dashed one, the model's output is closer to the clean image than "
    "its noisy input was."
)
