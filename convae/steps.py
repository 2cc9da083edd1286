"""One optimiser step of training: the part of a run that a faster recipe swaps.

A step object takes one batch's model inputs and clean targets, computes the loss,
backpropagates, and moves the optimiser and the learning-rate schedule on by one step.
:class:`convae.train.Trainer` chooses one when a run starts (``Trainer.make_step``):

* :class:`LocalStep`: one process trains on the whole batch;
* :class:`TeamStep`: one of N DistributedDataParallel processes trains on its share of
  the batch (convae/distributed.py), and learns the whole batch's loss and rank 0's stop
  request from the same all-reduce as the gradients.

Both can run the model's convolutions in bfloat16 (``bf16=True``; see
:func:`resolve_precision`): the weights, the optimiser and the loss stay float32. Another
way to take a step is another class with the same call:
``step(x, target, batch_images, stop) -> (loss, stop_asked)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .models import ConvAutoencoder

if TYPE_CHECKING:
    from .distributed import Team

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU that supports it, or
    a CPU with AVX-512 BF16 or AMX (an emulated bf16 is slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:  # private in torch 2.14; a torch without them gets float32
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def resolve_precision(name: str, device: torch.device) -> str:
    """The arithmetic a run uses: "fp32" or "bf16".

    Args:
        name: "fp32", "bf16", or "auto" (bf16 where :func:`native_bf16`, else fp32).
        device: the device the model trains on.

    Raises:
        ValueError: an unknown name.
    """
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return name


def _logits(model: ConvAutoencoder, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """The decoder's output before the sigmoid, as float32. With ``bf16`` the
    convolutions run under bfloat16 autocast, which a CPU with AVX-512 BF16 or AMX runs
    in hardware; the default recipe reaches the same 12-epoch test PSNR with it
    (docs/training.md; its speed against float32 is bench/train_speed.py's "changes"
    section). The sigmoid and the loss stay float32."""
    if not bf16:  # no autocast at all: it refuses device types it has no rules for
        return model.decode_logits(model.encode(x)).float()
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        logits = model.decode_logits(model.encode(x))
    return logits.float()


class TrainStep(Protocol):
    """What the trainer calls once per optimiser step."""

    def __call__(
        self, x: torch.Tensor, target: torch.Tensor, batch_images: int, stop: bool
    ) -> tuple[float, bool]:
        """Train on one batch.

        Args:
            x: this process's model inputs (noise and corruption applied), on the device.
            target: their clean images, same shape.
            batch_images: images in the whole batch, over all processes.
            stop: this process (rank 0) was asked to stop; a team passes it on.

        Returns:
            (the whole batch's loss, whether rank 0 asked to stop); alone, never a stop.
        """
        ...


def reconstruction_loss(
    model: ConvAutoencoder,
    x: torch.Tensor,
    target: torch.Tensor,
    loss: str,
    bf16: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """The loss of ``model``'s reconstructions of ``x`` against ``target``.

    Args:
        loss: "bce" (binary cross-entropy) or "mse".
        bf16: run the convolutions in bfloat16 (see :func:`_logits`).
        reduction: "mean" or "sum" over every value of the batch.
    """
    logits = _logits(model, x, bf16)
    if loss == "bce":
        # BCE on logits: same value as BCE(sigmoid(.)) but stable and one op cheaper.
        return F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)
    return F.mse_loss(torch.sigmoid(logits), target, reduction=reduction)


def update(
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Backpropagate ``loss`` and move the optimiser and the schedule on by one step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


@dataclass(eq=False)
class LocalStep:
    """One process, the whole batch: loss, backward, optimiser step, schedule step.

    Attributes:
        model: the model being trained (on its device).
        loss: "mse" or "bce".
        opt, sched: the optimiser and its learning-rate schedule.
        bf16: convolutions in bfloat16 (:func:`resolve_precision`).
    """

    model: ConvAutoencoder
    loss: str
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    bf16: bool = False

    def __call__(
        self, x: torch.Tensor, target: torch.Tensor, batch_images: int, stop: bool
    ) -> tuple[float, bool]:
        loss = reconstruction_loss(self.model, x, target, self.loss, self.bf16)
        update(loss, self.opt, self.sched)
        return loss.item(), False


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

    def __init__(self, model: ConvAutoencoder, loss: str, bf16: bool = False) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.bf16 = bf16
        self.report = nn.Parameter(torch.zeros(2))

    def forward(
        self, x: torch.Tensor, target: torch.Tensor, scale: float, stop: bool
    ) -> torch.Tensor:
        total = reconstruction_loss(self.model, x, target, self.loss, self.bf16, "sum")
        mine = total * scale
        carried = torch.stack([mine.detach(), mine.new_tensor(float(stop))])
        return mine + (self.report * carried).sum()

    def shared(self) -> tuple[float, bool]:
        """After a backward through DDP: (the whole batch's loss, whether rank 0 asked
        to stop); clears the carrier for the next step."""
        loss, stop = self.report.grad.tolist()
        self.report.grad = None
        return loss, stop > 0


@dataclass(eq=False)
class TeamStep(LocalStep):
    """One of a team's processes: its share of the batch through DDP (see ShardLoss).

    Attributes:
        team: this process's place in the team.
        values_per_image: channels x height x width of the training images, to scale a
            share's summed loss to the whole batch's mean.
    """

    team: Team | None = None
    values_per_image: int = 0

    def __post_init__(self) -> None:
        self.shard = ShardLoss(self.model, self.loss, self.bf16).to(self.team.device)
        self.ddp = self.team.wrap(self.shard)

    def __call__(
        self, x: torch.Tensor, target: torch.Tensor, batch_images: int, stop: bool
    ) -> tuple[float, bool]:
        scale = self.team.world / (batch_images * self.values_per_image)
        update(self.ddp(x, target, scale, stop), self.opt, self.sched)
        # The whole batch's loss (the same number on every rank, so a divergence stops
        # them all at the same step) and rank 0's stop request.
        return self.shard.shared()
