"""A live class in real Chromium: a teacher and three students (one on a 390x844 phone,
by touch) follow a lesson step by step, one student explores and catches up, a question
is asked, answered, changed and revealed, and the tally is right; the teacher key never
reaches a student's page or websocket, and neither crafted links nor crafted protocol
messages (a student's session sending the teacher's button ids) let a student lead.

One server for the whole suite (conftest's ``server``, started with a teacher key), one
browser context per person.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from streamlit.proto.WidgetStates_pb2 import WidgetState

from ..streamclient import StreamSession, widget_ids
from .conftest import FOLLOW_MS, Person

LESSON = "How an autoencoder squeezes an image"


def _banner_step(p: Person, n: int) -> None:
    expect(p.main.get_by_text(re.compile(rf"{LESSON} · step {n} of \d+"))).to_be_visible(
        timeout=FOLLOW_MS
    )


def _teacher_ids(teacher: Person) -> dict[str, str]:
    return widget_ids(teacher.messages())


@pytest.mark.e2e
def test_a_class_follows_a_lesson_and_answers_a_question(people, app_data, server):
    key = app_data["teacher_key"]
    teacher = people()
    teacher.open("class", f"teacher={key}&present=1")
    assert key not in teacher.page.url  # stripped from the address bar in the first run
    teacher.click("Start a class")
    code = teacher.main.locator(".cae-code").inner_text().replace(" ", "")
    qr = teacher.main.locator("img.cae-qr")
    assert qr.get_attribute("alt").endswith(f"/class?join={code}")
    assert qr.evaluate("i => i.getBoundingClientRect().width") >= 400  # the projector's QR

    s1, s2 = people(), people()
    s1.open("class")
    s1.act(
        lambda: (
            s1.main.get_by_label(re.compile("^Join a class")).fill(code.lower()),
            s1.main.get_by_role("button", name="Join", exact=True).click(),
        )
    )
    s2.open("class", f"join={code}")
    phone = people(width=390, height=844, touch=True)
    phone.open("class")
    phone.main.get_by_label(re.compile("^Join a class")).tap()
    phone.page.keyboard.type(f"{code[:3]} {code[3:]}")
    phone.act(lambda: phone.main.get_by_role("button", name="Join", exact=True).tap())
    students = [s1, s2, phone]
    for s in students:
        s.sees(f"Class {code}.")
        assert "join=" not in s.page.url
    # Presenting, the teacher's class lines are folded into the sidebar's "Class" box.
    teacher.sidebar.locator("summary").filter(has_text=f"Class {code}").click()
    teacher.sees("3 students present, 3 following", timeout=30_000)

    # The lesson, step by step: every following screen shows the teacher's step.
    teacher.pick("stSelectbox", "Lesson", LESSON, scope=teacher.sidebar)
    teacher.click("Start the lesson", scope=teacher.sidebar)
    for s in students:
        _banner_step(s, 1)
        s.sees("Your teacher steps through this lesson")
    teacher.click("Next ▶")
    for s in students:
        _banner_step(s, 2)
        s.at_step("input")

    # s2 explores on their own: the next step does not move them; Catch up does.
    s2.click("Explore on my own", scope=s2.sidebar)
    teacher.click("Next ▶")
    for s in (s1, phone):
        _banner_step(s, 3)
        s.at_step("conv1")
    runs = s2.runs()
    s2.page.wait_for_function("n => window.__stRuns >= n + 2", arg=runs, timeout=FOLLOW_MS)
    _banner_step(s2, 2)  # two polls later, still where they were
    assert s2.step_text().startswith("input")
    teacher.sees("3 students present, 2 following", timeout=30_000)
    s2.click("Catch up", scope=s2.sidebar)
    _banner_step(s2, 3)
    s2.at_step("conv1")

    # A question: the teacher ends the lesson, opens the Class page and asks.
    teacher.click("End lesson")
    teacher.act(lambda: teacher.sidebar.get_by_role("link", name="Class").click())
    teacher.pick("stSelectbox", "Question", "tiles-airplane")
    teacher.click("Ask it")
    for s in students:
        s.sees("One of these two was drawn by the transpose decoder")
        # The question's text can reach the screen a moment before its two pictures (a
        # slow browser draws the run's elements as they come): wait for both.
        last = s.main.locator('.cae-card img.cae-card-big[alt^="picture B"]')
        expect(last).to_have_count(1, timeout=30_000)  # the last option's picture is drawn
        alts = s.main.locator(".cae-card img").evaluate_all("els => els.map(e => e.alt)")
        assert any(a.startswith("picture A") for a in alts), alts
        assert not any("transpose" in a or "upsample" in a for a in alts), alts
    s1.click("A")
    s2.click("B")
    s2.click("A")  # a second click changes the answer
    phone.act(lambda: phone.main.get_by_role("button", name="B", exact=True).tap())
    s2.sees("Your answer: A (you can change it)")
    phone.sees("Your answer: B (you can change it)")
    teacher.sees("3 answers: A: 2, B: 1.", timeout=30_000)

    _crafted_student_cannot_lead(server, code, _teacher_ids(teacher), teacher, s1)

    teacher.click("Reveal the answer")
    right = teacher.main.get_by_text("The right answer:").inner_text().split(":")[1].strip()
    assert right in ("A", "B")
    for s in students:
        s.sees(f"The right answer: {right}")
        s.sees("4x4-tile measure")
    with teacher.page.expect_download() as dl:
        teacher.main.get_by_role("button", name="Export the answers (CSV)").click()
    rows = list(csv.DictReader(Path(dl.value.path()).read_text(encoding="utf-8").splitlines()))
    got = {r["option"]: int(r["answers"]) for r in rows if r["question"] == "tiles-airplane"}
    assert got == {"A": 2, "B": 1}
    assert {r["right"] for r in rows if r["option"] == right} == {"yes"}

    for p in (teacher, *students):
        p.no_exception()
    for s in students:  # the key reached no student: not the page, not one frame
        assert not any(key.encode() in f for f in s.frames)
        assert not any(key in d for d in s.documents)


def _crafted_student_cannot_lead(
    server: str, code: str, ids: dict, teacher: Person, student: Person
) -> None:
    """A protocol-level student (no browser) joins, then sends the teacher's buttons' ids
    (taken from the teacher's session) as pressed: nothing happens."""
    wanted = ("class_reveal", "class_end", "class_clear", "class_ask", "class_extend")
    assert set(wanted) <= set(ids), sorted(ids)
    crafted = StreamSession(server)
    try:
        crafted.rerun(query=f"join={code}", page="class")
        assert "class_answer_0" in crafted.widgets and "class_reveal" not in crafted.widgets
        pressed = [WidgetState(id=ids[k], trigger_value=True) for k in wanted]
        msgs = crafted.rerun(page="class", widgets=pressed)
        shown = b"".join(m.SerializeToString() for m in msgs)
        assert b"The right answer" not in shown and b"class_student_tally" not in shown
    finally:
        crafted.close()
    # The class goes on, the question is still open, and nobody revealed anything: the
    # teacher's page drawn afresh ("r" reruns it), and a student two polls later.
    teacher.act(lambda: teacher.page.keyboard.press("r"))
    expect(teacher.main.get_by_role("button", name="Reveal the answer")).to_be_enabled()
    assert teacher.main.locator(".cae-code-inline").inner_text().replace(" ", "") == code
    assert teacher.main.get_by_text("The right answer:").count() == 0
    runs = student.runs()
    student.page.wait_for_function("n => window.__stRuns >= n + 2", arg=runs, timeout=FOLLOW_MS)
    expect(student.main.get_by_role("button", name="A", exact=True)).to_be_enabled()
    assert student.main.get_by_text("The right answer:").count() == 0


@pytest.mark.e2e
def test_crafted_links_give_no_teacher_controls(people, app_data):
    visitor = people()
    visitor.open("class", "teacher=not-the-key-0123456789")
    visitor.sees("That is not the teacher key")
    for query in ("role=teacher&lead=1&reveal=1&end=1", "present=1", ""):
        visitor.open("class", query)  # the teacher's address once the key is stripped
        visitor.no_exception()
        expect(visitor.main.get_by_label(re.compile("^Join a class"))).to_be_visible()
        assert visitor.main.get_by_role("button", name="Start a class").count() == 0
        assert not re.search(r"[?&](role|lead|reveal|end|teacher)=", visitor.page.url)
