"""The class service on both stores: the teacher leads, students follow and answer, and
every check holds against crafted capabilities: a student's seat, a forged token, a token
from another server, a forged or ended class, made-up seats, options and question ids."""

from __future__ import annotations

import csv
import io
import time

import pytest

from convae.classroom import (
    AnswerRefused,
    ClassEnded,
    ClassInfo,
    ClassService,
    Lead,
    NotAllowed,
    Role,
    Seat,
    TeacherKey,
    TeacherToken,
    UnknownCode,
    View,
    choice_question,
)
from convae.classroom.codes import CODE_ALPHABET

KEY = "a-test-key-of-32-characters-0123"
QUESTION = choice_question("How many numbers hold the code?", ["64", "256", "3,072"], "256")


class Clock:
    """Real time plus an offset a test moves forward (presence is judged by it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def key() -> TeacherKey:
    return TeacherKey(KEY)


@pytest.fixture
def svc(class_store, key, clock) -> ClassService:
    return ClassService(class_store, key, present_s=30.0, clock=clock)


@pytest.fixture
def lead(svc, key) -> Lead:
    return svc.start(key.verify(KEY))


def test_a_class_from_start_to_end(svc, lead):
    code = lead.info.code
    assert len(code) == 6 and set(code) <= set(CODE_ALPHABET)
    assert lead.info.join_path == f"class?join={code}"
    assert lead.info.ends_at == pytest.approx(time.time() + 3 * 3600, abs=60)
    seat = svc.join(f" {code[:3].lower()}-{code[3:]} ")  # typed loosely
    assert svc.role(lead) is Role.TEACHER and svc.role(seat) is Role.STUDENT
    assert svc.role(None) is Role.VISITOR
    v0 = svc.version(seat)
    assert svc.publish(lead, View("layer-by-layer", {"step": "conv1"})) == v0 + 1
    assert svc.version(seat) == v0 + 1
    state = svc.state(seat)
    assert state.view == View("layer-by-layer", {"step": "conv1"}) and state.question is None
    svc.end(lead)
    with pytest.raises(ClassEnded, match=f"The class {code} has ended"):
        svc.version(seat)
    with pytest.raises(ClassEnded, match="has ended"):
        svc.join(code)


def test_a_student_cannot_lead(svc, lead):
    seat = svc.join(lead.info.code)
    calls = {
        "lead the class": lambda who: svc.publish(who, View("recon")),
        "ask a question": lambda who: svc.ask(who, QUESTION),
        "close a question": lambda who: svc.close_question(who),
        "reveal the answer": lambda who: svc.reveal(who),
        "take a question away": lambda who: svc.clear_question(who),
        "end the class": lambda who: svc.end(who),
        "extend the class": lambda who: svc.extend(who, 60),
        "export the answers": lambda who: svc.export_csv(who),
        "see who is in the class": lambda who: svc.attendance(who),
    }
    forged = Lead(TeacherToken("made-up", "0" * 64), lead.info)
    other_server = Lead(
        TeacherKey("another-servers-key-0123456789").verify("another-servers-key-0123456789"),
        lead.info,
    )
    for action, call in calls.items():
        for who in (seat, forged, other_server, None, lead.info, lead.info.class_id):
            with pytest.raises(NotAllowed, match=f"Only the teacher can {action}"):
                call(who)
    with pytest.raises(NotAllowed):
        svc.start(TeacherToken(lead.token.token_id, "f" * 64))  # a token id with a made-up MAC
    with pytest.raises(NotAllowed):
        svc.resume("a key typed as text", lead.info.code)
    assert svc.version(seat) == 1  # nothing changed
    svc.publish(lead, View("recon"))  # the real lead still leads


def test_forged_or_ended_classes_fail(svc, lead):
    seat = svc.join(lead.info.code)
    fake = ClassInfo("not-a-class-id", lead.info.code, 0.0)
    with pytest.raises(ClassEnded):
        svc.publish(Lead(lead.token, fake), View("recon"))
    with pytest.raises(ClassEnded):
        svc.answer(Seat(fake, seat.student_id), "q", "256")
    with pytest.raises(ClassEnded):
        svc.heartbeat(Seat(fake, seat.student_id), True)
    # a real class but a made-up seat: not a student of it
    svc.ask(lead, QUESTION)
    qid = svc.state(seat).question.qid
    with pytest.raises(NotAllowed, match="not in the class"):
        svc.heartbeat(Seat(lead.info, "made-up-seat"), True)
    with pytest.raises(NotAllowed, match="not in the class"):
        svc.answer(Seat(lead.info, "made-up-seat"), qid, "256")
    with pytest.raises(NotAllowed, match="Only a student"):
        svc.answer(lead, qid, "256")  # the teacher does not answer
    svc.end(lead)
    for call in (
        lambda: svc.publish(lead, View("recon")),
        lambda: svc.ask(lead, QUESTION),
        lambda: svc.extend(lead, 60),
        lambda: svc.state(seat),
        lambda: svc.heartbeat(seat, True),
        lambda: svc.answer(seat, qid, "256"),
    ):
        with pytest.raises(ClassEnded):
            call()


def test_join_codes_that_do_not_work_say_so(svc, lead):
    with pytest.raises(UnknownCode, match="is not a join code"):
        svc.join("hello")
    free = next(c * 6 for c in CODE_ALPHABET if c * 6 != lead.info.code)
    with pytest.raises(UnknownCode, match=f"No class has the code {free}"):
        svc.join(free.lower())


def test_answers_one_per_seat_among_the_options_while_open(svc, lead):
    s1, s2 = svc.join(lead.info.code), svc.join(lead.info.code)
    asked = svc.ask(lead, QUESTION)
    svc.answer(s1, asked.qid, "64")
    svc.answer(s2, asked.qid, "256")
    assert svc.tally(lead).counts == {"64": 1, "256": 1, "3,072": 0}
    svc.answer(s1, asked.qid, "256")  # a second click changes the first
    tally = svc.tally(lead)
    assert tally.counts == {"64": 0, "256": 2, "3,072": 0} and tally.answers == 2
    for bad in ("128", "", None, 256, ["256"], "256 " * 100):
        with pytest.raises(AnswerRefused, match="not one of this question's options"):
            svc.answer(s1, asked.qid, bad)
    with pytest.raises(AnswerRefused, match="no longer on the teacher's screen"):
        svc.answer(s1, "another-qid", "256")
    svc.close_question(lead)
    with pytest.raises(AnswerRefused, match="closed"):
        svc.answer(s1, asked.qid, "64")
    assert svc.tally(lead).counts == {"64": 0, "256": 2, "3,072": 0}


def test_a_new_question_closes_the_open_one(svc, lead):
    seat = svc.join(lead.info.code)
    first = svc.ask(lead, QUESTION)
    second = svc.ask(lead, choice_question("Ready?", ["yes", "no"], qid="ready"))
    assert svc.state(seat).question.qid == second.qid != first.qid
    with pytest.raises(AnswerRefused):
        svc.answer(seat, first.qid, "256")
    svc.answer(seat, second.qid, "yes")


def test_students_see_no_answer_and_no_tally_before_the_reveal(svc, lead):
    seat = svc.join(lead.info.code)
    asked = svc.ask(lead, QUESTION)
    mine = svc.state(seat).question
    assert (mine.state, mine.correct, mine.reason, mine.question.answer) == ("open", None, "", None)
    assert svc.state(lead).question.correct == "256"  # the teacher knows
    svc.answer(seat, asked.qid, "64")
    with pytest.raises(NotAllowed, match="when the teacher reveals"):
        svc.tally(seat)
    with pytest.raises(NotAllowed):
        svc.tally(None)
    v = svc.version(seat)
    svc.reveal(lead)
    assert svc.version(seat) > v
    mine = svc.state(seat).question
    assert (mine.state, mine.correct, mine.question.answer) == ("revealed", "256", "256")
    tally = svc.tally(seat)
    assert tally.counts == {"64": 1, "256": 0, "3,072": 0} and tally.correct == "256"
    with pytest.raises(AnswerRefused):
        svc.answer(seat, asked.qid, "256")


def test_nothing_returns_who_answered_what(svc, lead):
    seats = [svc.join(lead.info.code) for _ in range(3)]
    asked = svc.ask(lead, QUESTION)
    for seat, option in zip(seats, ("64", "256", "256"), strict=True):
        svc.answer(seat, asked.qid, option)
    svc.reveal(lead)
    shown = [
        repr(svc.tally(lead)),
        repr(svc.tally(seats[0])),
        repr(svc.state(lead)),
        repr(svc.state(seats[0])),
        repr(svc.attendance(lead)),
        svc.export_csv(lead),
        *map(repr, seats),
    ]
    for seat in seats:
        assert not any(seat.student_id in text for text in shown)


def test_the_csv_export_counts_every_question(svc, lead):
    seat = svc.join(lead.info.code)
    asked = svc.ask(lead, QUESTION)
    svc.answer(seat, asked.qid, "256")
    svc.reveal(lead)
    svc.ask(lead, choice_question("Ready?", ["yes", "no"], qid="ready"))
    rows = list(csv.DictReader(io.StringIO(svc.export_csv(lead))))
    got = [
        (r["asked"], r["question"], r["option"], r["answers"], r["right"], r["state"]) for r in rows
    ]
    assert got == [
        ("1", "own", "64", "0", "no", "revealed"),
        ("1", "own", "256", "1", "yes", "revealed"),
        ("1", "own", "3,072", "0", "no", "revealed"),
        ("2", "ready", "yes", "0", "", "open"),
        ("2", "ready", "no", "0", "", "open"),
    ]


def test_the_teacher_sees_who_is_present_and_following(svc, lead, clock):
    a, b, c = (svc.join(lead.info.code) for _ in range(3))
    svc.heartbeat(b, following=False)
    got = svc.attendance(lead)
    assert (got.joined, got.present, got.following) == (3, 3, 2)
    clock.offset = 31.0  # half a minute later only a and b were heard from again
    svc.heartbeat(a, following=True)
    svc.heartbeat(b, following=False)
    got = svc.attendance(lead)
    assert (got.joined, got.present, got.following) == (3, 2, 1)
    svc.leave(c)
    assert svc.attendance(lead).joined == 2


def test_views_and_questions_change_the_version_heartbeats_and_answers_do_not(svc, lead):
    seat = svc.join(lead.info.code)
    seen = [svc.version(seat)]
    svc.publish(lead, {"page": "decoders", "params": {"tab": "tiles"}})
    seen.append(svc.version(seat))
    asked = svc.ask(lead, QUESTION)
    seen.append(svc.version(seat))
    svc.heartbeat(seat, following=False)
    svc.answer(seat, asked.qid, "64")
    seen.append(svc.version(seat))
    svc.clear_question(lead)
    seen.append(svc.version(seat))
    assert seen[0] < seen[1] < seen[2] == seen[3] < seen[4]
    assert svc.state(seat).question is None


def test_extend_and_resume(svc, lead, key):
    later = svc.extend(lead, 600)
    assert later.info.ends_at == pytest.approx(lead.info.ends_at + 600)
    assert svc.state(later).info.ends_at == pytest.approx(later.info.ends_at)
    again = svc.resume(key.verify(KEY), lead.info.code.lower())
    assert again.info.class_id == lead.info.class_id
    with pytest.raises(ValueError, match="at most"):
        svc.start(lead.token, lifetime_s=10 * 24 * 3600)


def test_a_class_with_a_two_second_lifetime_ends_by_itself(svc, key):
    lead = svc.start(key.verify(KEY), lifetime_s=2)
    seat = svc.join(lead.info.code)
    deadline = time.monotonic() + 15
    while True:  # poll as a student's screen does, until the class is gone
        try:
            svc.version(seat)
        except ClassEnded:
            break
        assert time.monotonic() < deadline, "the class did not end by itself"
        time.sleep(0.05)
    assert time.time() >= lead.info.ends_at - 0.05  # not before its time
    assert svc.store.snapshot(lead.info.class_id) is None
    assert svc.store.presences(lead.info.class_id) == []  # the seats went with it
    with pytest.raises(ClassEnded):
        svc.join(lead.info.code)  # within the grace the code says the class ended


def test_picture_questions_need_their_prepared_form(svc, lead):
    from convae.classroom.questions import parse_questions

    q = parse_questions(
        '[[question]]\nid = "w"\nkind = "worst"\nprompt = "Which?"\n'
        'model = "shipped:m.pt"\n'
        'pictures = [{class="a", i=0}, {class="a", i=1}, {class="a", i=2}, {class="a", i=3}]\n'
    )[0]
    with pytest.raises(ValueError, match="quiz.prepare"):
        svc.ask(lead, q)
    with pytest.raises(ValueError, match="takes a Question"):
        svc.ask(lead, {"id": "w"})
