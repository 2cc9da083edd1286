"""Denoise: noisy test pictures through the plain model and a model trained to denoise."""

from __future__ import annotations

import streamlit as st

from convae.figures.uses import psnr_curve_figure
from convae.recon import reconstruct_scored, score
from convae.tasks import noisy
from pages.glue import caches, draw
from pages.glue.choose import test_images
from pages.glue.state import require_data, selected_classes
from pages.glue.uses import choose_decoder, decoders_present, missing_task_model, model_for
from pages.glue.widgets import segmented

KINDS = {"saltpepper": "salt and pepper", "gauss": "Gaussian"}
# Defaults where the denoiser visibly wins: at 20% salt and pepper the plain upsample
# model (the 20-epoch pair of 2026-11) reached 17.9 dB and the denoiser 20.6 (200 test
# pictures; the 30-epoch pair copies noise more, so the gap grew); at Gaussian 0.2 the
# gap was 0.9 dB and the pictures looked alike.
STRENGTH = {
    "gauss": ("noise strength (sigma)", 0.5, 0.3, 0.01),
    "saltpepper": ("share of pixels hit", 0.5, 0.2, 0.01),
}
CURVE_IMAGES = 200
CURVE_POINTS = {
    "gauss": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5],
    "saltpepper": [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5],
}

st.title("Denoise")
data = require_data()
head = st.container()  # the takeaway, once the numbers are known
c1, c2, c3, c4 = st.columns([2.6, 2.4, 2.4, 1.6])  # the noise buttons need their width
with c1:
    kind = segmented("Noise", KINDS, "denoise_kind", "saltpepper")
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
    n = st.slider("Pictures", 4, 10, 8, key="denoise_n", persist_state="session")

classes = selected_classes()
images = test_images(data, classes)
x = images.floats(slice(0, n))
xn = noisy(x, kind, strength)
plain = model_for(data, "plain", decoder)
task = model_for(data, "denoise", decoder)
if task is None:
    missing_task_model("denoise", decoder)

names = [images.classes[i] for i in images.labels[:n].tolist()]
what = f"{KINDS[kind]} {strength:g}"
results = {"noisy input": score(xn, x)}
if plain is not None:
    results[f"plain: {plain.name}"] = reconstruct_scored(plain.model, xn, x)
if task is not None:
    results[f"denoiser: {task.name}"] = reconstruct_scored(task.model, xn, x)
which = draw.picture_names("test", range(n), names)
rows = [
    draw.recon_row(title, r, which, f"{title} ({what})", "as" if i == 0 else "rebuilt by")
    for i, (title, r) in enumerate(results.items())
]
rows.append(draw.input_row("clean", x, names, [f"clean test picture: {c}" for c in names]))
with head:
    means = {k.split(":")[0]: r.mean_psnr for k, r in results.items()}
    if "denoiser" in means and "plain" in means:
        draw.takeaway(
            f"A model trained on noisy inputs with clean targets learns to remove the noise. "
            f"With {what} noise, the <b>denoiser</b> gets {means['denoiser']:.1f} dB, the "
            f"plain model {means['plain']:.1f} dB and the noisy input "
            f"{means['noisy input']:.1f} dB (closer to the clean picture is higher)."
        )
    else:
        draw.takeaway(
            "A model trained on noisy inputs with clean targets learns to remove the "
            "noise; the plain model only ever saw clean pictures."
        )
draw.pictures(rows, columns=n, title=f"Noisy inputs ({what}) and what each model makes of them")
st.caption("PSNR under each picture is always against the clean picture (bottom row).")
draw.download_png(rows, f"denoise-{kind}-{strength:g}.png", "denoise_download")


def _curve_chart() -> None:
    curve_models = {}
    for dec in decoders_present(data):
        for t, tag in (("plain", "plain"), ("denoise", "denoiser")):
            m = model_for(data, t, dec)
            if m is not None:
                curve_models[f"{tag} {dec}"] = m
    xs = images.floats(slice(0, CURVE_IMAGES))
    pictures = caches.split_key(data, "test", classes, CURVE_IMAGES)
    curves = caches.psnr_curves(curve_models, xs, pictures, kind, CURVE_POINTS[kind])
    draw.chart(
        psnr_curve_figure(CURVE_POINTS[kind], curves, label, marker=strength),
        key="denoise_curve",
        summary=f"Mean over the first {min(CURVE_IMAGES, len(images))} test pictures "
        "(PSNR of the mean MSE), the same noise for every model. Where a line is above "
        "the dashed one, the model's output is closer to the clean picture than its "
        "noisy input was.",
    )


draw.details("PSNR against noise strength, every model", _curve_chart, expanded=True)
