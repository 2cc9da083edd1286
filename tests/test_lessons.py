"""Lessons: the lessons file is parsed and checked, and a lesson steps through its views in
presentation mode to its end (AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from convae.lessons import LessonError, load_lessons, parse_lessons
from convae.models import AEConfig, ConvAutoencoder
from convae.toml_schema import Key, Table, TomlFileError, check_tables, load_toml
from pages.glue.page_table import url_paths

from .apptools import html_text, start
from .test_app import app_env  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
TRANSPOSE_STEPS = {"input"} | {n for n, _ in ConvAutoencoder(AEConfig()).steps()}
PAGES = url_paths()


def test_the_shipped_lessons_parse_and_name_real_pages():
    lessons = load_lessons(ROOT / "lessons" / "lessons.toml", PAGES)
    assert [les.id for les in lessons] == ["squeeze", "tiles"]
    squeeze = lessons[0]
    assert squeeze.steps[0].page == ""  # "start" is the Overview
    assert [s.params.get("step") for s in squeeze.steps[1:7]] == [
        "input",
        "conv1",
        "pool1",
        "pool2",
        "conv4",
        "sigmoid",
    ]
    assert all(s.note and "\n" not in s.note for les in lessons for s in les.steps)


LESSON = "[[lesson]]\nid = 'a'\ntitle = 'A'\n"
STEP = "[[lesson.step]]\npage = 'recon'\nnote = 'n'\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[lesson]\n", "not valid TOML"),
        # the shapes of a table
        (
            "[lesson]\nid = 'a'\ntitle = 'A'\n",
            r"'lesson' must be a list of \[\[lesson\]\] tables, got a table: write \[\[lesson\]\]",
        ),
        ("lesson = 'a'\n", r"'lesson' must be a list of \[\[lesson\]\] tables, got text \('a'\)"),
        (
            LESSON + "step = 'x'\n",
            r"lesson 'a': 'step' must be a list of \[\[lesson.step\]\] tables, got text \('x'\)",
        ),
        (
            LESSON + "[lesson.step]\npage = 'recon'\nnote = 'n'\n",
            r"lesson 'a': 'step' must be .* got a table: write \[\[lesson.step\]\]",
        ),
        ("[[lessons]]\nid = 'a'\n", r"unknown key 'lessons' at the top .*did you mean 'lesson'"),
        # keys: misspelt, missing, of the wrong type
        (LESSON + STEP + "nots = 'x'\n", r"lesson 'a' step 1: unknown key 'nots' .*'note'"),
        (LESSON + "titel = 'B'\n" + STEP, r"lesson 'a': unknown key 'titel' .*'title'"),
        (LESSON + "[[lesson.step]]\npgae = 'recon'\nnote = 'n'\n", r"step 1: unknown key 'pgae'"),
        ("[[lesson]]\nid = 'a'\n" + STEP, "lesson 'a' has no 'title'"),
        ("[[lesson]]\ntitle = 'A'\n" + STEP, "lesson 1 has no 'id'"),
        (LESSON + "[[lesson.step]]\npage = 'recon'\n", "lesson 'a' step 1 has no 'note'"),
        (LESSON + "[[lesson.step]]\nnote = 'n'\n", "lesson 'a' step 1 has no 'page'"),
        (
            LESSON + "[[lesson.step]]\npage = 3\nnote = 'n'\n",
            r"step 1: 'page' must be text, got a whole number \(3\)",
        ),
        ("[[lesson]]\nid = 1\ntitle = 'A'\n" + STEP, r"lesson 1: 'id' must be text"),
        (
            LESSON + STEP + "[[lesson.step]]\npage = 'recon'\nnote = true\n",
            r"lesson 'a' step 2: 'note' must be text, got true or false",
        ),
        # meaning
        ("[[lesson]]\nid = ' '\ntitle = 'A'\n" + STEP, "needs an id and a title"),
        (LESSON, "has no steps"),
        (
            LESSON + "[[lesson.step]]\npage = 'nowhere'\nnote = 'n'\n",
            r"step 1: 'page' 'nowhere' is no page",
        ),
        (LESSON + "[[lesson.step]]\npage = 'recon'\nnote = ' '\n", "lesson 'a' step 1 has no note"),
        (LESSON + STEP + LESSON + STEP, "used twice"),
    ],
)
def test_a_bad_lessons_file_says_what_is_wrong(text, message):
    with pytest.raises(LessonError, match=message):
        parse_lessons(text, PAGES)


def test_a_file_that_is_not_utf8_is_a_lesson_error(tmp_path):
    path = tmp_path / "lessons.toml"
    path.write_bytes((LESSON + STEP).replace("'n'", "'caf\u00e9'").encode("latin-1"))
    with pytest.raises(LessonError, match="not UTF-8"):
        load_lessons(path, PAGES)


def test_the_schema_checks_lists_and_numbers_for_another_teachers_file():
    """The same checker serves another teacher's file (e.g. class questions, issue 22)."""

    class QuestionError(TomlFileError):
        pass

    question = Table(
        "question",
        {
            "id": Key(str, required=True),
            "choices": Key(list, items=str),
            "points": Key(float),
        },
        label="id",
    )
    ok = "[[question]]\nid = 'q1'\nchoices = ['a', 'b']\npoints = 2\n"
    doc = check_tables(
        load_toml(ok, "the questions file", QuestionError), (question,), QuestionError
    )
    assert doc == {"question": [{"id": "q1", "choices": ["a", "b"], "points": 2}]}
    assert check_tables({}, (question,), QuestionError) == {"question": []}
    for bad, message in [
        ("[[question]]\nid = 'q1'\nchoices = ['a', 2]\n", "'choices' must be a list of text"),
        ("[[question]]\nid = 'q1'\npoints = true\n", "'points' must be a number, got true"),
        (
            "[[question]]\nid = 'q1'\nchoice = ['a']\n",
            "unknown key 'choice' .*did you mean 'choices'",
        ),
    ]:
        with pytest.raises(QuestionError, match=f"question 'q1': {message}"):
            check_tables(
                load_toml(bad, "the questions file", QuestionError), (question,), QuestionError
            )


