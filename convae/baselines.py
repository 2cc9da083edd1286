"""Baselines that keep as many numbers per image as the autoencoder's code, for scale.

The autoencoder squeezes a 3x32x32 CIFAR-10 image into a 4x8x8 code: 256 numbers. Is
that learned code any good? Two classic ways to keep about the same count:

* **PCA**: the 256 directions of largest variance of the training images (principal
  component analysis); an image is kept as its 256 coordinates along them. It is the
  best *linear* code of that size for mean squared error over the training set
  (Eckart-Young), so the autoencoder has to beat it with its nonlinearity.
* **Downsampling**: the image averaged down to 9x9 pixels x 3 colours (243 numbers,
  the nearest square count below 256) and enlarged back by bilinear interpolation.
  This is what "a smaller picture" keeps.

For 1-channel 28x28 data (MNIST, Fashion-MNIST: code 4x7x7 = 196 numbers) the
analogous sizes are PCA with 196 components and a 14x14 downsample (196 numbers, the
same count exactly). The rule for any data: PCA keeps the code size, 4 (S/4)^2 for
images of side S; the downsample side is the largest d with d*d*C <= that.

Both are :class:`Baseline` modules: ``baseline(x)`` reconstructs a batch of float
images in [0, 1] like a :class:`~convae.models.ConvAutoencoder` does, so
:mod:`convae.compare` measures them with the same code (PSNR, SSIM, the grid-artifact
measures, per class). A PCA fit of the 50,000 CIFAR-10 training images takes tens of
seconds (bench/results/baselines.json), so :func:`pca_baseline` caches it in the data
root's cache folder, keyed by the data set's fingerprint.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .atomic import write_atomic
from .data import DataSet, ImageSet, data_root

KINDS = ("pca", "downsample")
PCA_CACHE_VERSION = 1
# Images per chunk of the covariance sum: 5,000 x 3,072 float32 is 60 MB, enough to keep
# BLAS busy without holding the whole split (600 MB) in float32 at once.
FIT_CHUNK = 5000


@dataclass(frozen=True)
class BaselineConfig:
    """What defines a baseline: its kind, the images it takes, and what it keeps."""

    kind: str = "pca"  # "pca" (fitted components) or "downsample" (area average + bilinear)
    in_channels: int = 3  # 3 for CIFAR-10, 1 for MNIST / Fashion-MNIST
    image_size: int = 32  # side of the square images it takes
    numbers: int = 256  # values kept per image: PCA components, or side*side*channels

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"baseline kind must be one of {KINDS}, got {self.kind!r}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        full = self.in_channels * self.image_size**2
        if not 1 <= self.numbers <= full:
            raise ValueError(
                f"a baseline keeps between 1 and {full} numbers per image, got {self.numbers}"
            )
        if self.kind == "downsample" and self.side**2 * self.in_channels != self.numbers:
            raise ValueError(
                f"a downsample keeps side*side*{self.in_channels} numbers; {self.numbers} "
                "is not of that form (use downsample_config())"
            )

    @property
    def side(self) -> int:
        """The downsampled image's side (downsample kind)."""
        return math.isqrt(self.numbers // self.in_channels)

    @property
    def label(self) -> str:
        """A short name for tables and legends, e.g. "PCA 256" or "downsample 9x9x3"."""
        if self.kind == "pca":
            return f"PCA {self.numbers}"
        return f"downsample {self.side}x{self.side}x{self.in_channels}"

    def to_dict(self) -> dict:
        return asdict(self)


def code_numbers(image_size: int) -> int:
    """How many numbers the autoencoder's code holds for images of this side: 4 (S/4)^2."""
    return 4 * (image_size // 4) ** 2


def pca_config(in_channels: int = 3, image_size: int = 32) -> BaselineConfig:
    """PCA keeping as many components as the autoencoder's code has numbers (256, 196)."""
    return BaselineConfig("pca", in_channels, image_size, code_numbers(image_size))


def downsample_config(in_channels: int = 3, image_size: int = 32) -> BaselineConfig:
    """The largest square downsample with no more numbers than the code: 9x9x3 = 243 for
    CIFAR-10, 14x14x1 = 196 for 28x28 greyscale."""
    side = math.isqrt(code_numbers(image_size) // in_channels)
    return BaselineConfig("downsample", in_channels, image_size, side * side * in_channels)


class Baseline(nn.Module):
    """A fixed encoder/decoder pair with ``config.numbers`` values per image.

    ``forward(x)`` reconstructs float images (N, C, H, W) in [0, 1], clamped to [0, 1]
    as a picture is shown, like the autoencoder's sigmoid output. Nothing in it is
    trained by gradient; it holds no parameters (the PCA's are buffers), so a shared
    instance is read-only.
    """

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.config = config

    def _check(self, x: torch.Tensor) -> None:
        c = self.config
        if x.dim() != 4 or x.shape[1] != c.in_channels or x.shape[-2:] != (c.image_size,) * 2:
            raise ValueError(
                f"{c.label} takes images ({c.in_channels}, {c.image_size}, {c.image_size}), "
                f"got shape {tuple(x.shape)[1:]}: pick a baseline made for this data set"
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) -> their kept numbers (N, config.numbers)."""
        raise NotImplementedError

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Kept numbers (N, config.numbers) -> images (N, C, H, W), unclamped."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.decode(self.encode(x)).clamp(0, 1)


class DownsampleBaseline(Baseline):
    """Area-average down to ``side`` x ``side``, bilinear back up (no fitting needed).

    Area averaging (each kept value is the mean of a ~3.6-pixel square patch for 32 ->
    9) is the plain "smaller picture"; bilinear with align_corners=False puts the kept
    values at the patch centres on the way back.
    """

    def __init__(self, config: BaselineConfig | None = None) -> None:
        config = config or downsample_config()
        if config.kind != "downsample":
            raise ValueError(f"DownsampleBaseline needs kind 'downsample', got {config.kind!r}")
        super().__init__(config)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return F.adaptive_avg_pool2d(x.float(), self.config.side).flatten(1)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        c = self.config
        small = code.reshape(len(code), c.in_channels, c.side, c.side)
        return F.interpolate(
            small, size=(c.image_size, c.image_size), mode="bilinear", align_corners=False
        )


class PCABaseline(Baseline):
    """Principal components: ``code = (x - mean) @ components.T``, ``x ~ code @ components + mean``.

    Args:
        config: kind "pca"; ``numbers`` components.
        mean: (D,) mean training image, D = C*H*W (flattened in (C, H, W) order).
        components: (numbers, D) orthonormal rows, largest variance first.
        variance: (numbers,) the training images' variance along each component.
        total_variance: the training images' total variance (trace of the covariance).
        fit_seconds: how long the fit took (0 when unknown).
    """

    def __init__(
        self,
        config: BaselineConfig,
        mean: torch.Tensor,
        components: torch.Tensor,
        variance: torch.Tensor,
        total_variance: float,
        fit_seconds: float = 0.0,
    ) -> None:
        if config.kind != "pca":
            raise ValueError(f"PCABaseline needs kind 'pca', got {config.kind!r}")
        super().__init__(config)
        d = config.in_channels * config.image_size**2
        if mean.shape != (d,) or components.shape != (config.numbers, d):
            raise ValueError(
                f"PCA of {config.numbers} components on {d} values needs mean ({d},) and "
                f"components ({config.numbers}, {d}); got {tuple(mean.shape)} and "
                f"{tuple(components.shape)}"
            )
        self.register_buffer("mean", mean.float().contiguous())
        self.register_buffer("components", components.float().contiguous())
        self.register_buffer("variance", variance.float().contiguous())
        self.total_variance = float(total_variance)
        self.fit_seconds = float(fit_seconds)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return (x.float().reshape(len(x), -1) - self.mean) @ self.components.T

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        c = self.config
        flat = code.float() @ self.components + self.mean
        return flat.reshape(len(code), c.in_channels, c.image_size, c.image_size)

    def explained_variance(self) -> float:
        """Share of the training images' total variance the components keep (0..1)."""
        return float(self.variance.sum()) / max(self.total_variance, 1e-12)


@torch.no_grad()
def fit_pca(train: ImageSet, components: int | None = None) -> PCABaseline:
    """Fit PCA on a training split exactly (every eigenvector, not a randomized estimate).

    With more images than pixel values (50,000 against 3,072 for CIFAR-10) the D x D
    covariance is summed in chunks and ``torch.linalg.eigh`` (float64) gives every
    eigenvector; with fewer (a small image folder) the centred images' SVD gives the
    same directions at a fraction of the cost. The ``components`` with the largest
    variance are kept. Exact rather than randomized (``pca_lowrank``) so the baseline is
    the true best linear code of its size, not an approximation of it. When the split
    has fewer than ``components`` + 1 images, directions beyond its rank carry no
    variance and are kept as zero rows (they encode nothing).

    Args:
        train: the training images (uint8 (N, C, H, W)), e.g. ``load_dataset(...).train``.
        components: how many to keep (default: the autoencoder's code size, 256 / 196).

    Returns:
        A :class:`PCABaseline` on the CPU; ``fit_seconds`` says how long the fit took.
    """
    n = len(train)
    c, s = train.channels, train.image_size
    k = components or code_numbers(s)
    config = BaselineConfig("pca", c, s, k)
    if n < 2:
        raise ValueError(f"PCA needs at least 2 training images, got {n}")
    t0 = time.perf_counter()
    flat = train.images.reshape(n, -1)
    d = flat.shape[1]
    # uint8 sums in int64 are exact and fast; the mean is then subtracted chunk by chunk.
    mean = flat.sum(0, dtype=torch.int64).double() / n
    if n <= d:
        x = flat.double() - mean
        _, sv, vh = torch.linalg.svd(x, full_matrices=False)  # descending
        values, vectors = sv**2 / (n - 1), vh.T
    else:
        mean32 = mean.float()
        cov = torch.zeros(d, d, dtype=torch.float64)
        for i in range(0, n, FIT_CHUNK):
            # float32 products (2x the speed of float64 in BLAS), summed in float64
            # across chunks: the relative error stays near 1e-6, far below what moves
            # the top components.
            x = flat[i : i + FIT_CHUNK].float() - mean32
            cov += (x.T @ x).double()
        cov /= n - 1
        values, vectors = torch.linalg.eigh(cov)  # ascending
    values = values.clamp_min(0)
    order = values.argsort(descending=True)[:k]
    top, comps = values[order], vectors[:, order].T
    # Directions without variance (beyond the split's rank; the centred SVD always has
    # one) point anywhere: zero them so they encode nothing rather than noise.
    comps[top <= top[0] * 1e-12] = 0
    if len(order) < k:  # fewer images than components: the rest carry no variance
        comps = torch.cat([comps, torch.zeros(k - len(order), d, dtype=comps.dtype)])
        top = torch.cat([top, torch.zeros(k - len(order), dtype=top.dtype)])
    # Pixel values were 0..255: rescale to images in [0, 1].
    return PCABaseline(
        config,
        mean / 255,
        comps,
        top / 255**2,
        float(values.sum()) / 255**2,
        time.perf_counter() - t0,
    )


def _cache_path(root: Path, fingerprint: str, config: BaselineConfig) -> Path:
    return (
        root
        / "cache"
        / (
            f"pca{config.numbers}-{config.in_channels}x{config.image_size}-{fingerprint}"
            f"-v{PCA_CACHE_VERSION}.pt"
        )
    )


def pca_baseline(
    data: DataSet, components: int | None = None, root: Path | str | None = None
) -> PCABaseline:
    """The PCA baseline of a data set's training split, fitted once and cached on disk.

    The fit is stored in ``<root>/cache/`` under a name holding the data set's
    fingerprint, so the same training images load it back (``torch.load`` with
    ``weights_only=True``) in well under a second instead of refitting. A missing or
    unreadable cache file is refitted; a read-only cache folder only costs the refit.

    Args:
        data: a loaded data set (its ``train`` split is fitted).
        components: how many to keep (default: the autoencoder's code size).
        root: data root (default: ``$CONVAE_DATA`` or ./data, as for the data cache).

    Returns:
        A :class:`PCABaseline` on the CPU.
    """
    root = Path(root) if root is not None else data_root()
    train = data.train
    config = BaselineConfig(
        "pca", train.channels, train.image_size, components or code_numbers(train.image_size)
    )
    path = _cache_path(root, data.fingerprint, config)
    cached = _read_pca(path, config)
    if cached is not None:
        return cached
    pca = fit_pca(train, config.numbers)
    _write_pca(path, pca)
    return pca


def _read_pca(path: Path, config: BaselineConfig) -> PCABaseline | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        if blob.get("config") != config.to_dict():
            return None
        return PCABaseline(
            config,
            blob["mean"],
            blob["components"],
            blob["variance"],
            float(blob["total_variance"]),
            float(blob["fit_seconds"]),
        )
    except Exception:  # a corrupt or foreign file: refit rather than fail
        return None


def _write_pca(path: Path, pca: PCABaseline) -> None:
    blob = {
        "config": pca.config.to_dict(),
        "mean": pca.mean,
        "components": pca.components,
        "variance": pca.variance,
        "total_variance": pca.total_variance,
        "fit_seconds": pca.fit_seconds,
    }
    # Read-only data root or a full disk: the fit is in memory, only the next start pays
    # for it again. torch.save raises RuntimeError for some write failures.
    with contextlib.suppress(OSError, RuntimeError):
        write_atomic(path, lambda f: torch.save(blob, f))


def baselines_for(data: DataSet, root: Path | str | None = None) -> dict[str, Baseline]:
    """Both baselines for a data set, keyed by label: {"PCA 256": ..., "downsample 9x9x3": ...}.

    Args:
        data: a loaded data set (PCA is fitted on its training split, or read from cache).
        root: data root for the PCA cache.
    """
    c, s = data.train.channels, data.train.image_size
    pca = pca_baseline(data, root=root)
    down = DownsampleBaseline(downsample_config(c, s))
    return {pca.config.label: pca, down.config.label: down}
