"""The questions file: the shipped one parses against the shipped models and CIFAR-10's
classes, and every way a file can be wrong gives one error naming the question, the key
and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from convae.classroom import (
    Question,
    QuestionError,
    choice_question,
    load_questions,
    parse_questions,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {f"shipped:{p.name}" for p in (ROOT / "checkpoints").glob("*.pt")}
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

CHOICE = """
[[question]]
id = "size"
kind = "choice"
prompt = "How big is the code?"
options = ["64", "256"]
answer = "256"
"""
BLIND = """
[[question]]
id = "blind"
kind = "which-decoder"
prompt = "Which did the transpose decoder draw?"
drawn_by = "shipped:cifar10-transpose.pt"
other = "shipped:cifar10-upsample.pt"
picture = { class = "cat", i = 3 }
"""
WORST = """
[[question]]
id = "worst"
kind = "worst"
prompt = "Which will it rebuild worst?"
model = "shipped:cifar10-upsample.pt"
pictures = [{ class = "cat", i = 0 }, { class = "cat", i = 1 }, { class = "dog", i = 0 },
            { class = "ship", i = 2 }]
"""


def test_the_shipped_questions_file_is_good():
    questions = load_questions(ROOT / "lessons" / "questions.toml", SHIPPED, CIFAR)
    kinds = {q.kind for q in questions}
    assert kinds == {"which-decoder", "worst", "choice"}
    for q in questions:
        assert all(m in SHIPPED for m in q.models)
        assert all(p.index < 100 for p in q.pictures)  # on the embedded sample too
        assert Question.from_dict(q.to_dict()) == q


def test_the_three_kinds_read_as_written():
    (c,) = parse_questions(CHOICE)
    assert (c.kind, c.options, c.answer) == ("choice", ("64", "256"), "256")
    (b,) = parse_questions(BLIND)
    assert b.options == ("A", "B") and b.models[0] == "shipped:cifar10-transpose.pt"
    assert str(b.pictures[0]) == "cat #3" and b.seed is None
    (w,) = parse_questions(WORST + "seed = 7\n")
    assert w.options == ("A", "B", "C", "D") and len(w.pictures) == 4 and w.seed == 7
    assert load_questions(ROOT / "no-such-file.toml") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[question]\nid = 1", "is not valid TOML"),
        ('title = "x"\n' + CHOICE, "unknown top-level key 'title'"),
        ("question = 3", "write each question as a [[question]] table"),
        ("question = [1]", "question 1: is not a table"),
        (CHOICE.replace('id = "size"', ""), "question 1, key 'id': is missing"),
        (CHOICE.replace('id = "size"', 'id = "a b"'), "key 'id': 'a b' must be letters"),
        (
            CHOICE.replace('"choice"', '"poll"'),
            "question 1 ('size'), key 'kind': 'poll' is not a question kind "
            "(which-decoder, worst, choice)",
        ),
        (
            CHOICE.replace('prompt = "How big is the code?"', ""),
            "question 1 ('size'), key 'prompt': is missing",
        ),
        (CHOICE.replace('"How big is the code?"', '"  "'), "key 'prompt': is empty"),
        (
            CHOICE.replace('"How big is the code?"', "3"),
            "key 'prompt': must be text in quotes, not int 3",
        ),
        (
            CHOICE.replace('options = ["64", "256"]', ""),
            "question 1 ('size'), key 'options': is missing (a 'choice' question needs options)",
        ),
        (CHOICE.replace('["64", "256"]', '"64, 256"'), "key 'options': must be a list of texts"),
        (CHOICE.replace('["64", "256"]', '["64"]'), "key 'options': needs 2 to 8 options, not 1"),
        (
            CHOICE.replace('["64", "256"]', '["64", "64"]'),
            "key 'options': has the same option twice",
        ),
        (
            CHOICE.replace('answer = "256"', 'answer = "128"'),
            "question 1 ('size'), key 'answer': '128' is not one of the options (64, 256)",
        ),
        (
            CHOICE + 'colour = "red"\n',
            "question 1 ('size'), key 'colour': is not a key of a 'choice' question",
        ),
        (CHOICE + 'model = "shipped:a.pt"\n', "key 'model': is not a key of a 'choice' question"),
        (CHOICE + CHOICE, "question 2 ('size'), key 'id': 'size' is used by another question"),
        (
            BLIND.replace('other = "shipped:cifar10-upsample.pt"', ""),
            "question 1 ('blind'), key 'other': is missing",
        ),
        (
            BLIND.replace("cifar10-upsample", "cifar10-transpose"),
            "key 'other': must be another model than drawn_by",
        ),
        (
            BLIND.replace('"shipped:cifar10-transpose.pt"', '"trained:1"'),
            "key 'drawn_by': 'trained:1' is not a shipped model",
        ),
        (BLIND.replace("i = 3", 'i = "3"'), "key 'picture.i': must be a whole number, not str '3'"),
        (BLIND.replace("i = 3", "i = -1"), "key 'picture.i': must be at least 0"),
        (
            BLIND.replace('{ class = "cat", i = 3 }', '"cat 3"'),
            "key 'picture': a picture is written",
        ),
        (BLIND + "seed = true\n", "key 'seed': must be a whole number, not bool True"),
        (
            WORST.replace('{ class = "ship", i = 2 }', ""),
            "question 1 ('worst'), key 'pictures': needs exactly 4 pictures",
        ),
        (
            WORST.replace('"dog", i = 0', '"cat", i = 0'),
            "key 'pictures': has the same picture twice",
        ),
        (
            WORST + 'picture = { class = "cat", i = 3 }\n',
            "key 'picture': is not a key of a 'worst' question",
        ),
    ],
)
def test_a_bad_file_names_the_question_the_key_and_the_problem(text, message):
    with pytest.raises(QuestionError) as err:
        parse_questions(text)
    assert message in str(err.value)
    assert str(err.value).startswith("the questions file")


def test_models_and_classes_are_checked_when_given():
    with pytest.raises(
        QuestionError, match="key 'model': no model 'shipped:cifar10-upsample.pt' here"
    ):
        parse_questions(WORST, models={"shipped:cifar10-transpose.pt"})
    with pytest.raises(QuestionError, match="key 'picture': no class 'cat'"):
        parse_questions(BLIND, classes=["circle", "square"])
    assert parse_questions(WORST, models=SHIPPED, classes=CIFAR)


def test_a_bad_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "questions.toml"
    path.write_text(CHOICE.replace('"choice"', '"poll"'))
    with pytest.raises(QuestionError, match=f"^{path}: question 1"):
        load_questions(path)


def test_a_question_typed_in_class():
    q = choice_question("  Ready  now? ", ["yes", "no"], answer="yes")
    assert (q.prompt, q.options, q.answer, q.kind) == ("Ready now?", ("yes", "no"), "yes", "choice")
    with pytest.raises(QuestionError, match="key 'options': needs 2 to 8 options"):
        choice_question("Ready?", ["yes"])
    with pytest.raises(QuestionError, match="key 'answer': 'maybe' is not one of the options"):
        choice_question("Ready?", ["yes", "no"], answer="maybe")
    with pytest.raises(QuestionError, match="key 'prompt': is empty"):
        choice_question("", ["yes", "no"])
