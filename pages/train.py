"""Train: fit one model, or both decoders with the same seed, live in the page.

fit() runs inside this script run, reporting through its callback. Stop works the
Streamlit way: a click during a run asks Streamlit to rerun, which surfaces as a
ScriptControlException at our next st.* call inside the callback. The callback turns it
into "stop" (fit() then restores the last finished epoch and returns normally), the
finished model is kept, and only then is the exception re-raised so the rerun the
user asked for happens. So Stop, and any other click mid-run, keeps the work done.

While it trains, the page shows test pictures rebuilt by the model as it is now and a
test PSNR measured at ten points of the run (a one-epoch run still draws a curve).
"""

from __future__ import annotations

import os
import re
import time

import streamlit as st
import torch

from convae.checkpoints import Checkpoint, checkpoint_bytes, save_checkpoint
from convae.figures import training_curves
from convae.models import DECODERS
from convae.recon import reconstruct_scored
from convae.train import TrainConfig, TrainEvent, TrainResult, fit
from pages import ui
from pages.common import (
    add_trained_model,
    checkpoints_dir,
    device_name,
    require_data,
    selected_classes,
    source_label,
    training_settings_error,
    training_slot,
    will_be_picked,
)

try:  # where Streamlit 1.67 keeps its rerun / stop signals
    from streamlit.runtime.scriptrunner_utils.exceptions import (
        ScriptControlException as Interrupt,
    )
except ImportError:  # pragma: no cover - other Streamlit versions
    from streamlit.runtime.scriptrunner import StopException as Interrupt

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
UI_EVERY_S = 0.25  # progress text; also how quickly a Stop click is noticed
MAX_STEP_POINTS = 400  # thin the per-step loss curve to keep the chart light
PROGRESS_POINTS = 10  # test PSNR and pictures measured this many times a run
PROGRESS_IMAGES = 500  # ... on this many test pictures
SHOWN = 8  # test pictures rebuilt live
# Weights kept at step 0 and 8 points of every run (~2,000 parameters each), so the
# Compare page can show artifacts forming over training.
SNAPSHOTS = 8
BATCHES = [16, 32, 64, 128, 256]


def teacher_mode() -> bool:
    """Saving into the server's checkpoints folder, which every student sees, is allowed
    only when the server was started with ``CONVAE_TEACHER=1``."""
    return os.environ.get("CONVAE_TEACHER", "").lower() in ("1", "true", "yes")


st.title("Train")
data = require_data()
classes = selected_classes()
all_classes = len(classes) == len(data.classes)
ui.takeaway(
    "Train your own autoencoder: it copies training pictures over and over and adjusts its "
    "weights after each batch. Watch the test pictures come into focus."
)

