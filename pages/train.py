"""Train: fit one model, or both decoders with the same seed, live in the page.

fit() runs inside this script run, reporting through its callback. Stop works the
Streamlit way: a click during a run asks Streamlit to rerun, which surfaces as a
ScriptControlException at our next st.* call inside the callback. The callback turns it
into "stop" (fit() then restores the last finished epoch and returns normally), the
finished model is kept, and only then is the exception re-raised so the rerun the
user asked for happens. So Stop, and any other click mid-run, keeps the work done.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import streamlit as st

from convae.checkpoints import Checkpoint, checkpoint_bytes, save_checkpoint
from convae.figures import training_curves
from convae.models import DECODERS
from convae.train import TrainConfig, TrainEvent, TrainResult, fit
from pages.common import (
    add_trained_model,
    checkpoints_dir,
    current_data,
    device_name,
    selected_classes,
    source_label,
)

try:  # where Streamlit 1.67 keeps its rerun / stop signals
    from streamlit.runtime.scriptrunner_utils.exceptions import (
        ScriptControlException as Interrupt,
    )
except ImportError:  # pragma: no cover - other Streamlit versions
    from streamlit.runtime.scriptrunner import StopException as Interrupt

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
UI_EVERY_S = 0.25  # progress text; also how quickly a Stop click is noticed
CHART_EVERY_S = 1.5  # redrawing the plotly curves costs more, so less often
MAX_STEP_POINTS = 400  # thin the per-step loss curve to keep the chart light
# Weights kept at step 0 and 8 points of every run (~2,000 parameters each), so the
# Compare page can show artifacts forming over training (issue 4).
SNAPSHOTS = 8

st.title("Train")
data = current_data()
if data is None:
    st.info("Training needs a data set; the sidebar says why there is none and how to get it.")
    st.stop()

classes = selected_classes()
all_classes = len(classes) == len(data.classes)
st.caption(
    f"Trains on {source_label(data.source)}, classes: "
    f"{'all' if all_classes else ', '.join(classes)} (change them in the sidebar), "
    f"on {device_name().upper()}. Trained models appear in the sidebar's model picker "
    "on every page."
)

# ------------------------------------------------------------------ settings
c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
decoder = c1.segmented_control(
    "Decoder",
    [*DECODERS, "both"],
    key="train_decoder",
    default="transpose",
    required=True,
    persist_state="session",
    format_func=lambda d: "both, same seed" if d == "both" else d,
    help="'both' trains a transpose and an upsample model one after the other with the "
    "same seed and data order: a fair comparison.",
)
loss = c2.radio(
    "Loss",
    ["mse", "bce"],
    key="train_loss",
    horizontal=True,
    persist_state="session",
    format_func={"bce": "BCE", "mse": "MSE"}.get,
    help="BCE as in the CIFAR-10 assignment, MSE as in the course notes.",
)
epochs = c3.number_input("Epochs", 1, 100, 3, key="train_epochs", persist_state="session")
BATCHES = [16, 32, 64, 128, 256]
batch = c4.selectbox(
    "Batch size",
    BATCHES,
    index=BATCHES.index(TrainConfig().batch_size),
    key="train_batch",
    persist_state="session",
)
c5, c6, c7, c8 = st.columns([2, 1, 1, 1])
lr = c5.number_input(
    "Learning rate",
    1e-5,
    1.0,
    TrainConfig().lr,
    format="%.4f",
    step=1e-3,
    key="train_lr",
    persist_state="session",
)
seed = c6.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed", persist_state="session")
noise = c7.slider(
    "Input noise (std)",
    0.0,
    0.5,
    0.0,
    0.05,
    key="train_noise",
    persist_state="session",
    help="Gaussian noise on the inputs only: a denoising autoencoder.",
)
n_train = len(data.train.filter(classes))
if n_train == 0:  # e.g. an empty class folder picked alone
    st.warning(
        f"There are no training images of {', '.join(classes)}. Pick classes that "
        "have images in the sidebar."
    )
    st.stop()
limit = c8.number_input(
    f"Training images (of {n_train:,})",
    1,
    max(n_train, 1),
    min(5000, n_train),
    step=1000,
    key="train_limit",
    persist_state="session",
    help="The first N training images; fewer is quicker on a CPU.",
)
steps_total = int(epochs) * -(-int(limit) // int(batch))
# Warm-up: the library default (500 steps) is tuned for full runs; for a short classroom
# run keep it to a tenth of the steps so the learning rate reaches its peak.
warmup = min(500, max(1, steps_total // 10))
st.caption(
    f"{steps_total:,} steps of {int(batch)} images; learning-rate warm-up "
    f"{warmup} steps, then cosine decay."
)

b1, b2, _ = st.columns([1, 1, 6])
start = b1.button("Train", type="primary", key="train_start")
b2.button("Stop", key="train_stop", help="Stops at once and keeps the last finished epoch.")


def _config(dec: str) -> TrainConfig:
    return TrainConfig(
        decoder=dec,
        loss=loss,
        epochs=int(epochs),
        batch_size=int(batch),
        lr=float(lr),
        warmup_steps=warmup,
        classes=() if all_classes else tuple(classes),
        limit=int(limit),
        noise=float(noise),
        seed=int(seed),
        device=device_name(),
    )


def _checkpoint(result: TrainResult) -> Checkpoint:
    return Checkpoint(
        result.model,
        result.model.config,
        result.train_config.to_dict(),
        result.history,
        result.test_metrics,
        result.data_fingerprint,
        data.source,
        datetime.now(UTC).isoformat(timespec="seconds"),
        snapshots=result.snapshots,
    )


class _Live:
    """fit()'s callback for one run: records the curves, redraws now and then, and turns
    a Streamlit interrupt (Stop or any other click) into "stop"."""

    def __init__(self, runs: list[dict], index: int, n_runs: int, bar, chart) -> None:
        self.runs, self.index, self.n_runs = runs, index, n_runs
        self.run = runs[index]
        self.bar, self.chart = bar, chart
        self.last_ui = self.last_chart = 0.0
        self.draws = 0
        self.interrupt: BaseException | None = None

    def __call__(self, ev: TrainEvent) -> bool:
        run = self.run
        if ev.kind == "step":
            if ev.step % run["keep_every"] == 0:
                run["steps"].append((ev.step, ev.loss))
            if len(run["steps"]) > MAX_STEP_POINTS:  # halve the resolution
                run["steps"] = run["steps"][::2]
                run["keep_every"] *= 2
        else:
            run["history"].append({"epoch": ev.epoch, "test_psnr": ev.test_psnr})
        now = time.perf_counter()
        try:
            if ev.kind == "epoch" or now - self.last_ui > UI_EVERY_S:
                self.last_ui = now
                total = ev.epochs * ev.steps_per_epoch
                done = (self.index + ev.step / total) / self.n_runs
                psnr = f", test PSNR {ev.test_psnr:.2f} dB" if ev.test_psnr else ""
                self.bar.progress(
                    min(done, 1.0),
                    text=(
                        f"{run['label']}: epoch {ev.epoch}/{ev.epochs}, step {ev.step}/{total}, "
                        f"loss {ev.loss:.4f}{psnr}, {ev.images_per_s:,.0f} images/s"
                    ),
                )
            if ev.kind == "epoch" or now - self.last_chart > CHART_EVERY_S:
                self.last_chart = now
                self.draws += 1  # a fresh key: two equal figures in one run would clash
                self.chart.plotly_chart(
                    training_curves(self.runs), key=f"train_live_{self.index}_{self.draws}"
                )
        except Interrupt as exc:  # see the module docstring
            self.interrupt = exc
            return True
        return False


def _summary(run: dict) -> dict:
    """What the page keeps of a run for redrawing after the rerun."""
    result: TrainResult | None = run.get("result")
    return {
        "label": run["label"],
        "steps": run["steps"],
        "history": result.history if result else run["history"],
        "stopped": bool(result and result.stopped),
        "diverged": result.diverged if result else None,
        "epochs_done": result.epochs_done if result else 0,
        "metrics": result.test_metrics if result else {},
        "seconds": result.seconds if result else 0.0,
    }


def _train(decoders: list[str]) -> None:
    """Run fit() for each decoder with live progress; keep what finished."""
    try:
        configs = [_config(d) for d in decoders]
    except ValueError as exc:
        st.error(f"Invalid settings: {exc}")
        return
    runs: list[dict] = []
    interrupt: BaseException | None = None
    status = st.status(f"Training {' and '.join(decoders)}...", expanded=True)
    with status:
        bar = st.progress(0.0, text="starting")
        chart = st.empty()
    for i, cfg in enumerate(configs):
        runs.append({"label": cfg.decoder, "steps": [], "history": [], "keep_every": 1})
        live = _Live(runs, i, len(configs), bar, chart)
        result = fit(cfg, data, live, snapshots=SNAPSHOTS)
        runs[i]["result"] = result
        if result.epochs_done:
            name = f"{cfg.decoder}-{cfg.loss}-{result.epochs_done}ep-seed{cfg.seed}"
            add_trained_model(_checkpoint(result), name)
            runs[i]["label"] = name
        interrupt = live.interrupt
        if result.diverged or interrupt is not None:
            break
    st.session_state["train_last"] = [_summary(r) for r in runs]
    if interrupt is not None:
        raise interrupt  # let Streamlit do the rerun the click asked for
    st.rerun()  # redraw with the new models in the sidebar's picker


if start:
    _train(list(DECODERS) if decoder == "both" else [decoder])

# ------------------------------------------------------------- last results
last = st.session_state.get("train_last")
if last:
    st.subheader("Last training run")
    for r in last:
        if r["diverged"]:
            st.error(f"{r['label']}: {r['diverged']}")
        elif r["epochs_done"] == 0:
            st.warning(
                f"{r['label']}: stopped before the first epoch finished, so no model was kept."
            )
        elif r["stopped"]:
            st.info(f"{r['label']}: stopped; kept epoch {r['epochs_done']}.")
    st.plotly_chart(training_curves(last), key="train_curves")
    rows = [
        {
            "model": r["label"],
            "epochs": r["epochs_done"],
            "test PSNR (dB)": r["metrics"].get("psnr"),
            "test SSIM": r["metrics"].get("ssim"),
            "test MSE": r["metrics"].get("mse"),
            "seconds": r["seconds"],
        }
        for r in last
        if r["epochs_done"]
    ]
    if rows:
        st.dataframe(
            rows,
            hide_index=True,
            column_config={
                "test PSNR (dB)": st.column_config.NumberColumn(format="%.2f"),
                "test SSIM": st.column_config.NumberColumn(format="%.3f"),
                "test MSE": st.column_config.NumberColumn(format="%.5f"),
                "seconds": st.column_config.NumberColumn(format="%.1f"),
            },
        )

# ------------------------------------------------------------ save / download
trained = st.session_state.get("trained_models", {})
if trained:
    st.subheader("Keep a trained model")
    keys = list(trained)
    key = st.selectbox(
        "Model", keys[::-1], key="train_keep_model", format_func=lambda k: trained[k].label
    )
    chosen = trained[key]
    ck = chosen.checkpoint
    meta = dict(
        train_config=ck.train_config,
        history=ck.history,
        snapshots=ck.snapshots,
        test_metrics=ck.test_metrics,
        data_fingerprint=ck.data_fingerprint,
        data_source=ck.data_source,
    )
    s1, s2 = st.columns([3, 1], vertical_alignment="bottom")
    name = s1.text_input(
        "Save as (in the checkpoints folder)",
        value=chosen.short,
        key="train_save_name",
        max_chars=64,
        help="Letters, digits, '.', '_' and '-'; '.pt' is added.",
    )
    name = name.strip().removesuffix(".pt")
    target = checkpoints_dir() / f"{name}.pt"
    overwrite = False
    if name and NAME_RE.match(name) and target.exists():
        overwrite = st.checkbox(f"Replace the existing {target.name}", key="train_overwrite")
    if s2.button("Save", key="train_save"):
        if not NAME_RE.match(name or ""):
            st.error(
                "Give a name of 1-64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit (no spaces or slashes)."
            )
        elif target.exists() and not overwrite:
            st.error(f"{target} already exists: tick 'Replace' or choose another name.")
        else:
            try:
                save_checkpoint(target, ck.model, **meta)
            except OSError as exc:
                st.error(f"Could not write {target}: {exc}")
            else:
                st.success(f"Saved {target}; it is listed under the shipped models now.")
    st.download_button(
        "Download checkpoint (.pt)",
        checkpoint_bytes(ck.model, **meta),
        file_name=f"{name or 'convae'}.pt",
        mime="application/octet-stream",
        key="train_download",
        on_click="ignore",
    )
