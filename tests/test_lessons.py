"""Lessons: the lessons file is parsed and checked, and a lesson steps through its views in
presentation mode to its end (AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from convae.lessons import LessonError, load_lessons, parse_lessons
from convae.models import AEConfig, ConvAutoencoder
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


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[lesson]]\nid = 'a'\n", "needs an id and a title"),
        ("[[lesson]]\nid = 'a'\ntitle = 'A'\n", "has no steps"),
        (
            "[[lesson]]\nid = 'a'\ntitle = 'A'\n[[lesson.step]]\npage = 'nowhere'\nnote = 'n'\n",
            "no page 'nowhere'",
        ),
        ("[[lesson]]\nid = 'a'\ntitle = 'A'\n[[lesson.step]]\npage = 'recon'\n", "has no note"),
        (
            "[[lesson]]\nid = 'a'\ntitle = 'A'\n[[lesson.step]]\npage = 'recon'\nnote = 'n'\n"
            "[[lesson]]\nid = 'a'\ntitle = 'B'\n[[lesson.step]]\npage = 'recon'\nnote = 'n'\n",
            "used twice",
        ),
        ("[[lesson]\n", "not valid TOML"),
    ],
)
def test_a_bad_lessons_file_says_what_is_wrong(text, message):
    with pytest.raises(LessonError, match=message):
        parse_lessons(text, PAGES)


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
