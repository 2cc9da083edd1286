"""Picture questions: what they show, the right answer and the reason, measured on real
models (tiny ones trained by conftest, and the shipped ones on the embedded CIFAR-10
sample for the questions the repo ships), and asked through the service."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convae.checkpoints import load_checkpoint
from convae.classroom import (
    ClassService,
    QuestionError,
    TeacherKey,
    load_questions,
    parse_questions,
)
from convae.classroom.memory_store import MemoryStore
from convae.classroom.quiz import prepare
from convae.data import load_dataset
from convae.metrics import blockiness, blockiness_floor, psnr
from convae.recon import reconstruct

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"transpose": "shipped:t.pt", "upsample": "shipped:u.pt"}


@pytest.fixture(scope="module")
def models(tiny_models):
    return {KEYS[dec]: result.model for dec, result in tiny_models.items()}


def _blind(extra: str = "") -> object:
    return parse_questions(
        '[[question]]\nid = "blind"\nkind = "which-decoder"\nprompt = "Which?"\n'
        'drawn_by = "shipped:t.pt"\nother = "shipped:u.pt"\n'
        'picture = { class = "square", i = 2 }\n' + extra
    )[0]


def _pictures(*refs: tuple[str, int]) -> str:
    return ", ".join(f'{{ class = "{c}", i = {i} }}' for c, i in refs)


def _worst(extra: str = "", pictures: str = "") -> object:
    pictures = pictures or (
        '{ class = "circle", i = 0 }, { class = "square", i = 1 }, '
        '{ class = "stripes", i = 2 }, { class = "stripes", i = 3 }'
    )
    return parse_questions(
        '[[question]]\nid = "worst"\nkind = "worst"\nprompt = "Which?"\n'
        f'model = "shipped:u.pt"\npictures = [{pictures}]\n' + extra
    )[0]


def test_the_blind_quiz_shows_both_reconstructions_and_measures_them(models, tiny_data):
    q = _blind()
    p = prepare(q, models, tiny_data.test, seed=5)
    x = tiny_data.test.filter(["square"]).floats(slice(2, 3))
    assert torch.equal(p.input, x[0])
    right, wrong = p.correct, ({"A", "B"} - {p.correct}).pop()
    assert p.labels == {right: "shipped:t.pt", wrong: "shipped:u.pt"}
    for opt, key in p.labels.items():
        own = reconstruct(models[key], x)
        assert torch.allclose(p.pictures[opt], own[0], atol=1e-6)
        assert p.pictures[opt].shape == x.shape[1:]  # true size: the UI enlarges
        fig = p.figures[opt]
        assert fig["psnr"] == pytest.approx(float(psnr(own, x)[0]), abs=1e-4)
        assert fig["blockiness4"] == pytest.approx(float(blockiness(own, x, 4)[0]), abs=1e-3)
        floor = float(blockiness_floor(own, x, 4, torch.Generator().manual_seed(0))[0])
        assert fig["blockiness4_floor"] == pytest.approx(floor, abs=1e-3)
    fr, fw = p.figures[right], p.figures[wrong]
    assert p.reason.startswith(f"{right} was drawn by the transpose decoder (shipped:t.pt)")
    for value in (fr["blockiness4"], fw["blockiness4"], fr["psnr"], fw["psnr"]):
        assert f"{value:.1f}".replace("-0.0", "0.0") in p.reason
    above = round(fr["blockiness4"], 1) > round(fw["blockiness4"], 1)
    assert ("above" in p.reason) == above


def test_the_order_comes_from_the_seed(models, tiny_data):
    q = _blind()
    first = prepare(q, models, tiny_data.test, seed=3)
    assert prepare(q, models, tiny_data.test, seed=3).correct == first.correct
    answers = {prepare(q, models, tiny_data.test, seed=s).correct for s in range(12)}
    assert answers == {"A", "B"}  # either picture may be the transpose decoder's
    fixed = _blind("seed = 11\n")
    assert prepare(fixed, models, tiny_data.test, seed=1).seed == 11  # the file's seed wins
    assert isinstance(prepare(q, models, tiny_data.test).seed, int)  # drawn when not given


def test_worst_is_the_lowest_psnr(models, tiny_data):
    q = _worst()
    p = prepare(q, models, tiny_data.test, seed=2)
    assert set(p.pictures) == {"A", "B", "C", "D"}
    for opt, label in p.labels.items():
        cls, index = label.split(" #")
        x = tiny_data.test.filter([cls]).floats(slice(int(index), int(index) + 1))
        assert torch.equal(p.pictures[opt], x[0])
        own = reconstruct(models["shipped:u.pt"], x)
        assert p.figures[opt]["psnr"] == pytest.approx(float(psnr(own, x)[0]), abs=1e-4)
        assert torch.allclose(p.rebuilt[opt], own[0], atol=1e-6)
    lowest = min(p.figures, key=lambda o: p.figures[o]["psnr"])
    assert p.correct == lowest
    assert p.reason.startswith(
        f"{lowest} is rebuilt worst: PSNR {p.figures[lowest]['psnr']:.1f} dB"
    )
    for opt in set(p.figures) - {lowest}:
        assert f"{p.figures[opt]['psnr']:.1f} dB ({opt})" in p.reason


def test_what_a_question_needs_that_is_not_here(models, tiny_data):
    with pytest.raises(QuestionError, match="needs the model 'shipped:u.pt', which is not loaded"):
        prepare(_blind(), {"shipped:t.pt": models["shipped:t.pt"]}, tiny_data.test)
    far = _worst(pictures=_pictures(("circle", 0), ("circle", 1), ("circle", 2), ("circle", 99)))
    with pytest.raises(
        QuestionError,
        match=r"picture circle #99 does not exist; the test split has 8 pictures of circle \(0-7\)",
    ):
        prepare(far, models, tiny_data.test)
    cat = _worst(pictures=_pictures(("cat", 0), ("circle", 1), ("circle", 2), ("circle", 3)))
    with pytest.raises(QuestionError, match="this data set has no class 'cat'"):
        prepare(cat, models, tiny_data.test)
    with pytest.raises(QuestionError, match="needs the models and the test pictures"):
        prepare(_blind())


def test_a_student_rebuilds_what_the_teacher_asked(models, tiny_data):
    """The teacher's session measures the answer when it asks; a student's session rebuilds
    the same pictures from the question and seed the class keeps, and hears the answer
    only at the reveal."""
    key = TeacherKey("the-key-of-this-test-0123456789")
    svc = ClassService(MemoryStore(), key)
    lead = svc.start(key.verify("the-key-of-this-test-0123456789"))
    seat = svc.join(lead.info.code)
    asked = svc.ask(lead, _blind(), prepare(_blind(), models, tiny_data.test))
    seen = svc.state(seat).question
    assert seen.correct is None and seen.labels == {} and seen.figures == {}
    mine = prepare(seen.question, models, tiny_data.test, seed=seen.seed)
    teacher = prepare(_blind(), models, tiny_data.test, seed=asked.seed)
    assert mine.correct == teacher.correct == asked.correct
    for opt in ("A", "B"):
        assert torch.equal(mine.pictures[opt], teacher.pictures[opt])
    svc.answer(seat, seen.qid, asked.correct)
    svc.reveal(lead)
    shown = svc.state(seat).question
    assert shown.correct == asked.correct and shown.reason == asked.reason
    assert shown.figures == asked.figures and shown.labels == asked.labels
    assert svc.tally(seat).counts[asked.correct] == 1


@pytest.fixture(scope="module")
def sample_test(tmp_path_factory):
    """The embedded CIFAR-10 sample's test split (the first 100 of each class, as in the
    full set): there on every machine."""
    return load_dataset("cifar10-sample", root=tmp_path_factory.mktemp("sample")).test


def test_the_shipped_questions_on_the_shipped_models(sample_test):
    shipped = {
        f"shipped:{n}": load_checkpoint(ROOT / "checkpoints" / n).model
        for n in ("cifar10-transpose.pt", "cifar10-upsample.pt")
    }
    questions = {q.id: q for q in load_questions(ROOT / "lessons" / "questions.toml")}
    for qid in ("tiles-airplane", "tiles-cat"):
        p = prepare(questions[qid], shipped, sample_test, seed=0)
        by_model = {p.labels[o]: p.figures[o] for o in p.figures}
        t, u = by_model["shipped:cifar10-transpose.pt"], by_model["shipped:cifar10-upsample.pt"]
        # the transpose decoder's 4x4 tiles stand out: well above its floor and the other's
        assert t["blockiness4"] - t["blockiness4_floor"] > 3 * (
            u["blockiness4"] - u["blockiness4_floor"]
        )
        assert t["blockiness4"] - t["blockiness4_floor"] > 10
    worst = prepare(questions["worst-four"], shipped, sample_test, seed=0)
    assert worst.labels[worst.correct] == "frog #62"
    others = [f["psnr"] for o, f in worst.figures.items() if o != worst.correct]
    assert min(others) - worst.figures[worst.correct]["psnr"] > 5  # far worse: 5 dB or more
