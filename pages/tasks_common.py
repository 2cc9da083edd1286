"""Helpers shared by the Uses pages (Denoise, Repair, Code, Style); not a page.

They find, for a decoder, the plain model and the model trained for a task (from each
checkpoint's training recipe, convae.tasks.task_of), and let a page pick test pictures.
"""

from __future__ import annotations

import streamlit as st
import torch

from convae.catalog import ModelEntry
from convae.data import DataSet, ImageSet
from convae.tasks import pick
from pages.common import available_models, selected_models, source_label

TASK_LABELS = {
    "plain": "plain",
    "denoise": "denoiser",
    "inpaint": "inpainter",
    "colorize": "colouriser",
}
TRAIN_HINT = {
    "denoise": "gauss:0-0.4,saltpepper:0-0.3",
    "inpaint": "mask:4-16",
    "colorize": "grey,drop:any",
}


def fitting_models(data: DataSet) -> dict[str, ModelEntry]:
    return {k: m for k, m in available_models().items() if m.fits(data)}


def model_for(data: DataSet, task: str, decoder: str) -> ModelEntry | None:
    """The model for ``task`` with ``decoder``: a sidebar pick first, else any that fits
    (shipped before the session's own)."""
    models = fitting_models(data)
    cands = [(k, m.task, m.config.decoder) for k, m in models.items()]
    key = pick(cands, task, decoder, preferred=[m.key for m in selected_models()])
    return models.get(key) if key else None


def decoders_present(data: DataSet) -> list[str]:
    found = {m.config.decoder for m in fitting_models(data).values()}
    return [d for d in ("transpose", "upsample") if d in found]


def choose_decoder(page: str, data: DataSet) -> str:
    """A decoder picker (default: the first sidebar pick's decoder); stops with no model."""
    present = decoders_present(data)
    if not present:
        st.info(
            f"No model for {source_label(data.source)} yet: pick or train one "
            "(Train page), or add a checkpoint in the sidebar."
        )
        st.stop()
    key = f"{page}_decoder"
    if st.session_state.get(key) not in present:
        picked = [m.config.decoder for m in selected_models() if m.fits(data)]
        st.session_state[key] = picked[0] if picked and picked[0] in present else present[0]
    return st.segmented_control(
        "Decoder",
        present,
        key=key,
        required=True,
        persist_state="session",
        help="Which decoder's plain and task models to show.",
    )


def missing_task_model(task: str, decoder: str) -> None:
    st.warning(
        f"No {TASK_LABELS[task]} with the {decoder} decoder for this data set, so only the "
        f"plain model is shown. Train one with `python -m convae train --decoder {decoder} "
        f'--loss mse --corruption "{TRAIN_HINT[task]}"` and put it in checkpoints/.'
    )


def test_images(data: DataSet, classes: list[str]) -> ImageSet:
    images = data.test.filter(classes)
    if len(images) == 0:
        st.warning(f"The test split has no pictures of {', '.join(classes)}.")
        st.stop()
    return images


def pick_image(
    page: str, images: ImageSet, label: str = "Test picture", suffix: str = ""
) -> tuple[torch.Tensor, str]:
    """A number input over ``images``: returns (1, C, H, W) floats and its class name."""
    key = f"{page}_index{suffix}"
    n = len(images)
    if st.session_state.get(key, 0) >= n:
        st.session_state[key] = 0
    i = st.number_input(f"{label} (0-{n - 1:,})", 0, n - 1, key=key, persist_state="session")
    return images.floats(slice(i, i + 1)), images.classes[int(images.labels[i])]
