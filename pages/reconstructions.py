"""Reconstructions: originals above each picked model's copies, with PSNR per picture."""

from __future__ import annotations

import streamlit as st
import torch

from convae.recon import score
from pages.glue import caches, draw
from pages.glue.state import (
    baselines,
    picked_models,
    require_data,
    selected_classes,
    selected_models,
)
from pages.glue.widgets import segmented

SORTS = {"order": "data set order", "best": "best first", "worst": "worst first"}
POOL = 300  # sorting looks at this many pictures, so "worst" finds the truly hard ones

st.title("Reconstructions")
draw.takeaway(
    "Each column is one test picture; each row below the originals is what one model "
    "rebuilt from its code. The number under a picture is its PSNR: higher is closer."
)
data = require_data()
models = picked_models(data)
misfits = [m.name for m in selected_models() if m not in models]
classes = selected_classes()
c1, c2, c3, c4 = st.columns([1, 2, 2, 1.4], vertical_alignment="bottom")
split = c1.radio(
    "Split", ["test", "train"], key="recon_split", horizontal=True, persist_state="session"
)
n = c2.slider("Pictures", 4, 32, 12, key="recon_n", persist_state="session")
order = segmented(
    "Sort by PSNR",
    SORTS,
    "recon_sort",
    "order",
    where=c3,
    help=f"Best / worst look through the first {POOL} pictures of the chosen classes, "
    f"ranked by {models[0].name}.",
)
with_baselines = c4.toggle(
    "Add the baselines",
    key="recon_baselines",
    persist_state="session",
    help="PCA and a downsampled copy, each keeping as many numbers as the code (256 for "
    "CIFAR-10): does the learned code beat them?",
)
images = (data.test if split == "test" else data.train).filter(classes)
if len(images) == 0:
    st.warning(f"The {split} split has no pictures of {', '.join(classes)}.")
    st.stop()
pool = images.head(n if order == "order" else POOL)


x = pool.floats()
pictures = caches.split_key(data, split, classes, len(x))
shown = [(m.name, m.digest, m.model) for m in models]
if with_baselines:
    shown += [(k, caches.baseline_key(k, data), b) for k, b in baselines(data).items()]
results = [caches.reconstruction(key, module, x, pictures) for _, key, module in shown]
keep = (
    torch.arange(len(pool))
    if order == "order"
    else results[0].psnr.argsort(descending=order == "best")[:n]
)
names = [pool.classes[i] for i in pool.labels[keep].tolist()]
per_row = min(len(keep), 12)
recons = [
    (name, score(r.images[keep], x[keep])) for (name, _, _), r in zip(shown, results, strict=True)
]
rows = draw.recon_rows(x[keep], split, keep.tolist(), names, recons)
for start in range(0, len(keep), per_row):  # wide rows wrap in blocks, labels kept
    part = slice(start, start + per_row)
    draw.pictures(
        [draw.PictureRow(r.label, r.pictures[part], r.captions[part], r.alts[part]) for r in rows],
        columns=per_row,
        title=f"{split} pictures {start + 1} to {min(start + per_row, len(keep))}",
    )
means = ", ".join(f"{name} {r.mean_psnr:.2f} dB" for name, r in recons)
st.caption(
    f"{split} pictures of {', '.join(classes)}"
    + (
        ""
        if order == "order"
        else f", {SORTS[order]} among the first {len(pool)} by {models[0].name}'s PSNR"
    )
    + f". Over these: {means}. About 20 dB looks soft; 30 dB is hard to "
    "tell apart from the original."
)
if misfits:
    st.caption(f"Not shown (they take other pictures): {', '.join(misfits)}")
draw.download_png(rows, f"reconstructions-{split}.png", "recon_download")
