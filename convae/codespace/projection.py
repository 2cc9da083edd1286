"""Maps: every picture of a split as a point in 2-D, from its code or its pixels.

Two projections:

* **PCA** (:func:`pca_map`), the default: the two directions along which the rows vary
  most. Linear, so distances along the axes mean something, and it needs no settings.
  For up to :data:`EXACT_MAX_DIM` numbers per row (every code: 256 for CIFAR-10) it is
  exact: the covariance matrix's eigenvectors (``torch.linalg.eigh`` in float64), a few
  milliseconds. For the 3,072 raw pixel values the covariance alone is 190 GFLOP and the
  eigendecomposition of a 3,072 x 3,072 matrix far more than "instant" on 2 cores, so the
  top directions come from a randomized SVD with power iterations (``torch.pca_lowrank``,
  Halko, Martinsson and Tropp 2011) instead, which finds the exact directions when the
  top ones stand clear of the rest, as the pixels' do (``tests/test_codespace.py`` checks
  it against the exact eigenvectors on such data); bench/results/codespace.json has its
  time ("pixel_map").
* **t-SNE** (:func:`tsne_map`; van der Maaten and Hinton 2008), with openTSNE (Policar,
  Strazar and Zupan 2024): neighbours stay neighbours, so classes that the code keeps
  apart show as islands; distances between islands mean little.

Why t-SNE and not UMAP (umap-learn 0.5.12): both were measured on the 10,000 CIFAR-10
test codes of cifar10-transpose, 2 threads, each in a fresh process, on this 2-core
machine (bench/codespace_choice.py, bench/results/codespace-choice.json). t-SNE kept
neighbourhoods better: trustworthiness at 10 neighbours 0.936 against 0.852, and 23 % of
each picture's 10 nearest on the map share its class against 18 % (25 % in the code
itself). The first call cost about the same CPU (57 s against 60 s, UMAP's including
numba compiling its kernels, which every server start pays); a second UMAP fit in the
same process took 21 s. The map is there to show which pictures the code puts together,
so the neighbourhoods decide; and UMAP would add numba and llvmlite to the app.

Both take rows (N, D) of float numbers and return (N, 2) float32 coordinates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..data import ProgressFn
from .features import TooSmallError, check_size

METHODS = ("pca", "tsne")
EXACT_MAX_DIM = 512  # eigh of a D x D covariance: instant up to here, tens of s at 3,072


@dataclass(frozen=True)
class TSNESettings:
    """The t-SNE recipe (openTSNE's defaults, except where a comment says why).

    Attributes:
        perplexity: effective number of neighbours each point keeps (openTSNE's 30).
        early_iters: iterations with early exaggeration 12 (clusters form).
        main_iters: iterations without it (clusters settle).
        seed: random state of the neighbour search and the optimisation.
    """

    perplexity: float = 30.0
    early_iters: int = 250
    main_iters: int = 500
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _as_rows(rows: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(rows).reshape(len(rows), -1)
    return x.double()


def principal_axes(
    rows: torch.Tensor | np.ndarray, k: int = 2
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The ``k`` directions of largest variance of the rows, and each one's variance.

    Args:
        rows: (N, D) numbers (N pictures, D numbers each).
        k: how many directions.

    Returns:
        (mean (D,), axes (k, D) orthonormal, largest variance first) in float64, and the
        fraction of the total variance along each axis, (k,).
    """
    x = _as_rows(rows)
    n, d = x.shape
    mean = x.mean(0)
    xc = x - mean
    total = float(xc.pow(2).sum()) / max(n - 1, 1)
    if d <= EXACT_MAX_DIM:
        values, vectors = torch.linalg.eigh(xc.T @ xc / max(n - 1, 1))  # ascending
        axes = vectors[:, -k:].flip(1).T
    else:
        # Randomized SVD (see the module docstring); 10 extra directions and 6 power
        # iterations make the top ones converge to float precision on pictures.
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(0)  # a fixed sketch: the same map every time
        try:
            _, _, v = torch.pca_lowrank(xc.float(), q=min(k + 10, d, n), center=False, niter=6)
        finally:
            torch.random.set_rng_state(gen_state)
        axes = v[:, :k].T.double()
    # Sign convention: the largest coordinate along each axis is positive, so a map does
    # not flip between two computations of the same numbers.
    flip = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    axes = axes * flip
    shares = (xc @ axes.T).pow(2).sum(0) / max(n - 1, 1) / max(total, 1e-30)
    return (mean, axes), shares


def pca_map(rows: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, list[float]]:
    """Project rows onto their two directions of largest variance.

    Args:
        rows: (N, D): codes (flattened) or pixel rows.

    Returns:
        (coordinates (N, 2) float32, [share of the variance along axis 1, along axis 2]).

    Raises:
        TooSmallError: fewer than 3 pictures or 3 numbers per picture (a 2-D map of 2-D
            rows would show them as they are).
    """
    check_size("a PCA map", len(rows), int(np.prod(rows.shape[1:])), 3, 3)
    (mean, axes), shares = principal_axes(rows, 2)
    coords = (_as_rows(rows) - mean) @ axes.T
    return coords.float(), [float(s) for s in shares]


def tsne_map(
    rows: torch.Tensor | np.ndarray,
    settings: TSNESettings | None = None,
    progress: ProgressFn | None = None,
    threads: int = 1,
) -> torch.Tensor:
    """A t-SNE map of the rows with openTSNE (FFT-accelerated gradients, Linderman 2019).

    The optimisation runs in chunks of 50 iterations and reports after each, so a page
    can draw a bar, and an exception raised by ``progress`` (Streamlit's stop on a click)
    ends the work between chunks.

    Args:
        rows: (N, D): codes (flattened) or pixel rows.
        settings: the recipe (default :class:`TSNESettings`).
        progress: ``progress(done, total, what)`` in iterations (plus one step for the
            neighbour search).
        threads: threads for openTSNE's neighbour search and gradients.

    Returns:
        Coordinates (N, 2) float32.

    Raises:
        TooSmallError: too few pictures for the perplexity (t-SNE needs more than
            3 x perplexity) or fewer than 3 numbers per picture.
    """
    from openTSNE import TSNEEmbedding, affinity, initialization

    s = settings or TSNESettings()
    n, d = len(rows), int(np.prod(rows.shape[1:]))
    check_size("a t-SNE map", n, d, int(3 * s.perplexity) + 2, 3)
    x = np.ascontiguousarray(_as_rows(rows).numpy())
    total = s.early_iters + s.main_iters + 1
    if progress:
        progress(0, total, "t-SNE: finding each picture's neighbours")
    aff = affinity.PerplexityBasedNN(
        x, perplexity=s.perplexity, n_jobs=threads, random_state=s.seed, method="annoy"
    )
    if progress:
        progress(1, total, "t-SNE: finding each picture's neighbours")
    init = initialization.pca(x, random_state=s.seed)
    # openTSNE's TSNE().fit recipe, run phase by phase: momentum 0.8 in both phases,
    # learning rate N / exaggeration (Belkina et al. 2019), FFT gradients from 10,000
    # points, Barnes-Hut below.
    emb = TSNEEmbedding(init, aff, n_jobs=threads, random_state=s.seed)
    done = 1
    for phase, iters, exaggeration in (
        ("t-SNE: forming clusters", s.early_iters, 12.0),
        ("t-SNE: settling the map", s.main_iters, None),
    ):
        left = iters
        while left > 0:
            step = min(50, left)
            # inplace: the optimiser's gains and momentum carry over from chunk to chunk,
            # so the chunks add up to one uninterrupted run.
            emb = emb.optimize(step, exaggeration=exaggeration, momentum=0.8, inplace=True)
            left -= step
            done += step
            if progress:
                progress(done, total, phase)
    return torch.from_numpy(np.asarray(emb, dtype=np.float32).copy())


def project(
    rows: torch.Tensor | np.ndarray,
    method: str = "pca",
    progress: ProgressFn | None = None,
    threads: int = 1,
    settings: TSNESettings | None = None,
) -> torch.Tensor:
    """Coordinates (N, 2) of the rows by ``method`` ("pca" or "tsne").

    Raises:
        ValueError: an unknown method.
        TooSmallError: too few pictures or numbers for the method.
    """
    if method == "pca":
        return pca_map(rows)[0]
    if method == "tsne":
        return tsne_map(rows, settings, progress, threads)
    raise ValueError(f"unknown projection {method!r}: use one of {', '.join(METHODS)}")


__all__ = ["METHODS", "TSNESettings", "TooSmallError", "pca_map", "project", "tsne_map"]
