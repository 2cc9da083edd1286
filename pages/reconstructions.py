"""Reconstructions: originals above each picked model's copies, with PSNR per image."""

from __future__ import annotations

import streamlit as st
import torch

from convae.figures import grid_png, image_list
from convae.metrics import psnr, psnr_from_mse
from convae.train import reconstruct
from pages.common import (
    current_data,
    selected_classes,
    selected_models,
    show_images,
    source_label,
)

SORTS = {"order": "data set order", "best": "best first", "worst": "worst first"}
POOL = 300  # sorting looks at this many images, so "worst" finds the truly hard ones

st.title("Reconstructions")
data = current_data()
if data is None:
    st.info(
        "No data set is loaded (the sidebar says why and how to get it). The Layers "
        "page can still show your own photo going through a model."
    )
    st.stop()
picked = selected_models()
models = [m for m in picked if m.fits(data)]
if not models:
    st.info(
        f"Pick one or more models for {source_label(data.source)} in the sidebar "
        "(or train one on the Train page)."
    )
    st.stop()
if len(models) < len(picked):
    st.caption(
        f"Not shown (they take other images): "
        f"{', '.join(m.short for m in picked if m not in models)}"
    )

classes = selected_classes()
c1, c2, c3 = st.columns([1, 2, 2])
split = c1.radio(
    "Split", ["test", "train"], key="recon_split", horizontal=True, persist_state="session"
)
n = c2.slider("Images", 4, 32, 10, key="recon_n", persist_state="session")
order = c3.segmented_control(
    "Sort by PSNR",
    list(SORTS),
    key="recon_sort",
    default="order",
    required=True,
    format_func=SORTS.get,
    persist_state="session",
    help=f"Best / worst look through the first {POOL} images of "
    f"the chosen classes, ranked by {models[0].short}.",
)
images = (data.test if split == "test" else data.train).filter(classes)
if len(images) == 0:
    st.warning(f"The {split} split has no images of {', '.join(classes)}.")
    st.stop()

pool = images.head(n if order == "order" else POOL)
x = pool.floats()


def _reconstructed(choice, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstructions and per-image PSNR, remembered per session for the last inputs.

    A 300-image pass costs ~0.25 s per model on 2 cores; changing the count or the sort
    order reuses it instead. Kept in session_state, not st.cache_data, because a model
    trained in this session has a key that means nothing to another session.
    """
    memo = st.session_state.setdefault("_recon_memo", {})
    key = (choice.key, id(choice.model), split, tuple(classes), len(x))
    if key not in memo:
        if len(memo) > 8:
            memo.clear()
        r = reconstruct(choice.model, x)
        memo[key] = (r, psnr(r, x))
    return memo[key]


recons, scores = zip(*(_reconstructed(m, x) for m in models), strict=True)
if order == "order":
    keep = torch.arange(len(pool))
else:
    keep = scores[0].argsort(descending=order == "best")[:n]

st.caption(
    f"{split} images of {', '.join(classes)}"
    + (
        ""
        if order == "order"
        else f", {SORTS[order]} among the first {len(pool)} by {models[0].short}'s PSNR"
    )
    + ". PSNR (dB) under each copy: higher is closer "
    "to the original; about 20 dB looks soft, 30 dB is hard to tell apart."
)
names = [pool.classes[i] for i in pool.labels[keep].tolist()]
st.markdown("**Originals**")
show_images(image_list(x[keep]), names)
rows = [("original", x[keep])]
captions = [names]
for m, r, s in zip(models, recons, scores, strict=True):
    shown = s[keep]
    # Mean PSNR as the data-set convention: PSNR of the mean MSE (convae.metrics).
    mean_shown = float(psnr_from_mse(((r[keep] - x[keep]) ** 2).flatten(1).mean(1).mean()))
    st.markdown(f"**{m.label}**: mean PSNR {mean_shown:.2f} dB over these {len(keep)}")
    show_images(image_list(r[keep]), [f"{v:.1f} dB" for v in shown.tolist()])
    rows.append((m.short, r[keep]))
    captions.append([f"{v:.1f} dB" for v in shown.tolist()])

st.download_button(
    "Download this grid (PNG)",
    lambda: grid_png(rows, captions),
    file_name=f"reconstructions-{split}.png",
    mime="image/png",
    key="recon_download",
    on_click="ignore",
)
