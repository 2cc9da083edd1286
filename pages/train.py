"""Train: fit one model, or both decoders with the same seed, live in the page.

The training itself (the queue, fit(), Stop, registering the models) is the app's one
training driver, pages/glue/training.py; this page holds its settings and what it shows.
"""

from __future__ import annotations

import streamlit as st

from convae.models import DECODER_LABELS, DECODERS, SEED_DECODERS
from convae.progress import PROGRESS_IMAGES, PROGRESS_POINTS, SHOWN
from convae.recipes import CLASSROOM_EPOCHS, CLASSROOM_PICTURES, classroom_config
from convae.train import TrainConfig
from pages.glue import draw, training
from pages.glue.state import device_name, require_data, selected_classes, source_label
from pages.glue.widgets import radio_row

BATCHES = [16, 32, 64, 128, 256]

st.title("Train")
data = require_data()
classes = selected_classes()
all_classes = len(classes) == len(data.classes)
draw.takeaway(
    "Train your own autoencoder: it copies training pictures over and over and adjusts its "
    "weights after each batch. Watch the test pictures come into focus."
)

# ------------------------------------------------------------------ settings
defaults = TrainConfig()
c1, c2, c3, b1, b2 = st.columns([2.2, 1, 1.4, 0.9, 0.9], vertical_alignment="bottom")
decoder = c1.segmented_control(
    "Decoder",
    [*SEED_DECODERS, "both", "family"],
    key="train_decoder",
    default="transpose",
    required=True,
    persist_state="session",
    # Short labels: the four buttons fit one row of a phone (390 px) and of this column.
    format_func=lambda d: {"family": "other…"}.get(d, d),
    help="'both' trains a transpose and an upsample model one after the other with the "
    "same seed and data order: a fair comparison. 'other…' offers the rest of the "
    "decoder family (kernel 3 and 4 transpose, bilinear, sub-pixel).",
)
if decoder == "family":
    others = [d for d in DECODERS if d not in SEED_DECODERS]
    decoder = c1.selectbox(
        "Which decoder", others, key="train_family", format_func=DECODER_LABELS.get
    )
epochs = c2.number_input(
    "Epochs", 1, 100, CLASSROOM_EPOCHS, key="train_epochs", persist_state="session"
)
n_train = len(data.train.filter(classes))
if n_train == 0:  # e.g. an empty class folder picked alone
    st.warning(
        f"There are no training pictures of {', '.join(classes)}. Pick classes that "
        "have pictures in the sidebar."
    )
    st.stop()
limit = c3.number_input(
    f"Training pictures (of {n_train:,})",
    1,
    max(n_train, 1),
    min(CLASSROOM_PICTURES, n_train),
    step=1000,
    key="train_limit",
    persist_state="session",
    help="The first N training pictures; fewer is quicker on a CPU.",
)
start = b1.button(
    "Train", type="primary", key="train_start", width="stretch", icon=":material/play_arrow:"
)
b2.button(
    "Stop",
    key="train_stop",
    width="stretch",
    icon=":material/stop:",
    help="Stops at once and keeps the last finished epoch.",
)


def _more() -> None:
    m1, m2, m3, m4, m5 = st.columns([1, 1, 1.4, 1, 1.2])
    radio_row(
        "Loss",
        ["mse", "bce"],
        "train_loss",
        where=m1,
        labels={"bce": "BCE", "mse": "MSE"},
        help="MSE (mean squared error) as in the course notes, BCE (binary cross "
        "entropy) as in the CIFAR-10 assignment.",
    )
    m2.selectbox(
        "Batch size",
        BATCHES,
        index=BATCHES.index(defaults.batch_size),
        key="train_batch",
        persist_state="session",
    )
    m3.number_input(
        "Learning rate",
        1e-5,
        1.0,
        defaults.lr,
        format="%.4f",
        step=1e-3,
        key="train_lr",
        persist_state="session",
    )
    m4.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed", persist_state="session")
    m5.slider(
        "Input noise (std)",
        0.0,
        0.5,
        0.0,
        0.05,
        key="train_noise",
        persist_state="session",
        help="Gaussian noise on the inputs only: a denoising autoencoder.",
    )


draw.details("More settings: loss, batch size, learning rate, seed, noise", _more)
state = st.session_state


def _config(dec: str) -> TrainConfig:
    return classroom_config(
        dec,
        epochs=int(epochs),
        limit=int(limit),
        batch_size=int(state.get("train_batch", defaults.batch_size)),
        lr=float(state.get("train_lr", defaults.lr)),
        loss=state.get("train_loss", defaults.loss),
        seed=int(state.get("train_seed", 0)),
        noise=float(state.get("train_noise", 0.0)),
        classes=classes,
        all_classes=data.classes,
        device=device_name(),
    )


try:
    configs = [_config(d) for d in (SEED_DECODERS if decoder == "both" else [decoder])]
except ValueError as exc:
    st.error(f"Invalid settings: {exc}")
    st.stop()
cfg = configs[0]
st.caption(
    f"On {source_label(data.source)}, classes: {'all' if all_classes else ', '.join(classes)} "
    f"(change them in the sidebar), on the {device_name().upper()}: "
    f"{cfg.epochs * -(-cfg.limit // cfg.batch_size):,} steps of {cfg.batch_size} pictures, "
    f"{cfg.loss.upper()} loss, learning rate {cfg.lr:g} with {cfg.warmup_steps} warm-up "
    "steps, then cosine decay."
)
test_pool = data.test.filter(list(cfg.classes))
shown = training.Shown(test_pool)


def _keep(runs: list[dict]) -> None:
    state["train_last"] = runs
    # Not the picker's own key: a Stop click's rerun carries the picker's shown value and
    # would put it back; keep_trained_model applies this once, before drawing the picker.
    state["train_keep_newest"] = next((r["key"] for r in reversed(runs) if r["key"]), None)


if start:
    training.train_models(
        configs,
        data,
        lambda c, r: f"run{len(state.get('trained_models', {})) + 1}-{c.decoder}-{r.epochs_done}ep",
        _keep,
        shown=shown,
    )

# ------------------------------------------------------------- last results
last = state.get("train_last")
if not last:
    draw.pictures(
        shown.rows([]), columns=SHOWN, title="Test pictures the trained model will rebuild"
    )
    draw.note(
        "While it trains, the model's copies of these test pictures appear under them, "
        f"redrawn {PROGRESS_POINTS} times a run: blurry blobs first, then shapes "
        "and colours."
    )
else:
    training.show_runs(last, shown, min(PROGRESS_IMAGES, len(test_pool)))
training.keep_trained_model()
