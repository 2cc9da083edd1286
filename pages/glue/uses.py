"""What the Uses pages (Denoise, Repair, Code, Style) share: for a decoder, the plain model
and the model trained for a task (from each checkpoint's recipe, convae.tasks.task_of).
"""

from __future__ import annotations

import streamlit as st

from convae.catalog import ModelEntry
from convae.data import DataSet
from convae.models import DECODER_LABELS, DECODERS
from convae.tasks import pick
from pages.glue.state import models_for, selected_models, source_label

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


def model_for(data: DataSet, task: str, decoder: str) -> ModelEntry | None:
    """The model for ``task`` with ``decoder``: a sidebar pick first, else any that fits
    (shipped before the session's own)."""
    models = models_for(data)
    cands = [(k, m.task, m.config.decoder) for k, m in models.items()]
    key = pick(cands, task, decoder, preferred=[m.key for m in selected_models()])
    return models.get(key) if key else None


def decoders_present(data: DataSet) -> list[str]:
    """The decoders of the models that take these pictures, in the family's order."""
    found = {m.config.decoder for m in models_for(data).values()}
    return sorted(found, key=lambda d: (DECODERS.index(d) if d in DECODERS else len(DECODERS), d))


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
    # A list, not a row of buttons: with the whole family there are up to 7, which a
    # row cannot hold in a column (it scrolled sideways at 1440 px and on a phone).
    return st.selectbox(
        "Decoder",
        present,
        key=key,
        format_func=lambda d: DECODER_LABELS.get(d, d),
        persist_state="session",
        help="Which decoder's plain and task models to show.",
    )


def missing_task_model(task: str, decoder: str) -> None:
    st.warning(
        f"No {TASK_LABELS[task]} with the {decoder} decoder for this data set, so only the "
        f"plain model is shown. Train one with `python -m convae train --decoder {decoder} "
        f'--loss mse --corruption "{TRAIN_HINT[task]}"` and put it in checkpoints/.'
    )
