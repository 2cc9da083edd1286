"""Side-by-side measurements of two (or more) autoencoders on the same images.

The Compare page is built on these functions; they hold the maths, the page only
draws. Everything runs under ``torch.no_grad()`` on a private evaluation-mode copy
of each model (on the model's device), never on the model itself, because one
cached model is shared by many Streamlit sessions.

* :func:`score_images` - per-image MSE, PSNR, SSIM and checkerboard score of one model.
* :func:`compare_models` - the same images through two models: reconstructions,
  absolute errors on one shared colour scale, per-image and mean metrics.
* :func:`per_class_table` - mean metrics per class and model over a whole split
  (the 10,000 CIFAR-10 test images in one pass per model, batched).
* :func:`overlap_map` - how many kernel taps of a stride-s transpose convolution land
  on each output pixel, computed by a real ``ConvTranspose2d``.

Set-level PSNR follows the project's convention (``convae.metrics``): PSNR of the
mean MSE, so the figures match ``python -m convae evaluate``. SSIM and checkerboard
are plain means of the per-image values.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .data import ImageSet
from .metrics import checkerboard_score, mse, psnr_from_mse, ssim
from .models import ConvAutoencoder

METRICS = ("mse", "psnr", "ssim", "checkerboard")
# 1,000 images a batch: a few tens of MB of activations for these models, and large
# enough that per-call overhead is negligible on CPU.
BATCH_SIZE = 1000


@dataclass
class ImageScores:
    """Per-image metrics of one model on N images; each field has shape (N,)."""

    mse: torch.Tensor
    psnr: torch.Tensor
    ssim: torch.Tensor
    checkerboard: torch.Tensor

    def __len__(self) -> int:
        return int(self.mse.shape[0])

    def mean(self) -> dict[str, float]:
        """Set-level figures: PSNR of the mean MSE; plain means of the others.

        Returns:
            {"n", "mse", "psnr", "ssim", "checkerboard"}.
        """
        m = float(self.mse.mean())
        return {
            "n": len(self),
            "mse": m,
            "psnr": float(psnr_from_mse(m)),
            "ssim": float(self.ssim.mean()),
            "checkerboard": float(self.checkerboard.mean()),
        }

    def select(self, keep: torch.Tensor) -> ImageScores:
        """The scores of the images where the boolean mask (or index) ``keep`` selects."""
        return ImageScores(
            self.mse[keep], self.psnr[keep], self.ssim[keep], self.checkerboard[keep]
        )


def as_float_images(images: torch.Tensor | ImageSet) -> torch.Tensor:
    """Images as float (N, C, H, W) in [0, 1] on the CPU, from uint8, float or an ImageSet."""
    x = images.images if isinstance(images, ImageSet) else images
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


def _check_fits(model: ConvAutoencoder, x: torch.Tensor, name: str) -> None:
    cfg = model.config
    if x.shape[1] != cfg.in_channels:
        raise ValueError(
            f"model {name} takes {cfg.in_channels}-channel images but these have "
            f"{x.shape[1]} channels: pick a model trained on this data set"
        )
    if x.shape[-1] % 4 or x.shape[-2] % 4:
        raise ValueError(
            f"image size {tuple(x.shape[-2:])} is not a multiple of 4, which the "
            "two 2x2 pools of the encoder need"
        )


@torch.no_grad()
def _run(
    model: ConvAutoencoder,
    images: torch.Tensor | ImageSet,
    batch_size: int,
    keep_recon: bool,
    name: str = "",
) -> tuple[ImageScores, torch.Tensor | None]:
    """One pass of ``model`` over ``images`` in batches; recon kept on CPU when asked."""
    src = images.images if isinstance(images, ImageSet) else images
    if src.dim() == 3:
        src = src[None]
    if len(src) == 0:
        raise ValueError("no images to score: choose at least one image")
    _check_fits(model, src, name or model.config.decoder)
    device = next(model.parameters()).device
    # A private channels_last copy in eval mode: oneDNN runs these convolutions (and
    # SSIM's) ~2-3x faster in NHWC on CPU, and the caller's shared model is never
    # touched, not even its train/eval flag. The copy is ~2,000 parameters.
    net = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("mse", "ssim", "checkerboard")}
    recons = []
    for i in range(0, len(src), batch_size):
        x = (
            as_float_images(src[i : i + batch_size])
            .to(device)
            .contiguous(memory_format=torch.channels_last)
        )
        y = net(x)
        parts["mse"].append(mse(y, x).cpu())
        parts["ssim"].append(ssim(y, x).cpu())
        parts["checkerboard"].append(checkerboard_score(y, x).cpu())
        if keep_recon:
            recons.append(y.cpu().contiguous())
    m = torch.cat(parts["mse"])
    scores = ImageScores(
        m, psnr_from_mse(m), torch.cat(parts["ssim"]), torch.cat(parts["checkerboard"])
    )
    return scores, (torch.cat(recons) if keep_recon else None)


def score_images(
    model: ConvAutoencoder, images: torch.Tensor | ImageSet, batch_size: int = BATCH_SIZE
) -> ImageScores:
    """Per-image MSE, PSNR, SSIM and checkerboard score of ``model`` on ``images``.

    Args:
        model: an autoencoder (not modified).
        images: uint8 or float-in-[0, 1] images (N, C, H, W), or an ImageSet.
        batch_size: images per forward pass.

    Returns:
        An :class:`ImageScores` with one value per image.
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
            [{"model", "n", "mse", "psnr", "ssim", "checkerboard"}, ...] in A, B order.
        """
        return [{"model": name, **self.scores[name].mean()} for name in self.names]

    def per_image(self) -> list[dict]:
        """One row per image and model, for a sortable table.

        Returns:
            [{"image": i, "model": name, "mse", "psnr", "ssim", "checkerboard"}, ...].
        """
        rows = []
        for i in range(len(self.inputs)):
            for name in self.names:
                s = self.scores[name]
                rows.append(
                    {"image": i, "model": name, **{k: float(getattr(s, k)[i]) for k in METRICS}}
                )
        return rows


def _labels(
    model_a: ConvAutoencoder, model_b: ConvAutoencoder, names: tuple[str, str] | None
) -> tuple[str, str]:
    if names is not None:
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"give two different names for the two models, got {names}")
        return (str(names[0]), str(names[1]))
    a, b = model_a.config.decoder, model_b.config.decoder
    return (a, b) if a != b else (f"{a} (A)", f"{b} (B)")


def compare_models(
    model_a: ConvAutoencoder,
    model_b: ConvAutoencoder,
    images: torch.Tensor | ImageSet,
    names: tuple[str, str] | None = None,
    batch_size: int = BATCH_SIZE,
) -> Comparison:
    """Run the same images through two models and measure both, image by image.

    Meant for the handful to few hundred images the page shows (it keeps every
    reconstruction); for a whole split use :func:`per_class_table` or
    :func:`score_images`, which keep only the numbers.

    Args:
        model_a: first model (e.g. transpose decoder); not modified.
        model_b: second model (e.g. upsample decoder); not modified.
        images: uint8 or float-in-[0, 1] images (N, C, H, W) or (C, H, W), or an ImageSet
            (e.g. the test split filtered to the chosen classes).
        names: labels for the two models; default: their decoder names, with
            " (A)" / " (B)" added when both have the same decoder.
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


