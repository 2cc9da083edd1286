"""Repair: missing information (a masked rectangle, a lost colour plane, no colour at all)
through the plain model and a model trained for that repair."""

from __future__ import annotations

import streamlit as st
import torch

from convae.corrupt import apply_mask, drop_plane, rectangle_mask, to_grey
from convae.recon import reconstruct_scored, score
from convae.tasks import region_psnr
from pages.glue import caches, draw
from pages.glue.choose import pick_image, test_images
from pages.glue.state import require_data, selected_classes
from pages.glue.uses import choose_decoder, missing_task_model, model_for
from pages.glue.widgets import segmented

MODES = {"mask": "Masked rectangle", "colour": "Missing colour"}
COLOUR = {
    "drop:r": "drop red",
    "drop:g": "drop green",
    "drop:b": "drop blue",
    "grey": "grey (colour it in)",
}
BATCH = 500  # test pictures behind the table

st.title("Repair")
head = st.container()
data = require_data()
if data.test.channels != 3:
    st.info("Repair needs colour pictures (CIFAR-10); the sidebar has a greyscale data set.")
    st.stop()
images = test_images(data, selected_classes())
side = data.test.image_size

pics = st.container()  # pictures first; the controls below decide them
c1, c2, c3 = st.columns([2, 2, 2])
with c1:
    mode = segmented("What is missing", MODES, "repair_mode", "mask")
with c2:
    decoder = choose_decoder("repair", data)
with c3:
    x, cls = pick_image("repair", images)

task_name = "inpaint" if mode == "mask" else "colorize"
if mode == "mask":
    m1, m2, m3, m4 = st.columns(4)
    top = m1.slider("Top", 0, side - 1, side // 4, key="repair_top", persist_state="session")
    left = m2.slider("Left", 0, side - 1, side // 4, key="repair_left", persist_state="session")
    rh = m3.slider("Height", 1, side, side // 3, key="repair_h", persist_state="session")
    rw = m4.slider("Width", 1, side, side // 3, key="repair_w", persist_state="session")
    region = rectangle_mask(side, side, top, left, rh, rw)[None, None]
    setting = (top, left, rh, rw)
    spec_note = f"the same {rh}x{rw} rectangle at row {top}, column {left}"

    def corrupt(t: torch.Tensor) -> torch.Tensor:
        return apply_mask(t, region)
else:
    how = st.radio(
        "Colour",
        list(COLOUR),
        key="repair_colour",
        horizontal=True,
        format_func=COLOUR.get,
        persist_state="session",
    )
    region = torch.ones(1, 1, side, side, dtype=torch.bool)
    setting = (how,)
    spec_note = COLOUR[how]

    def corrupt(t: torch.Tensor) -> torch.Tensor:
        return to_grey(t) if how == "grey" else drop_plane(t, "rgb".index(how[-1]))


plain = model_for(data, "plain", decoder)
task = model_for(data, task_name, decoder)
if task is None:
    missing_task_model(task_name, decoder)

xc = corrupt(x)
shown = [("original", score(x, x)), ("input", score(xc, x))]
if plain is not None:
    shown.append((f"plain: {plain.name}", reconstruct_scored(plain.model, xc, x)))
if task is not None:
    shown.append((f"repair: {task.name}", reconstruct_scored(task.model, xc, x)))


def _caption(name: str, y: torch.Tensor, whole: float) -> str:
    if name == "original":
        return f"original ({cls})"
    if mode == "mask":
        part = float(region_psnr(y, x, region)[0])
        return f"{name}: {part:.1f} dB hole / {whole:.1f} dB whole"
    return f"{name}: {whole:.1f} dB"


caps = [_caption(name, r.images, float(r.psnr[0])) for name, r in shown]
row = draw.row(
    "", torch.cat([r.images for _, r in shown]), caps, [f"{c} (test {cls})" for c in caps]
)
with pics:
    draw.pictures(
        [row],
        columns=4,
        max_px=260,
        title="The picture, its damaged input, and both models' repairs",
    )
    draw.download_png([row], f"repair-{mode}.png", "repair_download")
with head:
    draw.takeaway(
        "A model trained on pictures with a part missing, and the whole picture as its "
        "target, learns to fill the gap; the plain model never saw holes. PSNR on the "
        "repaired part (the hole) says more than on the whole picture."
    )


def _over_many() -> None:
    models = {
        name: m
        for name, m in ((f"plain {decoder}", plain), (f"{task_name} {decoder}", task))
        if m is not None
    }
    xs = images.floats(slice(0, BATCH))
    pictures = caches.split_key(data, "test", selected_classes(), BATCH)
    rows = caches.repair_table(models, xs, corrupt(xs), region, pictures, (mode, *setting))
    cols = {
        "output": "output",
        "region_psnr": "PSNR of the hole (dB)",
        "whole_psnr": "PSNR whole (dB)",
    }
    if mode != "mask":
        cols.pop("region_psnr")
    draw.table(
        [{cols[k]: v for k, v in r.items() if k in cols} for r in rows],
        {"PSNR": "%.2f"},
        key="repair_table",
    )
    st.caption(
        f"PSNR of the mean MSE against the original over the first {BATCH} test "
        f"pictures of the chosen classes, each with {spec_note}."
    )
    if task is not None and "task" in (task.checkpoint.test_metrics or {}):
        t = task.checkpoint.test_metrics["task"]
        st.caption(
            f"{task.name} on its own training damage `{t['spec']}` over the whole test "
            f"split: {t['psnr']:.2f} dB whole, {t['region_psnr']:.2f} dB on the damaged "
            f"pixels (its inputs: {t['input_psnr']:.2f} / {t['input_region_psnr']:.2f} dB)."
        )


draw.details(f"Over {BATCH} test pictures: {spec_note}", _over_many, expanded=True)
