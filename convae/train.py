"""Training and evaluation, reporting through a callback (the minGPT trainer seam).

:class:`Trainer` is one run: ``run()`` loops over epochs and steps, and the step itself
(a strategy object from :mod:`convae.steps`), the end of an epoch, the events, stopping
and snapshots are its methods and small helpers; :func:`fit` is the one-line way to use
it. ``fit()`` reads batches straight from the uint8 tensors of a :class:`DataSet`:
one index gather and one ``.float() / 255`` per batch, no PIL, no per-sample
transforms, no DataLoader workers. The caller's callback sees every step and
every epoch and can stop the run; the model then holds the weights of the last
finished epoch. A loss that turns NaN/inf is caught the same way.

The same loop trains data-parallel: ``fit(..., team=...)`` in each of N processes
(convae/distributed.py, started by torchrun) trains on that process's share of every
batch under DistributedDataParallel and ends with the weights one process would have.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch

from .corrupt import corrupt, parse_corruption
from .data import DataSet, ImageSet, add_gaussian_noise
from .metrics import mse, psnr_from_mse, ssim
from .models import AEConfig, ConvAutoencoder
from .recon import BATCH_SIZE, EvalCopy
from .steps import PRECISIONS, LocalStep, TeamStep, TrainStep, resolve_precision
from .tasks import evaluate_corrupted

if TYPE_CHECKING:
    from .distributed import Team

LOSSES = ("bce", "mse")
SCHEDULES = ("cosine", "onecycle")


@dataclass
class TrainConfig:
    """How a model is trained (stored in every checkpoint, so it can be reproduced)."""

    decoder: str = "transpose"  # one of convae.models.DECODERS
    # "mse" (the course notes) | "bce" (the CIFAR assignment). MSE is the default: it is
    # what PSNR measures, reaches the same or better PSNR, and trains ~1.3x faster on CPU
    # (BCE-with-logits' log-sigmoid is a slow kernel here; bench/train_speed.py).
    loss: str = "mse"
    epochs: int = 12
    # Images per optimizer step over all workers (with N workers each takes every N-th
    # image of it), so the recipe, lr included, does not change with N. 32: larger
    # batches are barely faster per image here (channels-last oneDNN) and need more images
    # to reach the same PSNR (bench/train_speed.py, docs/training.md).
    batch_size: int = 32
    # Adam peak rate, for this global batch. 2e-2, ten times the earlier 2e-3: it reaches
    # 21 dB on the test split in about a third of the images, and the 12-epoch PSNR is
    # no lower (bench/results/train_speed.json "recipes", docs/training.md).
    lr: float = 2e-2
    # Linear warm-up, then cosine decay to 5% of lr (Goyal et al. 2017; Loshchilov and
    # Hutter 2017). The warm-up keeps the 4 code channels from dying in the first steps.
    warmup_steps: int = 500
    # "cosine": the warm-up above, then cosine decay; "onecycle": Smith and Topin's
    # one-cycle (2018) as torch's OneCycleLR shapes it: up from lr/25 over the first
    # quarter of the run, then down to lr/10^4 (warmup_steps unused).
    schedule: str = "cosine"
    classes: tuple[str, ...] = ()  # class names to train on; empty = all
    limit: int | None = None  # use only the first N training images (None = all)
    noise: float = 0.0  # std of Gaussian noise added to inputs; targets stay clean
    seed: int = 0  # same seed, same result on CPU
    device: str = "auto"  # "auto" (CUDA when present) | "cpu" | "cuda"
    # Corruption of the inputs, targets clean (convae/corrupt.py spec, e.g. "mask:4-16",
    # "grey"): trains a denoising / repair model. Applied after ``noise``; "" = none.
    corruption: str = ""
    # Data-parallel processes (torchrun ranks) that share every batch; recorded so a run
    # can be repeated: with noise or corruption the draws depend on it (one generator per
    # rank), without them N workers train the same model as one (convae/distributed.py).
    workers: int = 1
    # Arithmetic of the convolutions: "bf16" runs them under bfloat16 autocast (weights,
    # optimiser and loss stay float32), "fp32" does not, "auto" is bf16 where the device
    # has it in hardware and fp32 elsewhere (convae.steps.resolve_precision). A finished
    # run records what "auto" became.
    precision: str = "auto"

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate must be a positive number, got {self.lr}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be at least 1 image, got {self.limit}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup steps must be >= 0, got {self.warmup_steps}")
        if self.noise < 0:
            raise ValueError(f"noise std must be >= 0, got {self.noise}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        parse_corruption(self.corruption)  # a bad spec fails here, not mid-training

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d


@dataclass
class TrainEvent:
    """What the callback sees. ``kind`` is "step" or "epoch"."""

    kind: str
    step: int  # optimizer steps done so far
    epoch: int  # 1-based epoch this event belongs to
    epochs: int
    steps_per_epoch: int
    loss: float  # this step's loss ("step") or the epoch's mean train loss ("epoch")
    images_per_s: float  # training throughput over the epoch so far
    test_mse: float | None = None  # only on "epoch" events
    test_psnr: float | None = None
    elapsed_s: float = 0.0
    # The model being trained, for a caller that shows its progress (e.g. reconstructions
    # every few steps): read it under torch.no_grad(), never change it.
    model: ConvAutoencoder | None = None


Callback = Callable[[TrainEvent], bool | None]  # return True to stop


@dataclass
class TrainResult:
    model: ConvAutoencoder
    train_config: TrainConfig
    history: list[dict] = field(default_factory=list)  # one dict per finished epoch
    test_metrics: dict = field(default_factory=dict)
    epochs_done: int = 0
    stopped: bool = False  # the callback asked to stop
    diverged: str | None = None  # why training was cut short by a non-finite loss
    seconds: float = 0.0
    data_fingerprint: str = ""
    # fit(snapshots=K): [{"step", "epoch", "state_dict"}] at step 0 and K points (CPU copies)
    snapshots: list[dict] = field(default_factory=list)


def resolve_device(name: str = "auto") -> torch.device:
    """The one place a device is chosen: CUDA when asked or 'auto' and present, else CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use cpu")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


