"""The one training driver of the app: Train and Compare both train through it.

:func:`train_models` checks the server's training settings, waits for a turn in the
server-wide training queue (convae.training_queue), runs fit() for each recipe with live
progress in the page, turns each finished run into a checkpoint and registers it as one of
the session's models.

Stop works the Streamlit way: a click during a run asks Streamlit to rerun, which surfaces
as a ScriptControlException at our next st.* call inside fit()'s callback. The callback
turns it into "stop" (fit() then restores the last finished epoch and returns normally),
the finished model is kept, and only then is the exception re-raised so the rerun the
user asked for happens. So Stop, and any other click mid-run, keeps the work done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from convae import train as trainer  # trainer.fit: tests may wrap it
from convae.checkpoints import Checkpoint
from convae.data import DataSet, ImageSet
from convae.figures import training_curves
from convae.progress import PROGRESS_POINTS, SHOWN, LivePoint, LiveRun
from convae.recon import reconstruct
from convae.train import TrainConfig, TrainEvent, TrainResult
from convae.training_queue import env_nice, ordinal, training_queue, training_resources
from pages.glue import classroom, draw
from pages.glue.state import add_trained_model, checkpoints_dir, will_be_picked

try:  # where Streamlit 1.67 keeps its rerun / stop signals
    from streamlit.runtime.scriptrunner_utils.exceptions import (
        ScriptControlException as Interrupt,
    )
except ImportError:  # pragma: no cover - other Streamlit versions
    from streamlit.runtime.scriptrunner import StopException as Interrupt

UI_EVERY_S = 0.25  # progress text; also how quickly a Stop click is noticed
# Weights kept at step 0 and 8 points of every run (~2,000 parameters each), so the
# Compare page can show artifacts forming over training.
SNAPSHOTS = 8
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# ------------------------------------------------------------- the server's rules


def settings_problem() -> str | None:
    """What is wrong with the server's training settings ($CONVAE_MAX_TRAININGS,
    $CONVAE_TRAINING_NICE), as one sentence for the page, or None when they are usable.
    Asked before a run, so a wrong value is an error on the page, not an exception
    inside the training."""
    try:
        training_queue()
        env_nice()
    except ValueError as exc:
        return f"The server's training settings are wrong: {exc}"
    return None


@contextlib.contextmanager
def training_slot(what: str, where) -> Iterator[None]:
    """Wait for a turn in the server's training queue, then train with its resources.

    While waiting, ``where`` (an ``st.empty``) says the place in line every half second;
    any click (Stop included) interrupts the wait at that redraw and gives the place up,
    so nothing is lost and no slot is held. Inside, the training runs with one OpenMP
    thread at a lower priority (convae.training_queue.training_resources), so the students
    who are only looking keep quick clicks.
    """
    queue = training_queue()
    with queue.ticket(what) as ticket:
        while not ticket.wait(timeout=0.5):
            n = len(queue.snapshot()["running"])
            where.info(
                f"The server runs {queue.limit} training{'s' if queue.limit > 1 else ''} "
                f"at a time and {n} {'is' if n == 1 else 'are'} running: you are "
                f"{ordinal(ticket.position())} in line (waiting {ticket.waited():.0f} s). "
                "Yours starts by itself when a turn frees up; click **Stop** to leave the line.",
                icon=":material/hourglass_top:",
            )
        where.empty()
        with training_resources():
            yield


# ------------------------------------------------------------------ live view


@dataclass
class Shown:
    """Test pictures a run redraws while it trains (Train), or none (a bar only)."""

    test: ImageSet  # the test split the page shows (filtered to the picked classes)

    @property
    def x(self) -> torch.Tensor:
        return self.test.floats(slice(0, SHOWN))

    @property
    def classes(self) -> list[str]:
        return [self.test.classes[i] for i in self.test.labels[:SHOWN].tolist()]

    def rows(self, recons: Sequence[tuple[str, torch.Tensor]]) -> list:
        """The pictures over each model's copies of them."""
        classes, indices = self.classes, range(len(self.classes))
        names = draw.picture_names("test", indices, classes)
        top = draw.input_row(
            "test pictures", self.x, classes, draw.input_alts("test", indices, classes)
        )
        return [top] + [
            draw.row(label, r, None, [f"{n} rebuilt by {label}" for n in names])
            for label, r in recons
        ]


@dataclass
class Run:
    """What the page keeps of one run for redrawing after the rerun."""

    live: LiveRun
    result: TrainResult | None = None
    key: str | None = None
    picked: bool = True
    recon: torch.Tensor | None = None

    def summary(self) -> dict:
        r = self.result
        return {
            **self.live.curve(),
            "history": r.history if r else self.live.history,
            "stopped": bool(r and r.stopped),
            "where": self.live.where(),
            "diverged": r.diverged if r else None,
            "epochs_done": r.epochs_done if r else 0,
            "metrics": r.test_metrics if r else {},
            "seconds": r.seconds if r else 0.0,
            "key": self.key,
            "picked": self.picked,
            "recon": self.recon,
        }