def per_class_table(
    models: dict[str, ConvAutoencoder],
    images: ImageSet,
    batch_size: int = BATCH_SIZE,
    overall: bool = True,
) -> list[dict]:
    """Mean PSNR, SSIM, MSE and checkerboard score per class and model over a split.

    Each model makes one batched pass over all of ``images`` and the per-image scores
    are then grouped by label, so the cost is one evaluation per model (seconds for
    the 10,000 CIFAR-10 test images on CPU). The page should cache the result per
    (checkpoint, split), e.g. ``st.cache_data`` keyed on the checkpoint paths with
    the models passed as ``_models``.

    Args:
        models: label -> model, e.g. {"transpose": ..., "upsample": ...}.
        images: a labelled split, e.g. ``load_dataset("cifar10").test``.
        batch_size: images per forward pass.
        overall: also add one row per model with class "all" (every image), at the end.

    Returns:
        Rows sorted by class order then model order:
        [{"class", "model", "n", "mse", "psnr", "ssim", "checkerboard"}, ...]; classes
        with no image in ``images`` are left out.
    """
    if not models:
        raise ValueError("no models to compare: give at least one")
    scores = {name: score_images(model, images, batch_size) for name, model in models.items()}
    rows = []
    for c, cls in enumerate(images.classes):
        keep = images.labels == c
        if not keep.any():
            continue
        for name, s in scores.items():
            rows.append({"class": cls, "model": name, **s.select(keep).mean()})
    if overall:
        rows += [{"class": "all", "model": name, **s.mean()} for name, s in scores.items()]
    return rows


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
