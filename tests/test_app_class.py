"""The live class in the app, driven with AppTest: a visitor's join and sign-in boxes, the
teacher's key from the printed link (stripped at once), wrong keys and their limit, a
student following the teacher and exploring, unknown codes and ended classes, a question
asked, answered and revealed, and the lines both sides show while a real redis-server
is away.

Each AppTest is one browser session; several in one test share the process's class store
(as the sessions of one server do). Following normally waits until a student's own last
action is 2 s old; an AppTest run is always a fresh action, so the tests set that wait to
zero (``classroom.DEFER_S``).
"""

from __future__ import annotations

import re
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from pages.glue import classroom

from .apptools import APP, ROOT, TIMEOUT, html_text, ok, plotly
from .test_app import app_env  # noqa: F401  (fixture)

KEY = "app-test-teacher-key-0123456789"
QUESTIONS = """
[[question]]
id = "blind-shapes"
kind = "which-decoder"
prompt = "One of these two was drawn by the transpose decoder. Which one?"
drawn_by = "shipped:shapes-transpose.pt"
other = "shipped:shapes-upsample.pt"
picture = { class = "square", i = 1 }

[[question]]
id = "code-size"
kind = "choice"
prompt = "How many numbers does the code hold?"
options = ["64", "256", "3,072"]
answer = "256"
reason = "4 maps of 8x8."

[[question]]
id = "needs-cifar"
kind = "which-decoder"
prompt = "Which one?"
drawn_by = "shipped:cifar10-transpose.pt"
other = "shipped:cifar10-upsample.pt"
picture = { class = "airplane", i = 1 }
"""