class LiveView:
    """fit()'s callback for the runs of one click: a progress bar; with ``shown``, also
    the test PSNR and the pictures redrawn as convae.progress measures them, and the
    curves. A Streamlit interrupt (Stop or any other click) becomes "stop"."""

    def __init__(self, what: str, n_runs: int, test: ImageSet, shown: Shown | None = None) -> None:
        self.n_runs, self.test, self.shown = n_runs, test, shown
        self.runs: list[Run] = []
        self.interrupt: BaseException | None = None
        self.last_ui = 0.0
        # Filled through its methods, not `with st.status(...)`: leaving that block at once
        # (the training runs after it) marked the box complete before anything had run, and
        # Streamlit re-sends the box without its `expanded` flag 50 ms later; a browser that
        # drew both messages together (a slow or busy one) showed the box closed, so the
        # progress, pictures and chart were hidden for the whole run (issue 21).
        box = st.status(f"Training {what}...", expanded=True) if shown else st
        self.bar = box.progress(0.0, text="starting")
        self.pics = box.empty() if shown else None
        self.chart = box.empty() if shown else None

    def start(self, label: str) -> Callable[[TrainEvent], bool]:
        self.runs.append(Run(LiveRun(label, self.test, measure=self.shown is not None)))
        return self._event

    def _draw(self, point: LivePoint) -> None:
        run = self.runs[-1]
        self.chart.plotly_chart(
            training_curves([r.live.curve() for r in self.runs]),
            key=f"train_live_{len(self.runs)}_{len(run.live.psnr_points)}",
        )
        with self.pics.container():
            draw.pictures(
                self.shown.rows([(f"{run.live.label}, step {point.step}", point.pictures)]),
                columns=SHOWN,
                title="Test pictures and the model's copies so far",
            )

    def _event(self, ev: TrainEvent) -> bool:
        live = self.runs[-1].live
        point = live.update(ev)
        now = time.perf_counter()
        try:
            if point is not None:
                self._draw(point)
            if ev.kind == "epoch" or now - self.last_ui > UI_EVERY_S:
                self.last_ui = now
                done, text = live.status(ev, len(self.runs) - 1, self.n_runs)
                self.bar.progress(done, text=text)
        except Interrupt as exc:  # see the module docstring
            self.interrupt = exc
            return True
        return False


# ------------------------------------------------------------------- the driver


def train_models(
    configs: Sequence[TrainConfig],
    data: DataSet,
    name: Callable[[TrainConfig, TrainResult], str],
    on_done: Callable[[list[dict]], None],
    *,
    shown: Shown | None = None,
    first: bool = False,
    test_images: int | None = None,
) -> None:
    """Train each recipe in turn (waiting for a turn in the server's queue), register
    every finished model in this session, and hand the runs' summaries to ``on_done``.

    Args:
        configs: the recipes, trained one after the other (e.g. both decoders).
        data: the data set (its test split is scored after every epoch).
        name: the name a finished run's model gets.
        on_done: receives one summary dict per run (also when a click stopped them).
        shown: test pictures to redraw while training (Train); None: a bar only.
        first: the new models go before the sidebar's picks (they are what the page
            trained in order to show them).
        test_images: score only this many test pictures per epoch (a quick run).
    """
    if problem := settings_problem():
        st.error(problem)
        return
    if test_images is not None:
        data = dataclasses.replace(data, test=data.test.head(test_images))
    what = " and ".join(c.decoder for c in configs)
    with training_slot(f"train: {what}", st.empty()):
        test = data.test.filter(list(configs[0].classes))
        live = LiveView(what, len(configs), test, shown)
        for cfg in configs:
            result = trainer.fit(cfg, data, live.start(cfg.decoder), snapshots=SNAPSHOTS)
            run = live.runs[-1]
            run.result = result
            if result.epochs_done:
                run.live.label = name(cfg, result)
                run.picked = first or will_be_picked()
                ck = Checkpoint.from_training(result, data.source)
                run.key = add_trained_model(ck, run.live.label, first=first).key
                if shown is not None:
                    run.recon = reconstruct(result.model, shown.x)
            if result.diverged or live.interrupt is not None:
                break
    on_done([r.summary() for r in live.runs])
    if live.interrupt is not None:
        raise live.interrupt  # let Streamlit do the rerun the click asked for
    st.rerun()  # redraw with the new models in the sidebar's picker


# --------------------------------------------------------------- keeping a model


def may_save() -> bool:
    """Saving into the server's checkpoints folder, which every student sees, is the
    teacher's alone: a session that proved the teacher key (pages/glue/classroom.py)."""
    return classroom.is_teacher()


