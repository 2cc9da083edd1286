"""Does the code know the class? A linear probe (Alain and Bengio 2016, "Understanding
intermediate layers using linear classifier probes").

A logistic-regression classifier is trained on the training split's rows (codes, raw
pixels, or PCA of the pixels with as many numbers as the code) and tested on the test
split. The autoencoder never saw a label, so whatever accuracy the code reaches above the
pixels' says how much the encoder reorganised the pictures along lines that happen to
separate the classes; a probe as good as the pixels' says it kept what was there, no more.

The recipe is fixed so that a figure can be reproduced to the digit:

* every feature standardised with the *training* rows' mean and standard deviation
  (a feature that never varies, e.g. a dead code channel, is left at 0);
* multinomial logistic regression, weights and biases starting at 0, the mean
  cross-entropy plus an L2 penalty ``l2 / 2 * |W|^2`` (``l2 = 1 / N_train``: scikit-
  learn's default C = 1 on a summed loss, the same optimum);
* full-batch L-BFGS (``torch.optim.LBFGS``, strong-Wolfe line search, history 10) for at
  most ``max_iter`` iterations, stopping earlier when the gradient's largest entry falls
  below 1e-4.

There is no random step on full splits, so two runs give the same accuracy (up to the
order of float sums across threads); ``seed`` picks the training subset when one is
asked for (:func:`training_subset`).

Torch rather than scikit-learn's ``LogisticRegression``: the same optimum
(tests/test_codespace.py checks that the two agree), but the work runs on torch's
threads, which the server's training queue already confines to the training thread
(:func:`convae.queue.training_resources`); scikit-learn's BLAS threads are process-wide.

Chance level is the accuracy of always answering the training split's most frequent
class (10 % on CIFAR-10's balanced test split).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from ..data import ProgressFn
from .features import TooSmallError, check_size

# At most this many L-BFGS iterations, so that a probe's cost is bounded; a probe
# stopped here says so (``converged``), and bench/results/codespace.json has each one's.
MAX_ITER = 200
GRAD_TOL = 1e-4


@dataclass
class ProbeResult:
    """One linear probe's result.

    Attributes:
        features: what was probed ("code", "pixels", "PCA 256 of pixels").
        numbers: numbers per picture.
        accuracy: fraction of test pictures classified right.
        per_class: accuracy per class (the recall of each class), in class order;
            NaN for a class with no test picture.
        chance: the accuracy of always answering the most frequent training class.
        classes: class names, index = label.
        n_train, n_test: pictures used.
        iterations: L-BFGS iterations run.
        converged: True when the gradient fell below the tolerance before ``max_iter``.
        seconds: time the fit took (wall clock).
    """

    features: str
    numbers: int
    accuracy: float
    per_class: list[float]
    chance: float
    classes: list[str]
    n_train: int
    n_test: int
    iterations: int
    converged: bool
    seconds: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict:
        return asdict(self)


def standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets standardised with the training rows' mean and standard deviation.

    A feature with (near) zero spread in training keeps spread 1, so it becomes 0
    everywhere instead of dividing by zero.
    """
    mean = train.mean(0)
    std = train.std(0)
    std = torch.where(std > 1e-6 * std.max().clamp_min(1e-30), std, torch.ones_like(std))
    return (train - mean) / std, (test - mean) / std


def chance_accuracy(train_labels: torch.Tensor, test_labels: torch.Tensor) -> float:
    """Accuracy on the test labels of always answering the most frequent training class."""
    top = int(torch.bincount(train_labels).argmax())
    return float((test_labels == top).float().mean())


def per_class_accuracy(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> list[float]:
    """Fraction right per class (NaN for a class with no picture), in class order."""
    out = []
    for c in range(n_classes):
        keep = labels == c
        out.append(float((pred[keep] == c).float().mean()) if keep.any() else float("nan"))
    return out


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    max_iter: int = MAX_ITER,
    progress: ProgressFn | None = None,
    what: str = "linear probe",
) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """Multinomial logistic regression by full-batch L-BFGS (the recipe in the module doc).

    Args:
        x: (N, D) standardised float rows.
        y: (N,) int64 labels in [0, n_classes).
        n_classes: number of classes.
        max_iter: most L-BFGS iterations.
        progress: ``progress(evaluations, max_iter, what)`` after each evaluation of the
            loss (about one per iteration); an exception it raises stops the fit.
        what: the progress label.

    Returns:
        (weights (D, K), biases (K,), iterations run, converged).
    """
    x = x.float().contiguous()
    w = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    l2 = 1.0 / len(x)
    opt = torch.optim.LBFGS(
        [w, b], lr=1, max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe",
        tolerance_grad=GRAD_TOL,
    )  # fmt: skip
    evals = 0

    def closure() -> torch.Tensor:
        nonlocal evals
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        evals += 1
        if progress:
            progress(min(evals, max_iter), max_iter, what)
        return loss

    opt.step(closure)
    iters = int(opt.state[w]["n_iter"])
    return w.detach(), b.detach(), iters, iters < max_iter


def training_subset(n: int, max_train: int | None, seed: int = 0) -> torch.Tensor | None:
    """Which training pictures a probe uses: None for all of them, else ``max_train`` of
    them drawn at random with ``seed`` (sorted, so the split's order is kept)."""
    if max_train is None or max_train >= n:
        return None
    if max_train < 1:
        raise ValueError(f"a probe needs at least one training picture, got max_train={max_train}")
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_train]
    return keep.sort().values


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    classes: list[str],
    features: str = "code",
    max_iter: int = MAX_ITER,
    progress: ProgressFn | None = None,
) -> ProbeResult:
    """Train a linear classifier on the training rows and test it on the test rows.

    Args:
        train_x, test_x: (N, ...) rows (codes, pixels, PCA coordinates); flattened.
        train_y, test_y: (N,) int64 labels.
        classes: class names, index = label.
        features: the name of what is probed, for tables.
        max_iter: most L-BFGS iterations.
        progress: ``progress(done, total, what)`` during the fit.

    Returns:
        A :class:`ProbeResult`.

    Raises:
        TooSmallError: fewer than 2 numbers per picture, fewer than 2 classes among the
            training pictures, or fewer than 2 training pictures per class on average.
    """
    train_x, test_x = train_x.flatten(1).float(), test_x.flatten(1).float()
    k = len(classes)
    present = int((torch.bincount(train_y, minlength=k) > 0).sum())
    check_size("a linear probe", len(train_x), train_x.shape[1], max(2 * present, 4), 2)
    if present < 2:
        raise TooSmallError(
            f"The training pictures here hold {present} class, and a probe needs at least 2 "
            "classes to tell apart."
        )
    t0 = time.perf_counter()
    a, b = standardise(train_x, test_x)
    w, bias, iters, ok = fit_logistic(a, train_y, k, max_iter, progress, f"probe on {features}")
    with torch.no_grad():
        pred = (b @ w + bias).argmax(1)
    return ProbeResult(
        features=features,
        numbers=int(train_x.shape[1]),
        accuracy=float((pred == test_y).float().mean()),
        per_class=per_class_accuracy(pred, test_y, k),
        chance=chance_accuracy(train_y, test_y),
        classes=list(classes),
        n_train=len(train_x),
        n_test=len(test_x),
        iterations=iters,
        converged=ok,
        seconds=time.perf_counter() - t0,
    )
