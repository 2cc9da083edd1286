"""Training and evaluation, reporting through a callback (the minGPT trainer seam).

``fit()`` reads batches straight from the uint8 tensors of a :class:`DataSet`:
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
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .corrupt import corrupt, parse_corruption
from .data import DataSet, ImageSet, add_gaussian_noise
from .metrics import mse, psnr_from_mse, ssim
from .models import AEConfig, ConvAutoencoder

if TYPE_CHECKING:
    from .distributed import Team

LOSSES = ("bce", "mse")


@dataclass
class TrainConfig:
    """How a model is trained (stored in every checkpoint, so it can be reproduced)."""

    decoder: str = "transpose"  # "transpose" | "upsample"
    # "mse" (the course notes) | "bce" (the CIFAR assignment). MSE is the default: it is
    # what PSNR measures, reaches the same or better PSNR, and trains ~1.3x faster on CPU
    # (BCE-with-logits' log-sigmoid is a slow kernel here; bench/train_speed.py).
    loss: str = "mse"
    epochs: int = 12
    # Images per optimizer step over all workers (with N workers each takes every N-th
    # image of it), so the recipe, lr included, does not change with N. 32: as fast per
    # image as 64 or 256 here (channels-last oneDNN), and with lr 2e-3 it matches the
    # course's batch 20 / lr 1e-3 after 12 epochs (21.81 vs 21.79 dB) where batch 64 /
    # 3e-3 fell short (21.71) (bench/train_speed.py).
    batch_size: int = 32
    lr: float = 2e-3  # Adam peak rate, for this global batch
    # Linear warm-up, then cosine decay to 5% of lr (Goyal et al. 2017; Loshchilov and
    # Hutter 2017). The warm-up keeps the 4 code channels from dying in the first steps.
    warmup_steps: int = 500
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


def configure_threads(n: int | None = None, processes: int = 1) -> int:
    """Set the intra-op threads of this process and return how many.

    Tiny convolutions gain nothing from more threads than cores, and oversubscription
    (e.g. a Streamlit server plus training, or several training workers on one
    machine) costs a lot, so this is set explicitly.

    Args:
        n: threads to use; None: ``$CONVAE_THREADS``, else the cores shared out evenly
            among ``processes`` (at least one each).
        processes: how many processes on this machine share its cores (the training
            workers of ``--workers N`` or torchrun's ``--nproc-per-node``).

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
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    return n


def reconstruction_loss(
    model: ConvAutoencoder, x: torch.Tensor, target: torch.Tensor, loss: str
) -> torch.Tensor:
    z = model.encode(x)
    if loss == "bce":
        # BCE on logits: same value as BCE(sigmoid(.)) but stable and one op cheaper.
        return F.binary_cross_entropy_with_logits(model.decode_logits(z), target)
    return F.mse_loss(model.decode(z), target)


class ShardLoss(nn.Module):
    """The loss of one worker's share of a batch, for DistributedDataParallel.

    DDP averages the gradients of the N workers. Each worker returns
    ``N * (sum of its per-value losses) / (values in the whole batch)``, so that average
    is the gradient of the whole batch's mean loss, exactly what one process computes
    on that batch, however unevenly the last batch of an epoch splits (a share may even
    be empty). DDP hooks in through ``forward``, so the loss is computed there.

    Every rank also needs the whole batch's loss (to report it, and to stop at the same
    step when it turns NaN) and rank 0's stop request. Rather than a second collective
    call per step, they ride along with the gradients: ``report`` is a zero parameter
    (not in the optimizer) whose gradient is (this share's loss, stop), so after DDP's
    average its gradient holds (the batch's mean loss, stop requests / N) on every rank.
    Its value being zero, the loss and the model's gradients are unchanged.
    """

    def __init__(self, model: ConvAutoencoder, loss: str) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.report = nn.Parameter(torch.zeros(2))

    def forward(
        self, x: torch.Tensor, target: torch.Tensor, scale: float, stop: bool
    ) -> torch.Tensor:
        z = self.model.encode(x)
        if self.loss == "bce":
            out = self.model.decode_logits(z)
            total = F.binary_cross_entropy_with_logits(out, target, reduction="sum")
        else:
            total = F.mse_loss(self.model.decode(z), target, reduction="sum")
        mine = total * scale
        carried = torch.stack([mine.detach(), mine.new_tensor(float(stop))])
        return mine + (self.report * carried).sum()

    def shared(self) -> tuple[float, bool]:
        """After a backward through DDP: (the whole batch's loss, whether rank 0 asked
        to stop); clears the carrier for the next step."""
        loss, stop = self.report.grad.tolist()
        self.report.grad = None
        return loss, stop > 0


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


def fit(
    cfg: TrainConfig,
    data: DataSet,
    callback: Callback | None = None,
    model: ConvAutoencoder | None = None,
    snapshots: int = 0,
    *,
    team: Team | None = None,
) -> TrainResult:
    """Train an autoencoder on ``data`` as ``cfg`` says.

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
    world = team.world if team is not None else 1
    if cfg.workers != world:
        raise ValueError(
            f"the recipe asks for {cfg.workers} workers but {world} process(es) are training: "
            "start N workers with 'python -m convae train --workers N' or torchrun"
        )
    device = team.device if team is not None else resolve_device(cfg.device)
    main = team is None or team.rank == 0
    train, test = training_split(data, cfg)
    torch.manual_seed(cfg.seed)
    if model is None:
        model = ConvAutoencoder(AEConfig(train.channels, train.image_size, cfg.decoder))
    else:
        model = copy.deepcopy(model)
    # channels_last: oneDNN's convolutions and pooling run ~1.3-2x faster in NHWC on CPU.
    model.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    # The epoch orders come from this generator on every rank alike. Alone, noise and
    # corruption draw from it too (as always); in a team each rank draws from its own,
    # since a share's draws would otherwise put the ranks' orders out of step.
    gen = torch.Generator().manual_seed(cfg.seed)
    draws = gen if team is None else team.generator(cfg.seed)
    # On a GPU the whole uint8 training set (150 MB for CIFAR-10) lives there, so a batch
    # is one gather on the device instead of a copy from host memory every step.
    images = train.images.to(device) if device.type == "cuda" else train.images
    n = len(train)
    bs = batch_images(cfg, n)
    steps_per_epoch = math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, cfg.warmup_steps, cfg.epochs * steps_per_epoch)
    )
    if team is None:
        step_loss = lambda x, t, _: reconstruction_loss(model, x, t, cfg.loss)  # noqa: E731
    else:
        shard = ShardLoss(model, cfg.loss).to(device)
        ddp = team.wrap(shard)
        values_per_image = train.channels * train.image_size**2
        step_loss = lambda x, t, b: ddp(x, t, world / (b * values_per_image), pending_stop)  # noqa: E731
    result = TrainResult(model, cfg, data_fingerprint=data.fingerprint)
    good_state = copy.deepcopy(model.state_dict())
    step = 0
    if snapshots < 0:
        raise ValueError(f"snapshots must be >= 0, got {snapshots}")
    snap_at = snapshot_steps(snapshots, cfg.epochs * steps_per_epoch)
    if snapshots > 0:
        result.snapshots.append(_snapshot(model, 0, 0))
    pending_stop = False  # a team's rank 0 was asked to stop; the others learn it next
    t_start = time.perf_counter()

    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(n, generator=gen)
        t_epoch, seen, loss_sum = time.perf_counter(), 0, 0.0
        stop = False
        for i in range(steps_per_epoch):
            idx = order[i * bs : (i + 1) * bs]
            mine = idx if team is None else team.share(idx)
            target = (
                images[mine.to(images.device)]
                .to(device)
                .float()
                .div_(255)
                .contiguous(memory_format=torch.channels_last)
            )
            x = training_inputs(target, cfg, draws)
            loss = step_loss(x, target, len(idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if team is None:
                value = loss.item()
            else:
                # The whole batch's loss (the same number on every rank, so a divergence
                # stops them all at the same step) and rank 0's stop request.
                value, asked = shard.shared()
                if asked:
                    result.stopped = stop = True
                    break
            if not math.isfinite(value):
                kept = (
                    f"Kept the last finished epoch ({result.epochs_done})."
                    if result.epochs_done
                    else "No epoch had finished, so no model was kept."
                )
                result.diverged = (
                    f"loss became {value} at step {step} (epoch {epoch}); the learning rate "
                    f"{cfg.lr} is probably too high: try {cfg.lr / 10:g}. {kept}"
                )
                stop = True
                break
            seen += len(idx)
            loss_sum += value * len(idx)
            if step in snap_at:
                result.snapshots.append(_snapshot(model, step, epoch))
            if callback is not None and main:
                ev = TrainEvent(
                    "step",
                    step,
                    epoch,
                    cfg.epochs,
                    steps_per_epoch,
                    value,
                    seen / (time.perf_counter() - t_epoch),
                    elapsed_s=time.perf_counter() - t_start,
                    model=model,
                )
                if callback(ev):
                    if team is not None:
                        pending_stop = True
                    else:
                        result.stopped = stop = True
                        break
        train_s = time.perf_counter() - t_epoch
        if not stop and team is not None:
            metrics, votes = _team_evaluate(model, test, team, pending_stop)
            stop = result.stopped = votes > 0  # a stop asked for in the epoch's last step
        if stop:
            model.load_state_dict(good_state)  # back to the last finished epoch
            break
        if team is None:
            metrics = evaluate(model, test, with_ssim=False)
        model.train()
        good_state = copy.deepcopy(model.state_dict())
        result.epochs_done = epoch
        row = {
            "epoch": epoch,
            "step": step,
            "train_loss": loss_sum / seen,
            "test_mse": metrics["mse"],
            "test_psnr": metrics["psnr"],
            "images_per_s": seen / train_s,
            "elapsed_s": time.perf_counter() - t_start,
        }
        result.history.append(row)
        if callback is not None and main:
            ev = TrainEvent(
                "epoch",
                step,
                epoch,
                cfg.epochs,
                steps_per_epoch,
                row["train_loss"],
                row["images_per_s"],
                metrics["mse"],
                metrics["psnr"],
                row["elapsed_s"],
                model=model,
            )
            if callback(ev):
                result.stopped = True
                if team is None:
                    break
                pending_stop = True  # the others stop at the next step, rolled back to here

    model.eval().to("cpu", memory_format=torch.contiguous_format)
    if result.snapshots:
        _end_snapshots(result, model)
    result.seconds = time.perf_counter() - t_start
    if result.epochs_done > 0 and main:
        result.test_metrics = evaluate(model, test)
        if cfg.corruption:  # the task's own score: clean targets from corrupted inputs
            from .tasks import evaluate_corrupted

            result.test_metrics["task"] = evaluate_corrupted(model, test, cfg.corruption)
    return result


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


def _end_snapshots(result: TrainResult, model: ConvAutoencoder) -> None:
    """Keep only snapshots on the way to the returned model, ending with that model."""
    last_step = result.history[-1]["step"] if result.history else 0
    result.snapshots = [s for s in result.snapshots if s["step"] <= last_step]
    if result.snapshots[-1]["step"] != last_step:
        result.snapshots.append(_snapshot(model, last_step, result.epochs_done))


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Multiplier of the peak lr at ``step``: linear warm-up, then cosine down to 0.05."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def reconstruct(model: ConvAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """Reconstructions of float images in [0, 1] (no grad, model unchanged)."""
    return model(x)


@torch.no_grad()
def evaluate(
    model: ConvAutoencoder,
    images: ImageSet,
    batch_size: int = 1000,
    with_ssim: bool = True,
    per_class: bool = False,
) -> dict:
    """Test MSE, PSNR (of the mean MSE) and SSIM of ``model`` on ``images``.

    Returns:
        {"mse", "psnr", "ssim", "n"} and, with per_class, {"per_class": {name: {...}}}.
    """
    if len(images) == 0:
        raise ValueError("cannot evaluate on zero images")
    if images.channels != model.config.in_channels:
        raise ValueError(
            f"the model takes {model.config.in_channels}-channel images but the data has "
            f"{images.channels} channels: pick a model trained on this data set"
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    mses, ssims = [], []
    for i in range(0, len(images), batch_size):
        x = images.images[i : i + batch_size].to(device).float().div_(255)
        y = model(x)
        mses.append(mse(y, x).cpu())
        if with_ssim:
            ssims.append(ssim(y, x).cpu())
    model.train(was_training)
    m = torch.cat(mses)
    out = {"n": len(images), "mse": float(m.mean()), "psnr": float(psnr_from_mse(m.mean()))}
    s = torch.cat(ssims) if with_ssim else None
    if s is not None:
        out["ssim"] = float(s.mean())
    if per_class:
        out["per_class"] = {}
        for c, name in enumerate(images.classes):
            keep = images.labels == c
            if keep.any():
                row = {
                    "n": int(keep.sum()),
                    "mse": float(m[keep].mean()),
                    "psnr": float(psnr_from_mse(m[keep].mean())),
                }
                if s is not None:
                    row["ssim"] = float(s[keep].mean())
                out["per_class"][name] = row
    return out