def server_target(name: str) -> Path | None:
    """Where a model saved under ``name`` goes in the server's folder (None: a bad name)."""
    name = name.strip().removesuffix(".pt")
    return checkpoints_dir() / f"{name}.pt" if NAME_RE.match(name) else None


def save_into_server_folder(ck: Checkpoint, name: str, overwrite: bool) -> str | None:
    """Write a trained model into the server's checkpoints folder (every session lists it
    then). Returns an error sentence, or None when it was saved."""
    target = server_target(name)
    if target is None:
        return (
            "Give a name of 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (no spaces or slashes)."
        )
    if target.exists() and not overwrite:
        return f"{target} already exists: tick 'Replace' or choose another name."
    try:
        ck.save(target)
    except OSError as exc:
        return f"Could not write {target}: {exc}"
    return None


# ------------------------------------------------------------------ what it made


def show_runs(last: list[dict], shown: Shown, measured: int) -> None:
    """The last click's runs: what became of each, the pictures, the curves, a table.

    Args:
        last: the runs' summaries (:meth:`Run.summary`).
        shown: the test pictures the runs redrew.
        measured: how many test pictures the live PSNR was measured on.
    """
    st.subheader("Last training run")
    for r in last:
        if r["diverged"]:
            st.error(f"{r['label']}: {r['diverged']}")
        elif r["epochs_done"] == 0:
            st.warning(
                f"{r['label']}: stopped {r['where']}, before the first epoch finished, "
                "so no model was kept."
            )
        elif r["stopped"]:
            st.info(f"{r['label']}: stopped {r['where']}; kept epoch {r['epochs_done']}.")
        if r["epochs_done"]:
            where = (
                "added to the sidebar's models, after the ones you had picked"
                if r["picked"]
                else "in the sidebar's model list (your picks are full: pick it there to use it)"
            )
            st.caption(
                f"{r['label']}: {where}. Every page keeps showing the models you picked first."
            )
    recons = [(r["label"], r["recon"]) for r in last if r["recon"] is not None]
    draw.pictures(
        shown.rows(recons),
        columns=len(shown.x),
        title="Test pictures and the trained models' copies",
    )
    draw.chart(
        training_curves(last),
        key="train_curves",
        summary="Left: the training loss after every step. Right: the test PSNR, measured "
        f"{PROGRESS_POINTS} times a run on {measured}"
        " test pictures (higher is better).",
    )
    draw.table(
        [
            {
                "model": r["label"],
                "epochs": r["epochs_done"],
                "test PSNR (dB)": r["metrics"].get("psnr"),
                "test SSIM": r["metrics"].get("ssim"),
                "seconds": r["seconds"],
            }
            for r in last
            if r["epochs_done"]
        ],
        {"test PSNR": "%.2f", "test SSIM": "%.3f", "seconds": "%.1f"},
    )


def keep_trained_model() -> None:
    """Download one of this session's trained models, or (the teacher) save it into the
    server's checkpoints folder."""
    trained = st.session_state.get("trained_models", {})
    if not trained:
        return
    st.subheader("Keep a trained model")
    keys = list(trained)[::-1]  # newest first
    state = st.session_state
    newest = state.get("train_keep_newest")
    if newest in keys and state.get("train_keep_applied") != newest:
        # A run just finished: offer it, once (the student may pick another afterwards).
        state["train_keep_model"] = state["train_keep_applied"] = newest
    elif state.get("train_keep_model") not in keys:
        state["train_keep_model"] = keys[0]
    s1, s2, s3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    key = s1.selectbox(
        "Model", keys, key="train_keep_model", format_func=lambda k: trained[k].label
    )
    chosen = trained[key]
    s2.download_button(
        "Download checkpoint (.pt)",
        chosen.checkpoint.to_bytes(),
        file_name=f"{chosen.name}.pt",
        mime="application/octet-stream",
        key="train_download",
        on_click="ignore",
        icon=":material/download:",
    )
    if not may_save():
        st.caption(
            "Models you train live in your browser session only; download one to keep it. "
            "(Saving into the server's shared checkpoints folder is for the teacher: sign in "
            "with the teacher key the server printed at start.)"
        )
    else:
        name = s1.text_input(
            "Save as (in the server's checkpoints folder, for everyone)",
            value=chosen.name,
            key="train_save_name",
            max_chars=64,
            help="Letters, digits, '.', '_' and '-'; '.pt' is added.",
        )
        target = server_target(name)
        overwrite = bool(target and target.exists()) and st.checkbox(
            f"Replace the existing {target.name}", key="train_overwrite"
        )
        if s3.button("Save", key="train_save"):
            if problem := save_into_server_folder(chosen.checkpoint, name, overwrite):
                st.error(problem)
            else:
                st.success(
                    f"Saved {name.strip().removesuffix('.pt')}.pt; every session lists it now."
                )