# Threads of one training process unless told otherwise (--threads, $CONVAE_THREADS).
# The model's convolutions (3 to 16 channels) are too small to split between threads:
# on this project's 2-core machine, quiet, one thread trained 4,690 images/s against
# 7,188 for two threads that spin while they wait and 1,467 for two that sleep
# (bench/train_speed.py --only changes --groups threads, docs/training.md), and two
# spinning threads fall to about a hundred images/s when other work takes a core, one
# thread does not. So a training takes one core and leaves the other to the rest.
TRAINING_THREADS = 1


def configure_threads(n: int | None = None, processes: int = 1, default: int | None = None) -> int:
    """Set the intra-op threads of this process and return how many.

    Tiny convolutions gain nothing from more threads than cores, and oversubscription
    (e.g. a Streamlit server plus training, or several training workers on one
    machine) costs a lot, so this is set explicitly.

    Args:
        n: threads to use; None: ``$CONVAE_THREADS``, else the cores shared out evenly
            among ``processes`` (at least one each).
        processes: how many processes on this machine share its cores (the training
            workers of ``--workers N`` or torchrun's ``--nproc-per-node``).
        default: at most this many when neither ``n`` nor ``$CONVAE_THREADS`` says
            (a training's :data:`TRAINING_THREADS`).

    Raises:
        ValueError: a thread count (argument or ``$CONVAE_THREADS``) that is not >= 1.
    """
    if n is None:
        text = os.environ.get("CONVAE_THREADS", "").strip()
        try:
            n = int(text or 0) or None  # 0 or unset: the default
        except ValueError:
            n = -1
        if n is not None and n < 1:
            raise ValueError(
                f"CONVAE_THREADS must be a whole number >= 1, got {text!r}; unset it to use "
                "one thread per core"
            )
    if n is None:
        n = max(1, (os.cpu_count() or 1) // max(1, processes))
        if default is not None:
            n = min(n, default)
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    return n


def training_split(data: DataSet, cfg: TrainConfig) -> tuple[ImageSet, ImageSet]:
    """The train and test images a config asks for (class filter, then limit)."""
    train = data.train.filter(list(cfg.classes)).head(cfg.limit)
    test = data.test.filter(list(cfg.classes))
    if len(train) == 0:
        raise ValueError(
            f"no training images for classes {list(cfg.classes)}: pick classes that have images"
        )
    return train, test


def batch_images(cfg: TrainConfig, n: int) -> int:
    """Images per step for ``n`` training images: a batch larger than the data set is
    one full batch.

    Raises:
        ValueError: fewer images per step than workers (a worker would never train).
    """
    bs = min(cfg.batch_size, n)
    if bs < cfg.workers:
        raise ValueError(
            f"{bs} image(s) per step cannot be shared by {cfg.workers} workers: every "
            "worker needs at least one image of each batch; raise --batch-size or use "
            "fewer workers"
        )
    return bs


def training_inputs(
    target: torch.Tensor, cfg: TrainConfig, generator: torch.Generator
) -> torch.Tensor:
    """The model's inputs for a batch of clean targets: noise, then corruption, as ``cfg``
    says (``target`` itself when it asks for neither). Draws come from ``generator`` on
    the CPU and are moved to the batch's device, so a seed means the same inputs on any
    device."""
    x = add_gaussian_noise(target, cfg.noise, generator) if cfg.noise > 0 else target
    if cfg.corruption:
        x = corrupt(x, cfg.corruption, generator)[0]
    return x


class _Stop(Exception):
    """Ends a run inside an epoch (a stop request, a divergence): the trainer rolls the
    model back to the last finished epoch. Raised only once a run, so it costs nothing."""


class Snapshots:
    """``fit(snapshots=K)``: CPU copies of the weights at step 0 (before any update) and
    after K evenly spaced steps, the last being the final step (issue 4's "artifacts over
    training"). K is capped at the number of steps.

    Attributes:
        at: the steps after which a copy is taken.
        kept: [{"step", "epoch", "state_dict"}], in step order.
    """

    def __init__(self, k: int, total_steps: int) -> None:
        if k < 0:
            raise ValueError(f"snapshots must be >= 0, got {k}")
        self.at = snapshot_steps(k, total_steps)
        self.kept: list[dict] = []

    def take(self, model: ConvAutoencoder, step: int, epoch: int) -> None:
        """Copy the weights as they are after ``step`` optimizer steps."""
        self.kept.append(_snapshot(model, step, epoch))

    def up_to(self, model: ConvAutoencoder, last_step: int, epochs_done: int) -> list[dict]:
        """The copies on the way to the returned model, ending with that model: after a
        stop or a divergence, copies past the kept epoch are dropped and the kept model is
        added as the last one."""
        kept = [s for s in self.kept if s["step"] <= last_step]
        if kept and kept[-1]["step"] != last_step:
            kept.append(_snapshot(model, last_step, epochs_done))
        return kept


class Trainer:
    """One training run, in the manner of minGPT's Trainer: set up here, looped by run().

    The pieces a run is made of are methods: :meth:`make_step` (the optimiser step, a
    strategy object from :mod:`convae.steps`, chosen once: alone or one share of a DDP
    team), :meth:`train_epoch` and :meth:`train_step`, :meth:`score_epoch`,
    :meth:`end_epoch` (history, rollback point, event), :meth:`emit` (the caller's
    callback) and :meth:`finish` (final scores). See :func:`fit` for the arguments.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        data: DataSet,
        *,
        model: ConvAutoencoder | None = None,
        team: Team | None = None,
        callback: Callback | None = None,
        snapshots: int = 0,
    ) -> None:
        world = team.world if team is not None else 1
        if cfg.workers != world:
            raise ValueError(
                f"the recipe asks for {cfg.workers} workers but {world} process(es) are "
                "training: start N workers with 'python -m convae train --workers N' or torchrun"
            )
        self.cfg, self.callback, self.team = cfg, callback, team
        self.device = team.device if team is not None else resolve_device(cfg.device)
        self.main = team is None or team.rank == 0  # rank 0 alone reports and scores
        self.train_set, self.test_set = training_split(data, cfg)
        self.model = self._start_model(model)
        # Fused: one kernel updates every parameter, instead of a dozen small operators per
        # parameter tensor (the same update to float rounding; bench/train_speed.py). Only
        # where torch has the fused kernel (CPU and CUDA); elsewhere Adam's usual one.
        fused = self.device.type in ("cpu", "cuda")
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, fused=fused)
        # The epoch orders come from this generator on every rank alike. Alone, noise and
        # corruption draw from it too (as always); in a team each rank draws from its own,
        # since a share's draws would otherwise put the ranks' orders out of step.
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.draws = self.gen if team is None else team.generator(cfg.seed)
        # On a GPU the whole uint8 training set (150 MB for CIFAR-10) lives there, so a
        # batch is one gather on the device instead of a copy from host memory every step.
        train = self.train_set.images
        self.images = train.to(self.device) if self.device.type == "cuda" else train
        self.batch = batch_images(cfg, len(self.train_set))
        self.steps_per_epoch = math.ceil(len(self.train_set) / self.batch)
        total = cfg.epochs * self.steps_per_epoch
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, cfg.warmup_steps, total, cfg.schedule)
        )
        self.precision = resolve_precision(cfg.precision, self.device)
        self.step_fn = self.make_step()
        # The recipe as it ran: "auto" precision recorded as what it became here.
        ran = dataclasses.replace(cfg, precision=self.precision)
        self.result = TrainResult(self.model, ran, data_fingerprint=data.fingerprint)
        self.good_state = copy.deepcopy(self.model.state_dict())  # the last finished epoch
        self.snapshots = Snapshots(snapshots, total)
        if snapshots > 0:
            self.snapshots.take(self.model, 0, 0)
        self.step = 0  # optimizer steps done
        self.epoch = 0
        self.pending_stop = False  # a team's rank 0 was asked to stop; the others learn it next
        self.t_start = time.perf_counter()

    def _start_model(self, model: ConvAutoencoder | None) -> ConvAutoencoder:
        """A fresh model from the seed, or a copy of ``model`` (never trained in place),
        on the device in channels-last memory: oneDNN's convolutions and pooling run
        ~1.3-2x faster in NHWC on CPU."""
        torch.manual_seed(self.cfg.seed)
        if model is None:
            train = self.train_set
            model = ConvAutoencoder(AEConfig(train.channels, train.image_size, self.cfg.decoder))
        else:
            model = copy.deepcopy(model)
        return model.to(self.device, memory_format=torch.channels_last).train()

    def make_step(self) -> TrainStep:
        """The optimiser step, chosen once for the run: alone, or this rank's share of
        every batch under DDP. Override it (or swap ``step_fn``) to train another way."""
        bf16 = self.precision == "bf16"
        if self.team is None:
            return LocalStep(self.model, self.cfg.loss, self.opt, self.sched, bf16)
        values = self.train_set.channels * self.train_set.image_size**2
        return TeamStep(self.model, self.cfg.loss, self.opt, self.sched, bf16, self.team, values)

    def run(self) -> TrainResult:
        """Train for ``cfg.epochs`` epochs, or until a stop or a divergence (the model
        then goes back to the last finished epoch); then score the model.

        Returns:
            The :class:`TrainResult` (see :func:`fit`).
        """
        self.t_start = time.perf_counter()
        for epoch in range(1, self.cfg.epochs + 1):
            self.epoch = epoch
            try:
                seen, loss_sum, train_s = self.train_epoch()
                metrics = self.score_epoch()
            except _Stop:
                self.model.load_state_dict(self.good_state)  # back to the last finished epoch
                break
            if self.end_epoch(seen, loss_sum, train_s, metrics):
                break
        return self.finish()

    def train_epoch(self) -> tuple[int, float, float]:
        """The optimizer steps of one epoch, in a fresh random order.

        Returns:
            (images trained on, the sum of their losses, seconds).

        Raises:
            _Stop: the callback asked to stop, or the loss became NaN or infinite.
        """
        order = torch.randperm(len(self.train_set), generator=self.gen)
        t_epoch, seen, loss_sum = time.perf_counter(), 0, 0.0
        bs, at = self.batch, self.snapshots.at
        for i in range(self.steps_per_epoch):
            idx = order[i * bs : (i + 1) * bs]
            value = self.train_step(idx)
            seen += len(idx)
            loss_sum += value * len(idx)
            if self.step in at:
                self.snapshots.take(self.model, self.step, self.epoch)
            if self.callback is not None and self.main:
                now = time.perf_counter()
                self.emit("step", value, seen / (now - t_epoch), now - self.t_start)
        return seen, loss_sum, time.perf_counter() - t_epoch

    def train_step(self, idx: torch.Tensor) -> float:
        """One optimizer step on the images ``idx`` (this rank's share of them).

        Returns:
            The whole batch's loss.

        Raises:
            _Stop: rank 0 asked the team to stop, or the loss is not finite.
        """
        mine = idx if self.team is None else self.team.share(idx)
        pictures = self.images[mine.to(self.images.device)].to(self.device)
        # uint8 to float32 and to channels-last in one copy, then scaled in place.
        target = torch.empty(
            pictures.shape, device=self.device, memory_format=torch.channels_last
        ).copy_(pictures)
        target.div_(255)
        x = training_inputs(target, self.cfg, self.draws)
        value, asked = self.step_fn(x, target, len(idx), self.pending_stop)
        self.step += 1
        if asked:
            self.result.stopped = True
            raise _Stop
        if not math.isfinite(value):
            self.result.diverged = self._divergence(value)
            raise _Stop
        return value

    def _divergence(self, value: float) -> str:
        kept = (
            f"Kept the last finished epoch ({self.result.epochs_done})."
            if self.result.epochs_done
            else "No epoch had finished, so no model was kept."
        )
        lr = self.cfg.lr
        return (
            f"loss became {value} at step {self.step} (epoch {self.epoch}); the learning "
            f"rate {lr} is probably too high: try {lr / 10:g}. {kept}"
        )

    def score_epoch(self) -> dict:
        """The test MSE and PSNR after an epoch. A team scores in shares and, in the same
        collective call, learns whether rank 0 was asked to stop in the epoch's last step.

        Raises:
            _Stop: that stop request.
        """
        if self.team is None:
            return evaluate(self.model, self.test_set, with_ssim=False)
        metrics, votes = _team_evaluate(self.model, self.test_set, self.team, self.pending_stop)
        if votes > 0:
            self.result.stopped = True
            raise _Stop
        return metrics

    def end_epoch(self, seen: int, loss_sum: float, train_s: float, metrics: dict) -> bool:
        """Record a finished epoch (history, the rollback point) and tell the callback.

        Returns:
            True when the run ends here (the callback asked to stop, alone); a team's
            members stop one step later, with this epoch's model.
        """
        self.good_state = copy.deepcopy(self.model.state_dict())
        self.result.epochs_done = self.epoch
        row = {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": loss_sum / seen,
            "test_mse": metrics["mse"],
            "test_psnr": metrics["psnr"],
            "images_per_s": seen / train_s,
            "elapsed_s": time.perf_counter() - self.t_start,
        }
        self.result.history.append(row)
        if self.callback is None or not self.main:
            return False
        speed = (row["images_per_s"], row["elapsed_s"])
        if not self.emit("epoch", row["train_loss"], *speed, metrics):
            return False
        self.result.stopped = True
        if self.team is None:
            return True
        self.pending_stop = True  # the others stop at the next step, rolled back to here
        return False

    def emit(
        self,
        kind: str,
        loss: float,
        images_per_s: float,
        elapsed_s: float,
        metrics: dict | None = None,
    ) -> bool:
        """Call the callback with a :class:`TrainEvent`; True when it asks to stop.

        A stop asked at a step ends the run at once when alone (:class:`_Stop`); in a
        team it rides along with the next step's gradients to the other ranks.
        """
        ev = TrainEvent(
            kind=kind,
            step=self.step,
            epoch=self.epoch,
            epochs=self.cfg.epochs,
            steps_per_epoch=self.steps_per_epoch,
            loss=loss,
            images_per_s=images_per_s,
            test_mse=metrics["mse"] if metrics else None,
            test_psnr=metrics["psnr"] if metrics else None,
            elapsed_s=elapsed_s,
            model=self.model,
        )
        if not self.callback(ev):
            return False
        if kind == "step":
            if self.team is not None:
                self.pending_stop = True
            else:
                self.result.stopped = True
                raise _Stop
        return True

    def finish(self) -> TrainResult:
        """The kept model on the CPU in eval mode, its snapshots, and (rank 0) its final
        test scores with SSIM, and for a task model its score on corrupted inputs."""
        result, model = self.result, self.model
        model.eval().to("cpu", memory_format=torch.contiguous_format)
        last_step = result.history[-1]["step"] if result.history else 0
        result.snapshots = self.snapshots.up_to(model, last_step, result.epochs_done)
        result.seconds = time.perf_counter() - self.t_start
        if result.epochs_done > 0 and self.main:
            result.test_metrics = evaluate(model, self.test_set)
            if self.cfg.corruption:  # the task's own score: clean targets from corrupted inputs
                result.test_metrics["task"] = evaluate_corrupted(
                    model, self.test_set, self.cfg.corruption
                )
        return result


def fit(
    cfg: TrainConfig,
    data: DataSet,
    callback: Callback | None = None,
    model: ConvAutoencoder | None = None,
    snapshots: int = 0,
    *,
    team: Team | None = None,
) -> TrainResult:
    """Train an autoencoder on ``data`` as ``cfg`` says (a :class:`Trainer` run).

    Args:
        cfg: the training recipe.
        data: a loaded data set; its channel count and size set the architecture.
        callback: called after every step and every epoch with a :class:`TrainEvent`;
            returning True stops training (the last finished epoch is kept).
        model: continue from this model instead of a fresh one (it is not modified; a
            copy is trained).
        snapshots: K > 0 keeps CPU copies of the weights at step 0 (before any update)
            and after K evenly spaced steps, the last being the final step, in
            ``result.snapshots`` for "artifacts over training" (issue 4). When a run
            stops or diverges, snapshots past the kept epoch are dropped and the kept
            model is added as the last one. K is capped at the number of steps.
        team: this process's place among ``cfg.workers`` data-parallel processes
            (:func:`convae.distributed.join`); None trains alone. Every member calls
            fit() with the same arguments; each trains on its share of every batch
            (DistributedDataParallel), only rank 0's callback is called (its stop
            takes effect one step later, with the same kept model), and only rank 0
            scores the final model.

    Returns:
        The trained model (on CPU, eval mode), per-epoch history and final test metrics
        (``test_metrics`` empty on ranks other than 0).
    """
    trainer = Trainer(cfg, data, model=model, team=team, callback=callback, snapshots=snapshots)
    return trainer.run()


def _team_evaluate(
    model: ConvAutoencoder, test: ImageSet, team: Team, pending_stop: bool
) -> tuple[dict, float]:
    """Test MSE and PSNR with each rank scoring its share of the test images, and the
    number of stop requests (rank 0's ``pending_stop``), in one collective call."""
    part = ImageSet(
        test.images[team.rank :: team.world], test.labels[team.rank :: team.world], test.classes
    )
    m = evaluate(model, part, with_ssim=False) if len(part) else {"mse": 0.0, "n": 0}
    total, count, votes = team.sum(m["mse"] * m["n"], float(m["n"]), float(pending_stop))
    if count == 0:
        raise ValueError("cannot evaluate on zero images")
    mean = total / count
    return {"n": int(count), "mse": mean, "psnr": float(psnr_from_mse(mean))}, votes


def snapshot_steps(k: int, total: int) -> set[int]:
    """The steps after which fit(snapshots=k) copies the weights: k evenly spaced, last = total.

    Step 0 (the initial weights) is taken as well, separately.
    """
    k = min(k, total)
    return {round(total * j / k) for j in range(1, k + 1)} if k > 0 else set()


def _snapshot(model: ConvAutoencoder, step: int, epoch: int) -> dict:
    # Plain CPU tensors in the default layout: they go into checkpoints read with
    # weights_only=True, and a CUDA or channels_last copy would not load everywhere.
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    return {"step": step, "epoch": epoch, "state_dict": state}


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine") -> float:
    """Multiplier of the peak lr at ``step`` of ``total``.

    Args:
        schedule: "cosine": linear warm-up over ``warmup`` steps, then cosine down to 0.05;
            "onecycle": cosine up from 1/25 over the first quarter, then cosine down to 1e-4.
    """
    if schedule == "onecycle":
        up = max(1, round(0.25 * total))
        if step < up:
            return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * step / up))
        t = min(1.0, (step - up) / max(1, total - up))
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * t))
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))


