"""Side-by-side measurements of two (or more) autoencoders, or baselines, on the same images.

The Compare page is built on these functions; they hold the maths, the page only
draws. Every model runs through :class:`convae.recon.EvalCopy`: a private
evaluation-mode copy under ``torch.no_grad()``, never the model itself, because one
cached model is shared by many Streamlit sessions.

* :func:`score_images` - per-image MSE, PSNR, SSIM and the grid-artifact measures
  (blockiness at periods 2 and 4, checkerboard; :mod:`convae.metrics`) with their floors.
* :func:`compare_models` - the same images through two models: reconstructions,
  absolute errors on one shared colour scale, per-image and mean metrics.
* :func:`per_class_table` - mean metrics per class and model over a whole split
  (the 10,000 CIFAR-10 test images in one pass per model, batched).
* :func:`scores_over_training` - those set figures for every weight snapshot of a run.
* :func:`overlap_map` - how many kernel taps of a stride-s transpose convolution land
  on each output pixel, computed by a real ``ConvTranspose2d``.

A "model" here is a :class:`~convae.models.ConvAutoencoder` or a
:class:`~convae.baselines.Baseline` (PCA, downsampling) with the same number of values
per image: both reconstruct a batch, so everything below measures them alike.

Set-level PSNR follows the project's convention (``convae.metrics``): PSNR of the
mean MSE, so the figures match ``python -m convae evaluate``. SSIM, blockiness and
their floors are plain means of the per-image values; the checkerboard of a set is
the pattern common to its images (:func:`convae.metrics.pooled_checkerboard`), not a
mean of per-image values, because averaging over images is what separates a decoder's
fixed pattern from error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .baselines import Baseline
from .checkpoints import Snapshot
from .data import ImageSet
from .metrics import (
    GREY_LEVELS,
    TILE_PERIODS,
    blockiness_with_floors,
    mse,
    period2_phases,
    pooled_checkerboard,
    psnr_from_mse,
    ssim,
)
from .models import ConvAutoencoder
from .recon import BATCH_SIZE, EvalCopy, as_float_images, model_name

Reconstructor = ConvAutoencoder | Baseline
# The grid-artifact measures, in grey levels; each has a floor named "<measure>_floor".
ARTIFACTS = ("blockiness4", "blockiness2", "checkerboard")
METRICS = ("mse", "psnr", "ssim", *ARTIFACTS, *(f"{a}_floor" for a in ARTIFACTS))


@dataclass
class ImageScores:
    """Per-image metrics of one model on N images.

    Attributes:
        mse, psnr, ssim: (N,) each.
        blockiness2, blockiness4: (N,) extra step across 2x2 / 4x4 tile edges beyond the
            input's, grey levels (:func:`convae.metrics.blockiness`).
        blockiness2_floor, blockiness4_floor: (N,) the same for the image's error with
            its pixels shuffled (:func:`convae.metrics.blockiness_floor`).
        phases, chance: (N, C, 4) and (N, C), the residual's 2x2-grid means and their
            chance level (:func:`convae.metrics.period2_phases`), kept so that any set
            of images can be pooled into one checkerboard value.
    """

    mse: torch.Tensor
    psnr: torch.Tensor
    ssim: torch.Tensor
    blockiness2: torch.Tensor
    blockiness4: torch.Tensor
    blockiness2_floor: torch.Tensor
    blockiness4_floor: torch.Tensor
    phases: torch.Tensor
    chance: torch.Tensor

    def __len__(self) -> int:
        return int(self.mse.shape[0])

    @property
    def checkerboard(self) -> torch.Tensor:
        """Each image's own checkerboard amplitude above chance, grey levels, (N,)."""
        energy = self.phases.var(dim=2, unbiased=False).mean(1)
        return (energy - self.chance.mean(1)).clamp_min(0).sqrt() * GREY_LEVELS

    @property
    def checkerboard_floor(self) -> torch.Tensor:
        """The chance amplitude of one image's checkerboard reading, grey levels, (N,)."""
        return self.chance.mean(1).sqrt() * GREY_LEVELS

    def mean(self) -> dict[str, float]:
        """Set-level figures: PSNR of the mean MSE, the checkerboard pooled over the set
        (its floor shrinks as 1/sqrt(N)), plain means of the others.

        Returns:
            {"n", "mse", "psnr", "ssim", "blockiness4", "blockiness2", "checkerboard",
            "blockiness4_floor", "blockiness2_floor", "checkerboard_floor"}; the
            artifact measures in grey levels.
        """
        m = float(self.mse.mean())
        cb, cb_floor = pooled_checkerboard(self.phases, self.chance)
        return {
            "n": len(self),
            "mse": m,
            "psnr": float(psnr_from_mse(m)),
            "ssim": float(self.ssim.mean()),
            "blockiness4": float(self.blockiness4.mean()),
            "blockiness2": float(self.blockiness2.mean()),
            "checkerboard": cb,
            "blockiness4_floor": float(self.blockiness4_floor.mean()),
            "blockiness2_floor": float(self.blockiness2_floor.mean()),
            "checkerboard_floor": cb_floor,
        }

    def select(self, keep: torch.Tensor) -> ImageScores:
        """The scores of the images where the boolean mask (or index) ``keep`` selects."""
        return ImageScores(
            **{f: getattr(self, f)[keep] for f in self.__dataclass_fields__}  # type: ignore[attr-defined]
        )

    @staticmethod
    def concat(parts: list[ImageScores]) -> ImageScores:
        """Scores of several batches, in order, as one."""
        return ImageScores(
            **{
                f: torch.cat([getattr(p, f) for p in parts])
                for f in ImageScores.__dataclass_fields__
            }
        )


