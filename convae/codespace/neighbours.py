"""Nearest neighbours of every picture, in code space and in pixel space.

Distances are Euclidean on the rows as they are (codes as the encoder gives them, pixels
in [0, 1], PCA coordinates), because that is what "close in code space" means to the
decoder: two codes that are close decode to similar pictures.

For a whole split every picture's ``k`` nearest (itself left out) are found once by brute
force, exactly: ``|a - b|^2 = |a|^2 + |b|^2 - 2 a.b`` in blocks of rows, one matrix
product each. 10,000 codes of 256 numbers take about a second; 10,000 pictures of 3,072
pixels twelve times that, once per data set (bench/results/codespace.json). The table of
neighbours is then what a click reads: a lookup, not a search.

"Neighbours share the class" is the fraction of (picture, neighbour) pairs over the
whole split whose classes match (the k-NN class agreement). Its chance level is the
probability that another picture drawn at random from the split has the same class:
``sum_c n_c (n_c - 1) / (N (N - 1))``, 10 % on CIFAR-10's balanced test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import ProgressFn
from .features import check_size

K = 8  # neighbours shown per picture (the page's row of 8)
BLOCK = 1000  # query rows per matrix product: 1000 x 10,000 float32 distances, 40 MB


@dataclass
class NeighbourTable:
    """Every picture's ``k`` nearest other pictures in one space.

    Attributes:
        space: what the rows were ("code", "pixels", "PCA 256 of pixels").
        indices: (N, k) int64, nearest first; never the picture itself.
        distances: (N, k) float32 Euclidean distances, ascending.
        agreement: fraction of (picture, neighbour) pairs with the same class.
    """

    space: str
    indices: torch.Tensor
    distances: torch.Tensor
    agreement: float

    def of(self, index: int) -> tuple[list[int], list[float]]:
        """The neighbours of picture ``index``: (indices, distances), nearest first."""
        if not 0 <= index < len(self.indices):
            raise IndexError(f"picture {index} is not in this split (0-{len(self.indices) - 1})")
        return self.indices[index].tolist(), self.distances[index].tolist()


def _squared_norms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).sum(1)


def nearest(
    rows: torch.Tensor,
    k: int = K,
    progress: ProgressFn | None = None,
    what: str = "finding neighbours",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's ``k`` nearest other rows, exactly (brute force in blocks).

    Args:
        rows: (N, ...) numbers per picture (flattened).
        k: neighbours per row.
        progress: ``progress(done, N, what)`` after each block of rows.
        what: the progress label.

    Returns:
        (indices (N, k) int64, distances (N, k) float32), nearest first.

    Raises:
        TooSmallError: fewer than ``k + 1`` pictures.
    """
    x = rows.reshape(len(rows), -1).float()
    n = len(x)
    check_size("a neighbour search", n, x.shape[1], k + 1, 1)
    norms = _squared_norms(x)
    idx = torch.empty(n, k, dtype=torch.int64)
    dist = torch.empty(n, k, dtype=torch.float32)
    for start in range(0, n, BLOCK):
        q = x[start : start + BLOCK]
        d2 = norms[start : start + len(q), None] + norms[None, :] - 2 * (q @ x.T)
        d2[torch.arange(len(q)), torch.arange(start, start + len(q))] = float("inf")
        d, i = d2.topk(k, dim=1, largest=False)
        idx[start : start + len(q)] = i
        # Rounding can make a tiny squared distance negative: clamp before the root.
        dist[start : start + len(q)] = d.clamp_min(0).sqrt()
        if progress:
            progress(min(start + BLOCK, n), n, what)
    return idx, dist


def nearest_to(
    rows: torch.Tensor, query: torch.Tensor, k: int = K
) -> tuple[list[int], list[float]]:
    """The ``k`` rows nearest to one query row (e.g. a picture not in the split).

    Args:
        rows: (N, ...) the split's rows.
        query: one row, same numbers per picture.
        k: how many.

    Returns:
        (indices, distances), nearest first.
    """
    x = rows.reshape(len(rows), -1).float()
    q = query.reshape(1, -1).float()
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"the query has {q.shape[1]} numbers, the rows {x.shape[1]}")
    d = torch.cdist(q, x)[0]
    dist, idx = d.topk(min(k, len(x)), largest=False)
    return idx.tolist(), dist.tolist()


def class_agreement(indices: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of (picture, neighbour) pairs whose classes match.

    Args:
        indices: (N, k) neighbour indices into ``labels``.
        labels: (N,) class of each picture.
    """
    return float((labels[indices] == labels[:, None]).float().mean())


def chance_agreement(labels: torch.Tensor) -> float:
    """The probability that another picture drawn at random has the same class."""
    n = len(labels)
    if n < 2:
        return float("nan")
    counts = torch.bincount(labels).double()
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def neighbour_table(
    rows: torch.Tensor,
    labels: torch.Tensor,
    space: str,
    k: int = K,
    progress: ProgressFn | None = None,
) -> NeighbourTable:
    """Every picture's ``k`` nearest in one space, and how often they share its class.

    Args:
        rows: (N, ...) codes, pixels or PCA coordinates of the split's pictures.
        labels: (N,) their classes.
        space: the space's name for tables and sentences.
        k: neighbours per picture.
        progress: ``progress(done, total, what)``.
    """
    idx, dist = nearest(rows, k, progress, f"finding neighbours in {space} space")
    return NeighbourTable(space, idx, dist, class_agreement(idx, labels))


def agreement_sentence(tables: list[NeighbourTable], chance: float) -> str:
    """One sentence: how often each space's neighbours share the picture's class.

    E.g. "Code neighbours share the picture's class 25 % of the time, pixel neighbours
    23 %, PCA 256 neighbours 24 %; chance is 10 %."
    """
    if not tables:
        return ""
    parts = [f"{t.space} neighbours" for t in tables]
    parts[0] = parts[0][0].upper() + parts[0][1:]
    figures = [f"{100 * t.agreement:.0f} %" for t in tables]
    first = f"{parts[0]} share the picture's class {figures[0]} of the time"
    rest = [f"{p} {f}" for p, f in zip(parts[1:], figures[1:], strict=True)]
    return ", ".join([first, *rest]) + f"; chance is {100 * chance:.0f} %."