def test_a_lesson_steps_to_its_end(app_env, monkeypatch):  # noqa: F811
    at = start(app_env, monkeypatch)
    at.sidebar.toggle(key="ui_present").set_value(True).run()
    at.sidebar.selectbox(key="lesson_pick").set_value("squeeze").run()
    at.sidebar.button(key="lesson_start").click().run()
    lesson = load_lessons(ROOT / "lessons" / "lessons.toml", PAGES)[0]
    seen = []
    for k, step in enumerate(lesson.steps):
        assert not at.exception, [e.value for e in at.exception]
        assert at.session_state["lesson_step"] == k
        assert step.note[:40] in " ".join(html_text(at).split())  # the note shows
        assert f"step {k + 1} of {len(lesson.steps)}" in " ".join(m.value for m in at.markdown)
        if step.params.get("step") in TRANSPOSE_STEPS:  # the test's model is a transpose one
            assert at.session_state["layers_step"] == step.params["step"]
        seen.append(at.session_state["lesson_step"])
        nxt = at.button(key="lesson_next")
        if k == len(lesson.steps) - 1:
            assert nxt.disabled
        else:
            nxt.click().run()
    assert seen == list(range(len(lesson.steps)))
    at.button(key="lesson_end").click().run()
    assert "lesson_id" not in at.session_state and not at.exception


def test_every_model_a_lesson_names_is_shipped():
    """A lesson step's models are checkpoints in checkpoints/ (the decoder family's too):
    a renamed file would silently show the defaults in class."""
    shipped = {f"shipped:{p.name}" for p in (ROOT / "checkpoints").glob("*.pt")}
    named = {
        key
        for les in load_lessons(ROOT / "lessons" / "lessons.toml", PAGES)
        for step in les.steps
        for key in step.params.get("models", "").split(",")
        if key
    }
    assert named and named <= shipped, named - shipped
    tiles = load_lessons(ROOT / "lessons" / "lessons.toml", PAGES)[1]
    assert {"checkerboard", "blockiness2"} <= {s.params.get("measure") for s in tiles.steps}