def measure(recon: torch.Tensor, target: torch.Tensor, generator: torch.Generator) -> ImageScores:
    """Every per-image metric of ``recon`` against ``target`` (same shape, [0, 1]).

    Args:
        recon: reconstructions (N, C, H, W).
        target: the inputs, same shape.
        generator: random source for the blockiness floors' shuffle (seeded by the caller
            so a whole split's floors are reproducible).

    Returns:
        An :class:`ImageScores` on the CPU.
    """
    m = mse(recon, target)
    blocks = blockiness_with_floors(recon, target, TILE_PERIODS, generator)
    phases, chance = period2_phases(recon, target)
    return ImageScores(
        m.cpu(),
        psnr_from_mse(m).cpu(),
        ssim(recon, target).cpu(),
        blocks[2][0].cpu(),
        blocks[4][0].cpu(),
        blocks[2][1].cpu(),
        blocks[4][1].cpu(),
        phases.cpu(),
        chance.cpu(),
    )


def _run(
    model: Reconstructor,
    images: torch.Tensor | ImageSet,
    batch_size: int,
    keep_recon: bool,
    name: str = "",
) -> tuple[ImageScores, torch.Tensor | None]:
    """One pass of ``model`` over ``images`` in batches; recon kept on CPU when asked."""
    net = EvalCopy(model, name)
    # One seeded generator for the whole pass: the floors' shuffles are reproducible.
    gen = torch.Generator().manual_seed(0)
    parts, recons = [], []
    for x in net.batches(images, batch_size):
        y = net(x)
        parts.append(measure(y, x, gen))
        if keep_recon:
            recons.append(y.cpu().contiguous())
    scores = ImageScores.concat(parts)
    return scores, (torch.cat(recons) if keep_recon else None)


def score_images(
    model: Reconstructor, images: torch.Tensor | ImageSet, batch_size: int = BATCH_SIZE
) -> ImageScores:
    """Per-image MSE, PSNR, SSIM and grid-artifact measures of ``model`` on ``images``.

    Args:
        model: an autoencoder or a baseline (not modified).
        images: uint8 or float-in-[0, 1] images (N, C, H, W), or an ImageSet.
        batch_size: images per forward pass.

    Returns:
        An :class:`ImageScores` with one value per image; ``.mean()`` gives the set's.
    """
    return _run(model, images, batch_size, keep_recon=False)[0]