@pytest.fixture
def env(app_env, monkeypatch, tmp_path):  # noqa: F811
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    shutil.copy(ROOT / "lessons" / "lessons.toml", lessons / "lessons.toml")
    (lessons / "questions.toml").write_text(QUESTIONS)
    for k, v in {
        **app_env,
        "CONVAE_TEACHER_KEY": KEY,
        "CONVAE_LESSONS": str(lessons / "lessons.toml"),
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("CONVAE_CLASS_STORE", raising=False)
    monkeypatch.setattr(classroom, "DEFER_S", 0.0)
    return lessons


def _session(query: dict[str, str] | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    ok(at)
    if page:
        at.switch_page(f"pages/{page}.py").run()
        ok(at)
    return at


def _teacher_with_class() -> tuple[AppTest, str]:
    t = _session({"teacher": KEY}, "live_class")
    t.button(key="class_start").click().run()
    ok(t)
    return t, t.session_state[classroom.LEAD].info.code


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("success", "error", "warning", "info") for e in at.get(kind)]
    parts += [m.value for m in at.markdown] + [c.value for c in at.caption]
    return " ".join(str(p) for p in parts) + " " + html_text(at)


def test_a_visitor_sees_the_join_box_and_the_teacher_sign_in(env):
    at = _session()
    assert at.sidebar.text_input(key="class_join_code_side").label.startswith("Join a class")
    assert any(e.label == "Teacher sign-in" for e in at.sidebar.expander)
    at.switch_page("pages/live_class.py").run()
    assert at.text_input(key="class_join_code") and at.text_input(key="class_key")
    assert not [b for b in at.button if b.key == "class_start"]  # no teacher controls


def test_the_teacher_link_signs_in_and_the_key_leaves_the_address(env):
    t, code = _teacher_with_class()
    assert "teacher" not in t.query_params
    assert KEY not in str(dict(t.query_params)) and KEY not in _texts(t)
    body = next(h.proto.body for h in t.get("html") if "cae-code" in h.proto.body)
    assert f"{code[:3]} {code[3:]}" in body and f"class?join={code}" in body
    assert f'alt="QR code of the join link class?join={code}"' in body
    assert "data:image/png;base64," in body


def test_a_wrong_key_gets_a_plain_message_and_is_rate_limited(env, monkeypatch):
    # AppTest gives every session one id ("test session id"): a key of its own keeps this
    # test's wrong keys out of the other tests' limit.
    monkeypatch.setenv("CONVAE_TEACHER_KEY", "another-test-key-for-the-limit")
    at = _session({"teacher": "not-the-key-at-all-0000"})
    assert "That is not the teacher key" in _texts(at)
    assert classroom.TOKEN not in at.session_state
    at.switch_page("pages/live_class.py").run()
    for _ in range(5):  # the library's limit: 5 wrong keys a minute per session
        at.text_input(key="class_key").set_value("still-not-the-key-1111")
        at.button(key="class_sign_in").click().run()
    assert "Too many wrong keys: wait" in _texts(at)
    at.text_input(key="class_key").set_value("another-test-key-for-the-limit")
    at.button(key="class_sign_in").click().run()  # the right key, refused while limited
    assert classroom.TOKEN not in at.session_state


def test_an_unknown_code_and_an_ended_class_leave_the_student_exploring(env):
    at = _session({"join": "KKKKKK"})
    assert "No class has the code KKKKKK" in _texts(at)
    assert classroom.SEAT not in at.session_state
    t, code = _teacher_with_class()
    s = _session({"join": code})
    assert s.session_state[classroom.SEAT].info.code == code
    t.button(key="class_end").click().run()
    s.run()
    assert f"The class {code} has ended" in _texts(s)
    assert classroom.SEAT not in s.session_state
    again = _session({"join": code})
    assert f"The class {code} has ended" in _texts(again)


def test_a_student_follows_the_teacher_explores_and_catches_up(env):
    t, code = _teacher_with_class()
    t.switch_page("pages/layers.py").run()
    t.button(key="layers_next").click().run()
    s = _session({"join": code})
    assert s.session_state[classroom.PAGE] == "layer-by-layer"
    assert s.select_slider(key="layers_step").value == "relu1"
    assert s.session_state[classroom.FOLLOWING]
    t.button(key="layers_next").click().run()
    s.run()
    assert s.select_slider(key="layers_step").value == "pool1"
    # The student steps on their own: from now on they explore, the teacher's steps wait.
    s.button(key="layers_prev").click().run()
    assert not s.session_state[classroom.FOLLOWING]
    t.button(key="layers_next").click().run()
    s.run()
    assert s.select_slider(key="layers_step").value == "relu1"
    assert "explore on your own" in _texts(s)
    s.button(key="class_catch_up_top").click().run()
    assert s.session_state[classroom.FOLLOWING]
    assert s.select_slider(key="layers_step").value == "conv2"


def test_crafted_query_parameters_give_a_student_no_teacher_controls(env):
    t, code = _teacher_with_class()
    s = _session({"join": code, "role": "teacher", "lead": "1", "reveal": "1", "teacher": ""})
    s.switch_page("pages/live_class.py").run()
    assert classroom.SEAT in s.session_state
    assert classroom.TOKEN not in s.session_state and classroom.LEAD not in s.session_state
    keys = {b.key for b in s.button}
    assert not keys & {"class_start", "class_reveal", "class_ask", "class_end", "class_clear"}
    assert not set(s.query_params) & {"role", "lead", "reveal", "teacher", "join"}


def test_a_question_is_asked_answered_changed_and_revealed(env):
    t, code = _teacher_with_class()
    skipped = " ".join(c.value for c in t.caption)
    assert "needs-cifar: needs shipped:cifar10-transpose.pt" in skipped
    t.selectbox(key="class_question_pick").set_value("blind-shapes")
    t.button(key="class_ask").click().run()
    ok(t)
    students = [_session({"join": code}) for _ in range(3)]
    for s in students:
        assert s.session_state[classroom.PAGE] == "class"
        shown = " ".join(_card_alts(s))
        assert "picture A" in shown and "picture B" in shown
        assert "transpose" not in shown and "upsample" not in shown  # names hidden
    students[0].button(key="class_answer_0").click().run()  # A
    students[1].button(key="class_answer_1").click().run()  # B ...
    students[1].button(key="class_answer_0").click().run()  # ... changed to A
    students[2].button(key="class_answer_1").click().run()  # B
    assert "Your answer: **A** (you can change it)" in _texts(students[1])
    t.run()
    chart = plotly(t, key="class_tally_chart")
    assert dict(zip(chart["data"][0]["y"], chart["data"][0]["x"], strict=True)) == {
        "A": 2,
        "B": 1,
    }
    t.button(key="class_reveal").click().run()
    correct = _reveal_letter(t)
    for s in students:
        s.run()
        assert f"The right answer: **{correct}**" in _texts(s)
        assert "4x4-tile measure" in _texts(s)
    csv_text = classroom.service().export_csv(t.session_state[classroom.LEAD])
    assert "blind-shapes,which-decoder" in csv_text and ",A,2," in csv_text


def _card_alts(at: AppTest) -> list[str]:
    """The alt texts of a question's pictures (the cards' HTML)."""
    return [
        alt
        for h in at.get("html")
        if "cae-card" in h.proto.body
        for alt in re.findall(r'alt="([^"]*)"', h.proto.body)
    ]


def _reveal_letter(t: AppTest) -> str:
    return next(s.value for s in t.success if "The right answer" in s.value).split("**")[1]


def test_a_bad_questions_file_says_what_is_wrong(env):
    (env / "questions.toml").write_text('[[question]]\nid = "x"\nkind = "poll"\nprompt = "?"\n')
    t, _ = _teacher_with_class()
    errors = " ".join(e.value for e in t.error)
    assert "The questions file is off" in errors and "'poll' is not a question kind" in errors


def test_both_sides_say_when_redis_is_away_and_follow_again_when_it_is_back(
    env, monkeypatch, redis_binary, tmp_path
):
    from .redistools import RedisServer

    server = RedisServer(redis_binary, tmp_path)
    server.start()
    try:
        monkeypatch.setenv("CONVAE_CLASS_STORE", server.url)
        t, code = _teacher_with_class()
        s = _session({"join": code})
        assert s.session_state[classroom.PAGE] == "class"
        server.stop(save=True)  # the class survives in dump.rdb
        t.run()
        assert "The class store cannot be reached" in _texts(t)
        s.run()
        assert "The class cannot be reached right now" in _texts(s)
        ok(t)
        ok(s)
        server.start()
        t.switch_page("pages/layers.py").run()
        t.run()  # the view published now that the store is back
        s.run()
        s.run()
        assert "cannot be reached" not in _texts(s)
        assert s.session_state[classroom.PAGE] == "layer-by-layer"
    finally:
        server.stop()


def test_a_step_taken_while_the_store_was_away_does_not_end_following(
    env, monkeypatch, redis_binary, tmp_path
):
    """While the class is away a student's own clicks do not stop following, also when the
    jump back waits for the student's hand (DEFER_S): the first run after the store is back
    once compared the student's step with the last jump's and stopped following."""
    from .redistools import RedisServer

    server = RedisServer(redis_binary, tmp_path)
    server.start()
    try:
        monkeypatch.setenv("CONVAE_CLASS_STORE", server.url)
        t, code = _teacher_with_class()
        t.switch_page("pages/layers.py").run()
        t.button(key="layers_next").click().run()
        s = _session({"join": code})
        assert s.select_slider(key="layers_step").value == "relu1"
        server.stop(save=True)
        t.button(key="layers_next").click().run()  # the teacher goes on: pool1
        s.run()
        assert "The class cannot be reached right now" in _texts(s)
        s.button(key="layers_prev").click().run()  # the student explores meanwhile
        assert s.select_slider(key="layers_step").value == "conv1"
        server.start()
        t.run()  # published again now that the store is back
        monkeypatch.setattr(classroom, "DEFER_S", 3600.0)  # the student's hand is busy
        s.run()
        ok(s)
        assert "cannot be reached" not in _texts(s)
        assert s.session_state[classroom.FOLLOWING]  # still following, the jump waits
        assert s.select_slider(key="layers_step").value == "conv1"
        monkeypatch.setattr(classroom, "DEFER_S", 0.0)
        s.run()
        assert s.select_slider(key="layers_step").value == "pool1"
    finally:
        server.stop()


def test_the_built_in_and_the_teachers_own_questions(env):
    t, code = _teacher_with_class()
    t.selectbox(key="class_question_pick").set_value("builtin:worst")
    t.button(key="class_ask").click().run()
    s = _session({"join": code})
    assert [a for a in _card_alts(s) if not a.endswith("enlarged")] == [
        f"picture {x} at its true size, 32 by 32 pixels" for x in "ABCD"
    ]
    s.button(key="class_answer_3").click().run()
    t.button(key="class_reveal").click().run()
    s.run()
    assert "is rebuilt worst: PSNR" in _texts(s) and " dB" in " ".join(_card_alts(s))
    t.text_input(key="class_own_prompt").set_value("Is the code smaller than the picture?")
    t.text_area(key="class_own_options").set_value("yes\nno\n")
    t.text_input(key="class_own_answer").set_value("yes")
    t.button(key="class_ask_own").click().run()
    s.run()
    assert [b.label for b in s.button if b.key.startswith("class_answer_")] == ["yes", "no"]
    t.text_area(key="class_own_options").set_value("only one")
    t.button(key="class_ask_own").click().run()
    assert "needs 2 to 8 options, not 1" in " ".join(e.value for e in t.error)