def evaluate(
    model: ConvAutoencoder,
    images: ImageSet,
    batch_size: int = BATCH_SIZE,
    with_ssim: bool = True,
    per_class: bool = False,
) -> dict:
    """Test MSE, PSNR (of the mean MSE) and SSIM of ``model`` on ``images``.

    The model runs through :class:`convae.recon.EvalCopy`: not modified, not even its
    train/eval flag, so fit() scores the model it is training with it.

    Args:
        model: the autoencoder.
        images: the split to score (e.g. the test split).
        batch_size: images per forward pass.
        with_ssim: also the mean SSIM (the slower measure; fit() leaves it out per epoch).
        per_class: also the figures of each class.

    Returns:
        {"mse", "psnr", "ssim", "n"} and, with per_class, {"per_class": {name: {...}}}.
    """
    if len(images) == 0:
        raise ValueError("cannot evaluate on zero images")
    net = EvalCopy(model)
    mses, ssims = [], []
    for x in net.batches(images, batch_size):
        y = net(x)
        mses.append(mse(y, x).cpu())
        if with_ssim:
            ssims.append(ssim(y, x).cpu())
    m = torch.cat(mses)
    s = torch.cat(ssims) if with_ssim else None
    out = _set_figures(m, s)
    if per_class:
        out["per_class"] = {
            name: _set_figures(m[keep], None if s is None else s[keep])
            for c, name in enumerate(images.classes)
            if (keep := images.labels == c).any()
        }
    return out


def _set_figures(m: torch.Tensor, s: torch.Tensor | None) -> dict:
    """{"n", "mse", "psnr"[, "ssim"]} of per-image MSEs ``m`` and SSIMs ``s``."""
    out = {"n": len(m), "mse": float(m.mean()), "psnr": float(psnr_from_mse(m.mean()))}
    if s is not None:
        out["ssim"] = float(s.mean())
    return out