@dataclass
class Comparison:
    """The same images through two models, for the paired A/B view.

    Attributes:
        names: the two models' labels, in order (A, B).
        inputs: the input images, float (N, C, H, W) in [0, 1], CPU.
        recon: name -> reconstructions, same shape as ``inputs``.
        abs_error: name -> ``|recon - inputs|``, same shape.
        error_max: the largest absolute error over both models: draw both error maps
            on one colour scale from 0 to this value so they can be compared by eye.
        scores: name -> per-image :class:`ImageScores`.
    """

    names: tuple[str, str]
    inputs: torch.Tensor
    recon: dict[str, torch.Tensor]
    abs_error: dict[str, torch.Tensor]
    error_max: float
    scores: dict[str, ImageScores] = field(default_factory=dict)

    def summary(self) -> list[dict]:
        """One row per model with the set-level figures (see :meth:`ImageScores.mean`).

        Returns:
            [{"model", "n", "mse", "psnr", "ssim", "blockiness4", ..., "checkerboard_floor"},
            ...] in A, B order.
        """
        return [{"model": name, **self.scores[name].mean()} for name in self.names]

    def per_image(self) -> list[dict]:
        """One row per image and model, for a sortable table.

        Returns:
            [{"image": i, "model": name, **{m: value for m in METRICS}}, ...]; the
            checkerboard is each image's own (:attr:`ImageScores.checkerboard`).
        """
        # Each column once per model (the checkerboard columns are computed properties).
        columns = {
            name: {k: getattr(self.scores[name], k).tolist() for k in METRICS}
            for name in self.names
        }
        return [
            {"image": i, "model": name, **{k: v[i] for k, v in columns[name].items()}}
            for i in range(len(self.inputs))
            for name in self.names
        ]


def _labels(
    model_a: Reconstructor, model_b: Reconstructor, names: tuple[str, str] | None
) -> tuple[str, str]:
    if names is not None:
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"give two different names for the two models, got {names}")
        return (str(names[0]), str(names[1]))
    a, b = model_name(model_a), model_name(model_b)
    return (a, b) if a != b else (f"{a} (A)", f"{b} (B)")


def compare_models(
    model_a: Reconstructor,
    model_b: Reconstructor,
    images: torch.Tensor | ImageSet,
    names: tuple[str, str] | None = None,
    batch_size: int = BATCH_SIZE,
) -> Comparison:
    """Run the same images through two models and measure both, image by image.

    Meant for the handful to few hundred images the page shows (it keeps every
    reconstruction); for a whole split use :func:`per_class_table` or
    :func:`score_images`, which keep only the numbers.

    Args:
        model_a: first model (e.g. transpose decoder, or a baseline); not modified.
        model_b: second model (e.g. upsample decoder); not modified.
        images: uint8 or float-in-[0, 1] images (N, C, H, W) or (C, H, W), or an ImageSet
            (e.g. the test split filtered to the chosen classes).
        names: labels for the two models; default: :func:`model_name` of each, with
            " (A)" / " (B)" added when both are the same.
        batch_size: images per forward pass.

    Returns:
        A :class:`Comparison` with reconstructions, absolute errors, a shared error
        scale and per-image scores; ``.summary()`` gives the means.

    Raises:
        ValueError: no images, or images a model cannot take (channels, size).
    """
    label_a, label_b = _labels(model_a, model_b, names)
    inputs = as_float_images(images)
    scores, recon, err = {}, {}, {}
    for label, model in ((label_a, model_a), (label_b, model_b)):
        scores[label], recon[label] = _run(model, inputs, batch_size, True, label)
        err[label] = (recon[label] - inputs).abs()
    error_max = max(float(e.max()) for e in err.values())
    return Comparison((label_a, label_b), inputs, recon, err, error_max, scores)


def class_rows(
    scores: dict[str, ImageScores], labels: torch.Tensor, classes: list[str], overall: bool = True
) -> list[dict]:
    """Per-class set figures from per-image scores already computed.

    Args:
        scores: model label -> :class:`ImageScores` of the same images, in order.
        labels: (N,) class index of each image.
        classes: class names, index = label.
        overall: also add one row per model with class "all", at the end.

    Returns:
        Rows sorted by class order then model order:
        [{"class", "model", **ImageScores.mean()}, ...]; classes with no image left out.
    """
    rows = []
    for c, cls in enumerate(classes):
        keep = labels == c
        if not keep.any():
            continue
        for name, s in scores.items():
            rows.append({"class": cls, "model": name, **s.select(keep).mean()})
    if overall:
        rows += [{"class": "all", "model": name, **s.mean()} for name, s in scores.items()]
    return rows


