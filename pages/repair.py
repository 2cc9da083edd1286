"""Repair: missing information (a masked rectangle, a lost colour plane, no colour at
all) through the plain model and a model trained for that repair."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

from convae.corrupt import apply_mask, drop_plane, rectangle_mask, to_grey
from convae.figures import image_list
from convae.metrics import mse, psnr, psnr_from_mse
from convae.tasks import region_mse, region_psnr
from convae.train import reconstruct
from pages.common import download_png, selected_classes
from pages.tasks_common import (
    choose_decoder,
    missing_task_model,
    model_for,
    pick_image,
    require_data,
    test_images,
)

MODES = {"mask": "Masked rectangle", "colour": "Missing colour"}
COLOUR = {
    "drop:r": "drop red",
    "drop:g": "drop green",
    "drop:b": "drop blue",
    "grey": "grey (colour it in)",
}
BATCH = 500  # test images behind the table

st.title("Repair")
st.caption(
    "Repairing images with missing information (course notes): a model trained on "
    "inputs with a part missing and the whole image as target learns to fill it in. "
    "The plain model never saw holes. PSNR on the repaired region tells more than "
    "on the whole image, where the untouched pixels dominate."
)
data = require_data()
if data.test.channels != 3:
    st.info("Repair needs an RGB data set (CIFAR-10); the sidebar has a greyscale one.")
    st.stop()
images = test_images(data, selected_classes())
side = data.test.image_size

c1, c2, c3 = st.columns([2, 2, 2])
with c1:
    mode = st.segmented_control(
        "What is missing",
        list(MODES),
        key="repair_mode",
        default="mask",
        required=True,
        format_func=MODES.get,
        persist_state="session",
    )
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
    region_text = f"{int(region.sum())} px rectangle"

    def corrupt(t: torch.Tensor) -> torch.Tensor:
        return apply_mask(t, region)

    spec_note = f"the same {rh}x{rw} rectangle at ({top}, {left})"
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
    region_text = "whole image"

    def corrupt(t: torch.Tensor) -> torch.Tensor:
        return to_grey(t) if how == "grey" else drop_plane(t, "rgb".index(how[-1]))

    spec_note = COLOUR[how]

plain = model_for(data, "plain", decoder)
task = model_for(data, task_name, decoder)
if task is None:
    missing_task_model(task_name, decoder)

xc = corrupt(x)
shown = [("original", x), ("input", xc)]
if plain is not None:
    shown.append((f"plain: {plain.short}", reconstruct(plain.model, xc)))
if task is not None:
    shown.append((f"repair: {task.short}", reconstruct(task.model, xc)))


def _caption(name: str, y: torch.Tensor) -> str:
    if name == "original":
        return f"original ({cls})"
    whole = float(psnr(y, x)[0])
    if mode == "mask":
        part = float(region_psnr(y, x, region)[0])
        return f"{name}: {part:.1f} dB region / {whole:.1f} dB whole"
    return f"{name}: {whole:.1f} dB"


cols = st.columns([1, 1, 1, 1, 1])  # fixed widths: about 220 px a picture, task model or not
pictures = [(image_list(y, target_px=224)[0], _caption(name, y)) for name, y in shown]
for col, (img, caption) in zip(cols, pictures, strict=False):
    col.image(img, caption=caption, width="stretch")
download_png(
    [("", [p for p, _ in pictures], [c for _, c in pictures])],
    f"repair-{mode}.png",
    "repair_download",
)


@st.cache_data(show_spinner="Scoring on test images...", max_entries=32)
def _table(
    _models: dict, model_ids: tuple, source: str, classes: tuple, mode: str, setting: tuple
) -> pd.DataFrame:
    xs = test_images(data, list(classes)).floats(slice(0, BATCH))
    xc_all = corrupt(xs)
    reg = region.expand(len(xs), 1, side, side)
    rows = []
    for name, y in [("corrupted input", xc_all)] + [
        (n, reconstruct(m, xc_all)) for n, m in _models.items()
    ]:
        rows.append(
            {
                "output": name,
                "PSNR region (dB)": float(psnr_from_mse(region_mse(y, xs, reg).mean())),
                "PSNR whole (dB)": float(psnr_from_mse(mse(y, xs).mean())),
            }
        )
    df = pd.DataFrame(rows)
    return df if mode == "mask" else df.drop(columns="PSNR region (dB)")


st.subheader(f"Over {BATCH} test images: {spec_note}")
models = {
    name: m.model
    for name, m in (("plain " + decoder, plain), (f"{task_name} {decoder}", task))
    if m is not None
}
setting = (top, left, rh, rw) if mode == "mask" else (how,)
df = _table(
    models,
    tuple((k, id(v)) for k, v in models.items()),
    data.source,
    tuple(selected_classes()),
    mode,
    setting,
)
st.dataframe(
    df,
    hide_index=True,
    key="repair_table",
    column_config={
        c: st.column_config.NumberColumn(format="%.2f") for c in df.columns if c != "output"
    },
)
st.caption(
    f"PSNR of the mean MSE against the original over the first {BATCH} test images of "
    f"the chosen classes ({region_text})."
)
if task is not None and "task" in (task.checkpoint.test_metrics or {}):
    t = task.checkpoint.test_metrics["task"]
    st.caption(
        f"{task.short} on its own training corruption `{t['spec']}` over the whole test "
        f"split: {t['psnr']:.2f} dB whole, {t['region_psnr']:.2f} dB on the corrupted "
        f"pixels (its inputs: {t['input_psnr']:.2f} / {t['input_region_psnr']:.2f} dB)."
    )