# ------------------------------------------------------------------ settings
defaults = TrainConfig()
c1, c2, c3, b1, b2 = st.columns([2.2, 1, 1.4, 0.9, 0.9], vertical_alignment="bottom")
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
epochs = c2.number_input("Epochs", 1, 100, 3, key="train_epochs", persist_state="session")
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
    min(5000, n_train),
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
    m1.radio(
        "Loss",
        ["mse", "bce"],
        key="train_loss",
        horizontal=True,
        persist_state="session",
        format_func={"bce": "BCE", "mse": "MSE"}.get,
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


ui.details("More settings: loss, batch size, learning rate, seed, noise", _more)
state = st.session_state
loss = state.get("train_loss", "mse")
batch = int(state.get("train_batch", defaults.batch_size))
lr = float(state.get("train_lr", defaults.lr))
seed = int(state.get("train_seed", 0))
noise = float(state.get("train_noise", 0.0))
steps_total = int(epochs) * -(-int(limit) // batch)
# Warm-up: the library default (500 steps) is tuned for full runs; for a short classroom
# run keep it to a tenth of the steps so the learning rate reaches its peak.
warmup = min(500, max(1, steps_total // 10))
st.caption(
    f"On {source_label(data.source)}, classes: {'all' if all_classes else ', '.join(classes)} "
    f"(change them in the sidebar), on the {device_name().upper()}: {steps_total:,} steps "
    f"of {batch} pictures, {loss.upper()} loss, learning rate {lr:g} with {warmup} warm-up "
    "steps, then cosine decay."
)


def _config(dec: str) -> TrainConfig:
    return TrainConfig(
        decoder=dec,
        loss=loss,
        epochs=int(epochs),
        batch_size=batch,
        lr=lr,
        warmup_steps=warmup,
        classes=() if all_classes else tuple(classes),
        limit=int(limit),
        noise=noise,
        seed=seed,
        device=device_name(),
    )


test_pool = data.test.filter(list(_config(DECODERS[0]).classes))
shown_x = test_pool.floats(slice(0, SHOWN))
shown_names = [test_pool.classes[i] for i in test_pool.labels[:SHOWN].tolist()]
progress_x = test_pool.images[:PROGRESS_IMAGES]


def _picture_rows(recons: list[tuple[str, torch.Tensor]]) -> list:
    """The live test pictures over each model's copies of them."""
    rows = [
        ui.row(
            "test pictures",
            shown_x,
            shown_names,
            [f"test picture {i}: {c}" for i, c in enumerate(shown_names)],
        )
    ]
    for label, recon in recons:
        rows.append(
            ui.row(
                label,
                recon,
                None,
                [f"test picture {i} ({c}) rebuilt by {label}" for i, c in enumerate(shown_names)],
            )
        )
    return rows


class _Live:
    """fit()'s callback for one run: records the curves, measures the test PSNR and
    redraws the pictures at PROGRESS_POINTS steps, and turns a Streamlit interrupt (Stop
    or any other click) into "stop"."""

    def __init__(self, runs: list[dict], index: int, n_runs: int, bar, chart, pics) -> None:
        self.runs, self.index, self.n_runs = runs, index, n_runs
        self.run = runs[index]
        self.bar, self.chart, self.pics = bar, chart, pics
        self.last_ui = 0.0
        self.draws = 0
        self.marks: set[int] = set()
        self.interrupt: BaseException | None = None

    def _measure(self, ev: TrainEvent) -> None:
        """Test PSNR and pictures of the model as it is after ``ev.step`` steps."""
        with torch.no_grad():
            net = ev.model
            x = progress_x.to(next(net.parameters()).device).float().div_(255)
            psnr = reconstruct_scored(net, x).mean_psnr
            recon = net(shown_x.to(x.device)).cpu()
        self.run["psnr_points"].append((ev.step, psnr))
        self.run["recon"] = recon
        self.draws += 1  # a fresh key: two equal figures in one run would clash
        self.chart.plotly_chart(
            training_curves(self.runs), key=f"train_live_{self.index}_{self.draws}"
        )
        with self.pics.container():
            ui.pictures(
                _picture_rows([(f"{self.run['label']}, step {ev.step}", recon)]),
                columns=SHOWN,
                title="Test pictures and the model's copies so far",
            )

    def __call__(self, ev: TrainEvent) -> bool:
        run = self.run
        total = ev.epochs * ev.steps_per_epoch
        if not self.marks:
            self.marks = {1} | {
                round(total * k / PROGRESS_POINTS) for k in range(1, PROGRESS_POINTS + 1)
            }
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
            if ev.kind == "step" and ev.step in self.marks and ev.model is not None:
                self.marks.discard(ev.step)
                self._measure(ev)
            if ev.kind == "epoch" or now - self.last_ui > UI_EVERY_S:
                self.last_ui = now
                done = (self.index + ev.step / total) / self.n_runs
                psnr = f", test PSNR {ev.test_psnr:.2f} dB" if ev.test_psnr else ""
                self.bar.progress(
                    min(done, 1.0),
                    text=(
                        f"{run['label']}: epoch {ev.epoch}/{ev.epochs}, step {ev.step}/{total}, "
                        f"loss {ev.loss:.4f}{psnr}, {ev.images_per_s:,.0f} pictures/s"
                    ),
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
        "psnr_points": run["psnr_points"],
        "history": result.history if result else run["history"],
        "stopped": bool(result and result.stopped),
        "diverged": result.diverged if result else None,
        "epochs_done": result.epochs_done if result else 0,
        "metrics": result.test_metrics if result else {},
        "seconds": result.seconds if result else 0.0,
        "key": run.get("key"),
        "picked": run.get("picked", True),
    }


def _train(decoders: list[str]) -> None:
    """Run fit() for each decoder with live progress; keep what finished."""
    try:
        configs = [_config(d) for d in decoders]
    except ValueError as exc:
        st.error(f"Invalid settings: {exc}")
        return
    if problem := training_settings_error():
        st.error(problem)
        return
    with training_slot(f"train: {' and '.join(decoders)}", st.empty()):
        _train_now(configs)


def _train_now(configs: list[TrainConfig]) -> None:
    """The runs themselves, once this session holds a training slot."""
    runs: list[dict] = []
    interrupt: BaseException | None = None
    # Filled through its methods, not `with st.status(...)`: leaving that block at once
    # (the training runs after it) marked the box complete before anything had run, and
    # Streamlit re-sends the box without its `expanded` flag 50 ms later; a browser that
    # drew both messages together (a slow or busy one) showed the box closed, so the
    # progress, pictures and chart were hidden for the whole run (issue 21).
    status = st.status(f"Training {' and '.join(c.decoder for c in configs)}...", expanded=True)
    bar = status.progress(0.0, text="starting")
    pics = status.empty()
    chart = status.empty()
    for i, cfg in enumerate(configs):
        runs.append(
            {"label": cfg.decoder, "steps": [], "history": [], "keep_every": 1, "psnr_points": []}
        )
        live = _Live(runs, i, len(configs), bar, chart, pics)
        result = fit(cfg, data, live, snapshots=SNAPSHOTS)
        runs[i]["result"] = result
        if result.epochs_done:
            n = len(st.session_state.get("trained_models", {})) + 1
            name = f"run{n}-{cfg.decoder}-{result.epochs_done}ep"
            runs[i]["picked"] = will_be_picked()
            runs[i]["key"] = add_trained_model(
                Checkpoint.from_training(result, data.source), name
            ).key
            runs[i]["label"] = name
            runs[i]["recon"] = reconstruct_scored(result.model, shown_x).images
        interrupt = live.interrupt
        if result.diverged or interrupt is not None:
            break
    st.session_state["train_last"] = [_summary(r) for r in runs]
    st.session_state["train_last_recon"] = [
        (r["label"], r["recon"]) for r in runs if r.get("recon") is not None
    ]
    st.session_state["train_keep_model"] = next(
        (r["key"] for r in reversed(runs) if r.get("key")), None
    )  # the newest run
    if interrupt is not None:
        raise interrupt  # let Streamlit do the rerun the click asked for
    st.rerun()  # redraw with the new models in the sidebar's picker


if start:
    _train(list(DECODERS) if decoder == "both" else [decoder])

# ------------------------------------------------------------- last results
last = st.session_state.get("train_last")
if not last and not start:
    # Before any run: the test pictures whose copies the training will draw, live.
    ui.pictures(
        _picture_rows([]),
        columns=SHOWN,
        title="Test pictures the trained model will rebuild",
    )
    ui.note(
        "While it trains, the model's copies of these test pictures appear under them, "
        f"redrawn {PROGRESS_POINTS} times a run: blurry blobs first, then shapes and colours."
    )
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
        if r["epochs_done"]:
            where = (
                "added to the sidebar's models, after the ones you had picked"
                if r["picked"]
                else "in the sidebar's model list (your picks are full: pick it there to use it)"
            )
            st.caption(
                f"{r['label']}: {where}. Every page keeps showing the models you picked first."
            )
    rows = _picture_rows(st.session_state.get("train_last_recon") or [])
    ui.pictures(rows, columns=SHOWN, title="Test pictures and the trained models' copies")
    ui.chart(
        training_curves(last),
        key="train_curves",
        summary="Left: the training loss after every step. Right: the test PSNR, "
        f"measured {PROGRESS_POINTS} times a run on {min(PROGRESS_IMAGES, len(test_pool))}"
        " test pictures (higher is better).",
    )
    table = [
        {
            "model": r["label"],
            "epochs": r["epochs_done"],
            "test PSNR (dB)": r["metrics"].get("psnr"),
            "test SSIM": r["metrics"].get("ssim"),
            "seconds": r["seconds"],
        }
        for r in last
        if r["epochs_done"]
    ]
    if table:
        st.dataframe(
            table,
            hide_index=True,
            column_config={
                "test PSNR (dB)": st.column_config.NumberColumn(format="%.2f"),
                "test SSIM": st.column_config.NumberColumn(format="%.3f"),
                "seconds": st.column_config.NumberColumn(format="%.1f"),
            },
        )

# ------------------------------------------------------------ save / download
trained = st.session_state.get("trained_models", {})
if trained:
    st.subheader("Keep a trained model")
    keys = list(trained)[::-1]  # newest first
    if st.session_state.get("train_keep_model") not in keys:
        st.session_state["train_keep_model"] = keys[0]
    s1, s2, s3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    key = s1.selectbox(
        "Model", keys, key="train_keep_model", format_func=lambda k: trained[k].label
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
    s2.download_button(
        "Download checkpoint (.pt)",
        checkpoint_bytes(ck.model, **meta),
        file_name=f"{chosen.name}.pt",
        mime="application/octet-stream",
        key="train_download",
        on_click="ignore",
        icon=":material/download:",
    )
    if not teacher_mode():
        st.caption(
            "Models you train live in your browser session only; download one to "
            "keep it. (Saving into the server's shared checkpoints folder is for the "
            "teacher: start the server with CONVAE_TEACHER=1.)"
        )
    else:
        name = s1.text_input(
            "Save as (in the server's checkpoints folder, for everyone)",
            value=chosen.name,
            key="train_save_name",
            max_chars=64,
            help="Letters, digits, '.', '_' and '-'; '.pt' is added.",
        )
        name = name.strip().removesuffix(".pt")
        target = checkpoints_dir() / f"{name}.pt"
        overwrite = False
        if name and NAME_RE.match(name) and target.exists():
            overwrite = st.checkbox(f"Replace the existing {target.name}", key="train_overwrite")
        if s3.button("Save", key="train_save"):
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
                    st.success(
                        f"Saved {target}; every session lists it under the shipped models now."
                    )
