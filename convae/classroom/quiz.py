"""What a picture question shows, its right answer and the measured reason.

Given the models (by the keys the question names), the data set's test split and a seed,
:func:`prepare` builds a question's pictures at true size (the UI enlarges them, nearest
neighbour), the right option and a one-sentence reason made only from measured figures:

* "which-decoder" (blind quiz): the test picture, and the two models' reconstructions as
  A and B in an order drawn from the seed; the right option is the picture ``drawn_by``
  drew. Figures: PSNR and the 4x4-tile measure ``blockiness4`` with its floor
  (:func:`convae.metrics.blockiness`, the Compare page's measure, via
  :func:`convae.compare.compare_models`).
* "worst": the 4 test pictures as A-D in an order drawn from the seed; the right option is
  the one the model rebuilds with the lowest PSNR. Figures: each one's PSNR.

The same question, models, pictures and seed give the same result in every session, so
the teacher's session measures the answer when it asks, and each student's session
rebuilds the same pictures from the question and seed the class record keeps.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..compare import compare_models
from ..data import ImageSet
from ..metrics import psnr
from ..models import ConvAutoencoder
from ..recon import reconstruct
from .errors import QuestionError
from .questions import PictureRef, Question


@dataclass(frozen=True)
class PreparedQuestion:
    """A question made ready to show.

    Attributes:
        question: the question.
        seed: the seed that drew the order (keep it: students rebuild with it).
        input: which-decoder: the test picture (C, H, W) in [0, 1]; worst: None.
        pictures: option -> the picture the students choose among, (C, H, W), true size.
        rebuilt: option -> what the model rebuilt (which-decoder: the same as pictures;
            worst: the reconstructions, to show with the reveal).
        labels: option -> what it is, said at the reveal (a model key, or "cat #3").
        correct: the right option, or None (a choice question without one).
        figures: option -> measured figures ({"psnr"}, plus {"blockiness4",
            "blockiness4_floor"} for which-decoder), in dB and grey levels.
        reason: one sentence made from the figures (a choice question: the file's).
    """

    question: Question
    seed: int
    correct: str | None
    reason: str
    input: torch.Tensor | None = None
    pictures: dict[str, torch.Tensor] = field(default_factory=dict)
    rebuilt: dict[str, torch.Tensor] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    figures: dict[str, dict[str, float]] = field(default_factory=dict)


def new_seed() -> int:
    """A seed for a question asked without one."""
    return secrets.randbelow(2**31)


def _order(question: Question, seed: int, items: list) -> list:
    # Seeded by the question's id too, so two questions asked with one seed differ.
    out = list(items)
    random.Random(f"{question.id}/{seed}").shuffle(out)
    return out


def _model(question: Question, models: Mapping[str, ConvAutoencoder], key: str) -> ConvAutoencoder:
    if key not in models:
        raise QuestionError(
            f"question {question.id!r} needs the model {key!r}, which is not loaded here"
        )
    return models[key]


def _picture(question: Question, test: ImageSet, ref: PictureRef) -> torch.Tensor:
    """The test picture ``ref`` names, (1, C, H, W) floats in [0, 1]."""
    if ref.cls not in test.classes:
        raise QuestionError(
            f"question {question.id!r}: this data set has no class {ref.cls!r} "
            f"(classes: {', '.join(test.classes)})"
        )
    subset = test.filter([ref.cls])
    if ref.index >= len(subset):
        raise QuestionError(
            f"question {question.id!r}: picture {ref} does not exist; the test split has "
            f"{len(subset)} pictures of {ref.cls} (0-{len(subset) - 1})"
        )
    return subset.floats(slice(ref.index, ref.index + 1))


def _f(value: float) -> str:
    """One decimal, without a "-0.0" for a value that rounds to zero."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _compared(word_a: float, word_b: float, digits: int = 1) -> str:
    a, b = round(word_a, digits), round(word_b, digits)
    return "above" if a > b else "below" if a < b else "level with"


def _decoder_reason(c: str, o: str, name: str, fig: dict[str, dict[str, float]]) -> str:
    fc, fo = fig[c], fig[o]
    return (
        f"{c} was drawn by {name}: its 4x4-tile measure is {_f(fc['blockiness4'])} grey levels "
        f"(floor {_f(fc['blockiness4_floor'])}), "
        f"{_compared(fc['blockiness4'], fo['blockiness4'])} {o}'s {_f(fo['blockiness4'])} "
        f"(floor {_f(fo['blockiness4_floor'])}), and its PSNR is {_f(fc['psnr'])} dB against "
        f"{o}'s {_f(fo['psnr'])} dB."
    )


def _display(key: str, model: ConvAutoencoder, other: ConvAutoencoder) -> str:
    dec = model.config.decoder
    return f"the {dec} decoder ({key})" if dec != other.config.decoder else key


def prepare_which_decoder(
    question: Question, models: Mapping[str, ConvAutoencoder], test: ImageSet, seed: int
) -> PreparedQuestion:
    """The blind quiz: see :func:`prepare`."""
    key_d, key_o = question.models
    drawn, other = _model(question, models, key_d), _model(question, models, key_o)
    x = _picture(question, test, question.pictures[0])
    try:
        cmp = compare_models(drawn, other, x, names=("drawn", "other"))
    except ValueError as exc:
        raise QuestionError(f"question {question.id!r}: {exc}") from None
    order = _order(question, seed, ["drawn", "other"])
    letters = question.options
    names = dict(zip(letters, order, strict=True))
    figures = {
        opt: {
            "psnr": float(cmp.scores[n].psnr[0]),
            "blockiness4": float(cmp.scores[n].blockiness4[0]),
            "blockiness4_floor": float(cmp.scores[n].blockiness4_floor[0]),
        }
        for opt, n in names.items()
    }
    correct = letters[order.index("drawn")]
    wrong = letters[order.index("other")]
    pictures = {opt: cmp.recon[n][0] for opt, n in names.items()}
    return PreparedQuestion(
        question,
        seed,
        correct,
        _decoder_reason(correct, wrong, _display(key_d, drawn, other), figures),
        input=x[0],
        pictures=pictures,
        rebuilt=pictures,
        labels={opt: key_d if n == "drawn" else key_o for opt, n in names.items()},
        figures=figures,
    )


def _worst_reason(worst: str, fig: dict[str, dict[str, float]]) -> str:
    others = [f"{_f(fig[o]['psnr'])} dB ({o})" for o in fig if o != worst]
    listed = ", ".join(others[:-1]) + f" and {others[-1]}" if len(others) > 1 else others[0]
    return f"{worst} is rebuilt worst: PSNR {_f(fig[worst]['psnr'])} dB, against {listed}."


def prepare_worst(
    question: Question, models: Mapping[str, ConvAutoencoder], test: ImageSet, seed: int
) -> PreparedQuestion:
    """Which of 4 pictures is rebuilt worst: see :func:`prepare`."""
    model = _model(question, models, question.models[0])
    refs = _order(question, seed, list(question.pictures))
    x = torch.cat([_picture(question, test, r) for r in refs])
    try:
        rebuilt = reconstruct(model, x)
    except ValueError as exc:
        raise QuestionError(f"question {question.id!r}: {exc}") from None
    scores = psnr(rebuilt, x).tolist()
    letters = question.options
    figures = {opt: {"psnr": float(p)} for opt, p in zip(letters, scores, strict=True)}
    worst = letters[min(range(len(scores)), key=scores.__getitem__)]
    return PreparedQuestion(
        question,
        seed,
        worst,
        _worst_reason(worst, figures),
        pictures=dict(zip(letters, x, strict=True)),
        rebuilt=dict(zip(letters, rebuilt, strict=True)),
        labels={opt: str(r) for opt, r in zip(letters, refs, strict=True)},
        figures=figures,
    )


def prepare(
    question: Question,
    models: Mapping[str, ConvAutoencoder] | None = None,
    test: ImageSet | None = None,
    seed: int | None = None,
) -> PreparedQuestion:
    """Make a question ready to show: its pictures, right answer and measured reason.

    Args:
        question: the question (from the file, or ``questions.choice_question``).
        models: model key -> model, holding the keys the question names (picture kinds).
        test: the data set's test split (picture kinds).
        seed: the order's seed: the question's own, else this one, else a new one. A
            student's session passes the seed of the question as asked.

    Returns:
        A :class:`PreparedQuestion`; pictures stay at true size, in [0, 1].

    Raises:
        QuestionError: a model that is not loaded, a class or picture this data set does
            not have, pictures the model cannot take.
    """
    if question.seed is not None:
        seed = question.seed
    seed = new_seed() if seed is None else int(seed)
    if question.kind == "choice":
        return PreparedQuestion(question, seed, question.answer, question.reason)
    if models is None or test is None:
        raise QuestionError(f"question {question.id!r} needs the models and the test pictures")
    build = prepare_which_decoder if question.kind == "which-decoder" else prepare_worst
    return build(question, models, test, seed)
