"""A training run's live progress, for a page that draws it while fit() runs.

What the Train page shows during a run is measured here, with no Streamlit: the loss of
every step (thinned to at most 400 points, so the chart stays light however long the
run), and at step 1 and 10 evenly spaced steps the test PSNR of the model as it is then,
on 500 test pictures, with the first 8 test pictures rebuilt. So even a one-epoch run
draws a PSNR curve, and the pictures come into focus in front of the class. The page
passes every :class:`~convae.train.TrainEvent` to :meth:`LiveRun.update` and draws what
comes back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import ImageSet
from .recon import reconstruct, reconstruct_scored
from .train import TrainEvent

PROGRESS_POINTS = 10  # test PSNR and pictures measured this many times a run (and at step 1)
PROGRESS_IMAGES = 500  # ... on this many test pictures: about 0.1 s a measurement on a CPU
SHOWN = 8  # test pictures rebuilt live
MAX_STEP_POINTS = 400  # the loss curve keeps at most this many points


@dataclass
class LivePoint:
    """The model as it was after ``step`` steps.

    Attributes:
        step: optimizer steps done.
        psnr: test PSNR (of the mean MSE) on the measured test pictures, dB.
        pictures: the shown test pictures rebuilt, float (N, C, H, W) on the CPU.
    """

    step: int
    psnr: float
    pictures: torch.Tensor


def measuring_steps(total: int, points: int = PROGRESS_POINTS) -> set[int]:
    """Step 1 and ``points`` evenly spaced steps of a run of ``total`` steps, the last
    being the final step."""
    return {1} | {round(total * k / points) for k in range(1, points + 1)}


class LiveRun:
    """One run's live record: feed it every event, draw what it returns.

    Args:
        label: the run's name on the chart (e.g. its decoder).
        test: the test split the page shows (already filtered to the picked classes).
        points, images, shown: see :data:`PROGRESS_POINTS`, :data:`PROGRESS_IMAGES`,
            :data:`SHOWN`.
        measure: False records the loss and epochs only (a page that shows a bar, not
            pictures, has no use for the measurements).

    Attributes:
        steps: [(step, loss)], thinned to at most :data:`MAX_STEP_POINTS`.
        psnr_points: [(step, test PSNR)] measured so far.
        history: [{"epoch", "test_psnr"}] of the finished epochs.
        pictures: the shown pictures' latest copies (None before the first measurement).
    """

    def __init__(
        self,
        label: str,
        test: ImageSet,
        points: int = PROGRESS_POINTS,
        images: int = PROGRESS_IMAGES,
        shown: int = SHOWN,
        measure: bool = True,
    ) -> None:
        self.label, self.points, self.measure = label, points, measure
        self.measured = test.images[:images]
        self.shown = test.floats(slice(0, shown))
        self.steps: list[tuple[int, float]] = []
        self.psnr_points: list[tuple[int, float]] = []
        self.history: list[dict] = []
        self.pictures: torch.Tensor | None = None
        self._keep_every = 1
        self._marks: set[int] | None = None
        self._last: tuple[str, int, int, int] | None = None  # kind, epoch, step, steps/epoch

    def update(self, ev: TrainEvent) -> LivePoint | None:
        """Record ``ev``; at a measuring step, measure the model and return the point.

        The model is read through :func:`convae.recon.reconstruct`, a private copy, so
        the training is not disturbed.
        """
        if self._marks is None:
            self._marks = measuring_steps(ev.epochs * ev.steps_per_epoch, self.points)
        self._last = (ev.kind, ev.epoch, ev.step, ev.steps_per_epoch)
        if ev.kind == "epoch":
            self.history.append({"epoch": ev.epoch, "test_psnr": ev.test_psnr})
            return None
        if ev.step % self._keep_every == 0:
            self.steps.append((ev.step, ev.loss))
        if len(self.steps) > MAX_STEP_POINTS:  # halve the resolution
            self.steps = self.steps[::2]
            self._keep_every *= 2
        if not self.measure or ev.step not in self._marks or ev.model is None:
            return None
        self._marks.discard(ev.step)
        point = LivePoint(
            ev.step,
            reconstruct_scored(ev.model, self.measured).mean_psnr,
            reconstruct(ev.model, self.shown),
        )
        self.psnr_points.append((point.step, point.psnr))
        self.pictures = point.pictures
        return point

    def curve(self) -> dict:
        """This run for :func:`convae.figures.training_curves`."""
        return {
            "label": self.label,
            "steps": self.steps,
            "psnr_points": self.psnr_points,
            "history": self.history,
        }

    def where(self) -> str:
        """Where the run was at its latest event, in words: where a Stop was taken
        ("in epoch 2, at step 61 of its 376" or "at the end of epoch 2")."""
        if self._last is None:
            return "before its first step"
        kind, epoch, step, per_epoch = self._last
        if kind == "epoch":
            return f"at the end of epoch {epoch}"
        return f"in epoch {epoch}, at step {step - (epoch - 1) * per_epoch:,} of its {per_epoch:,}"

    def status(self, ev: TrainEvent, index: int = 0, runs: int = 1) -> tuple[float, str]:
        """How far the page's runs are, 0..1, and a line saying where this one is.

        Args:
            ev: this run's latest event.
            index, runs: this run's place among the runs the page started (e.g. both
                decoders one after the other).
        """
        total = ev.epochs * ev.steps_per_epoch
        done = min((index + ev.step / total) / runs, 1.0)
        psnr = f", test PSNR {ev.test_psnr:.2f} dB" if ev.test_psnr else ""
        return done, (
            f"{self.label}: epoch {ev.epoch}/{ev.epochs}, step {ev.step}/{total}, "
            f"loss {ev.loss:.4f}{psnr}, {ev.images_per_s:,.0f} pictures/s"
        )