def per_class_table(
    models: dict[str, Reconstructor],
    images: ImageSet,
    batch_size: int = BATCH_SIZE,
    overall: bool = True,
) -> list[dict]:
    """Mean PSNR, SSIM, MSE and grid-artifact measures per class and model over a split.

    Each model makes one batched pass over all of ``images`` and the per-image scores
    are then grouped by label, so the cost is one evaluation per model (seconds for
    the 10,000 CIFAR-10 test images on CPU). The page should cache the result per
    (checkpoint, split), e.g. ``st.cache_data`` keyed on the checkpoint paths with
    the models passed as ``_models``.

    Args:
        models: label -> autoencoder or baseline, e.g. {"transpose": ..., "PCA 256": ...}.
        images: a labelled split, e.g. ``load_dataset("cifar10").test``.
        batch_size: images per forward pass.
        overall: also add one row per model with class "all" (every image), at the end.

    Returns:
        Rows sorted by class order then model order: [{"class", "model", "n", "mse",
        "psnr", "ssim", "blockiness4", "blockiness2", "checkerboard", and the three
        "..._floor"}, ...]; the artifact measures in grey levels; classes with no image
        in ``images`` are left out.
    """
    if not models:
        raise ValueError("no models to compare: give at least one")
    scores = {name: score_images(model, images, batch_size) for name, model in models.items()}
    return class_rows(scores, images.labels, images.classes, overall)


def scores_over_training(
    snapshots: Sequence[Snapshot], images: torch.Tensor | ImageSet, batch_size: int = BATCH_SIZE
) -> list[dict]:
    """Set-level figures of every training snapshot of one model on the same images.

    For the "artifacts over training" view: feed each point to
    :func:`convae.figures.compare.snapshot_curves`. A few hundred images are enough for
    a smooth curve (the blockiness of 200 CIFAR-10 test images moves by a few percent).

    Args:
        snapshots: :func:`convae.checkpoints.snapshot_models` of a checkpoint or a run.
        images: the images to score every snapshot on.
        batch_size: images per forward pass.

    Returns:
        [{"step", "epoch", **ImageScores.mean()}, ...] in the snapshots' order.
    """
    return [
        {"step": s.step, "epoch": s.epoch, **score_images(s.model, images, batch_size).mean()}
        for s in snapshots
    ]


@torch.no_grad()
def overlap_map(kernel_size: int, stride: int = 2, in_size: int = 4) -> torch.Tensor:
    """How many kernel taps of a transpose convolution land on each output pixel.

    A real ``ConvTranspose2d(1, 1, kernel_size, stride)`` with every weight 1 and no
    bias is applied to an all-ones input, so each output value is the count of
    (input pixel, kernel tap) pairs that write to it. When ``kernel_size`` is not a
    multiple of ``stride`` the counts alternate from pixel to pixel (for k=3, s=2:
    1, 2 and 4 in a 2x2 grid), so even a flat input comes out as a checkerboard
    unless the learned weights cancel the imbalance exactly (Odena, Dumoulin and Olah
    2016, "Deconvolution and Checkerboard Artifacts", Distill). k=2 gives exactly one
    tap everywhere; k=4 gives an even 4 inside, uneven only at the borders.

    Args:
        kernel_size: the layer's kernel size (e.g. 2, 3 or 4).
        stride: the layer's stride (2 for the course's decoders).
        in_size: height and width of the all-ones input.

    Returns:
        Float tensor (H_out, W_out) of counts, H_out = (in_size - 1) * stride + kernel_size.
    """
    if kernel_size < 1 or stride < 1 or in_size < 1:
        raise ValueError(
            f"kernel size, stride and input size must be >= 1, got "
            f"{kernel_size}, {stride}, {in_size}"
        )
    layer = nn.ConvTranspose2d(1, 1, kernel_size, stride=stride, bias=False)
    nn.init.ones_(layer.weight)
    return layer(torch.ones(1, 1, in_size, in_size))[0, 0]
