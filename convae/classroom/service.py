"""The class service: who may do what in a live class, checked on the server.

Three roles. The teacher proves the teacher key once (:func:`~convae.classroom.key.verify`
gives a :class:`TeacherToken`) and gets a :class:`Lead` by starting or resuming a class;
a student gets a :class:`Seat` by joining with a code; anyone else is a visitor and holds
neither. Every call takes the capability and checks it against the class record in the
store: a Lead's token must carry a valid HMAC under this server's key, a Seat's id must be a
seat of that class, the class must still exist. Widget values and query parameters a
browser sends are only ever data (a code, an option), never a role.

Answers are anonymous: a seat is a random id for one browser session; no call returns
who answered what, only counts per option (:meth:`ClassService.tally`), and a student sees
those only once the teacher reveals the answer.

A student's screen polls :meth:`ClassService.version` (one GET / one dict lookup) and calls
:meth:`ClassService.state` only when it changed. Every call may raise
:class:`ClassStoreUnavailable` while Redis is away, :class:`ClassEnded` once the class has
ended, :class:`NotAllowed` for a role that may not do it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from .codes import new_code, new_id, normalise_code
from .errors import AnswerRefused, ClassEnded, ClassError, NotAllowed, UnknownCode
from .key import TeacherKey, TeacherToken, process_key
from .questions import Question
from .store import AnswerOutcome, ClassRecord, ClassStore, Snapshot
from .view import View

if TYPE_CHECKING:
    from .quiz import PreparedQuestion

LIFETIME_S = 3 * 3600.0  # a class ends by itself after 3 hours unless extended
MAX_LIFETIME_S = 24 * 3600.0  # a start or an extension never reaches beyond a day from now
PRESENT_S = 30.0  # a student counts as present when their screen was seen this recently
CODE_GRACE_S = 3600.0  # a code keeps naming its ended class this long: "the class ended"
JOIN_PAGE = "class"  # the url path of the page that joins (the UI's)
CODE_TRIES = 20


class Role(Enum):
    TEACHER = "teacher"
    STUDENT = "student"
    VISITOR = "visitor"


@dataclass(frozen=True)
class ClassInfo:
    """A class's public facts (all of them may be shown).

    Attributes:
        class_id: the record's id (not secret, not shown: the code is what people use).
        code: the join code.
        ends_at: when it ends by itself (unix seconds).
    """

    class_id: str
    code: str
    ends_at: float

    @property
    def join_path(self) -> str:
        """The join link's path and query, relative to the app: "class?join=K7RX4M"."""
        return f"{JOIN_PAGE}?join={self.code}"


class _NamesOnlyTheClass:
    """The repr of a capability (a dataclass with ``repr=False`` and an ``info`` field):
    its kind and the class's join code, never the teacher's token or a seat's id, which
    grant the capability to whoever reads them in a log or a traceback."""

    info: ClassInfo

    def __repr__(self) -> str:
        return f"{type(self).__name__}(class {self.info.code})"


@dataclass(frozen=True, repr=False)
class Lead(_NamesOnlyTheClass):
    """The teacher's capability for one class: a verified token and the class."""

    token: TeacherToken
    info: ClassInfo


@dataclass(frozen=True, repr=False)
class Seat(_NamesOnlyTheClass):
    """A student's capability: one browser session's seat in one class (no name)."""

    info: ClassInfo
    student_id: str


@dataclass(frozen=True)
class QuestionState:
    """The question on screen, as the caller's role may see it.

    Attributes:
        qid: this asking's id (pass it back with an answer).
        question: the question; for a student before the reveal without its answer/reason.
        seed: the pictures' order seed (rebuild with ``quiz.prepare(question, ..., seed)``).
        state: "open" (taking answers), "closed" or "revealed".
        correct, reason, labels, figures: the right option, the measured reason, what
            each option was, the figures; empty for a student until the reveal.
    """

    qid: str
    question: Question
    seed: int
    state: str
    correct: str | None = None
    reason: str = ""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    figures: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class ClassState:
    """What a screen shows of a class: version, facts, the teacher's view, the question."""

    version: int
    info: ClassInfo
    view: View | None
    question: QuestionState | None


@dataclass(frozen=True)
class Attendance:
    """Seats in the class: joined ever, present (seen within PRESENT_S), following."""

    joined: int
    present: int
    following: int


@dataclass(frozen=True)
class Tally:
    """Answers counted per option; never who answered what.

    Attributes:
        qid, question: the asking and its question.
        state: "open", "closed" or "revealed".
        counts: option -> number of answers (every option, 0 when nobody chose it).
        answers: the number of answers.
        correct: the right option (the teacher's tally, or after the reveal), else None.
    """

    qid: str
    question: Question
    state: str
    counts: dict[str, int]
    answers: int
    correct: str | None


def _info(record: ClassRecord) -> ClassInfo:
    return ClassInfo(record.class_id, record.code, record.ends_at)


def _ended(info: ClassInfo) -> ClassEnded:
    return ClassEnded(f"The class {info.code} has ended; you can go on exploring on your own.")


class ClassService:
    """Live classes over a store.

    Args:
        store: where the records live (:func:`~convae.classroom.store.open_store`).
        key: the teacher key (default: this process's, :func:`process_key`).
        lifetime_s: how long a class lives unless the teacher extends or ends it.
        present_s: a seat counts as present when seen within this many seconds.
        clock: unix time in seconds.
    """

    def __init__(
        self,
        store: ClassStore,
        key: TeacherKey | None = None,
        lifetime_s: float = LIFETIME_S,
        present_s: float = PRESENT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._key = key if key is not None else process_key()
        self.lifetime_s = lifetime_s
        self.present_s = present_s
        self._clock = clock

    # ------------------------------------------------------------------ capabilities

    def role(self, member: object) -> Role:
        """The role a capability proves: TEACHER for a Lead with a valid token, STUDENT for a
        Seat (its seat is checked by the calls that use it), else VISITOR."""
        if isinstance(member, Lead) and self._key.check(member.token):
            return Role.TEACHER
        return Role.STUDENT if isinstance(member, Seat) else Role.VISITOR

    def _token(self, token: object, action: str) -> TeacherToken:
        if not self._key.check(token):
            raise NotAllowed(f"Only the teacher can {action}.")
        return token  # type: ignore[return-value]

    def _lead(self, lead: object, action: str) -> Lead:
        if not isinstance(lead, Lead):
            raise NotAllowed(f"Only the teacher can {action}.")
        self._token(lead.token, action)
        return lead

    def _seat(self, seat: object, action: str) -> Seat:
        if not isinstance(seat, Seat):
            raise NotAllowed(f"Only a student who joined the class can {action}.")
        return seat

    def _member(self, member: object) -> Lead | Seat:
        if isinstance(member, Seat):
            return member
        return self._lead(member, "lead a class")

    def _snapshot(self, info: ClassInfo) -> Snapshot:
        snap = self.store.snapshot(info.class_id)
        if snap is None:
            raise _ended(info)
        return snap

    # ------------------------------------------------------------------ the class

    def start(self, token: TeacherToken, lifetime_s: float | None = None) -> Lead:
        """Start a class with a new join code (teacher only).

        Args:
            token: from :func:`~convae.classroom.key.verify`.
            lifetime_s: how long it lives (default: the service's, 3 hours).

        Returns:
            The teacher's :class:`Lead`; ``lead.info.code`` and ``lead.info.join_path`` go
            on the projector.

        Raises:
            NotAllowed: not a valid teacher token.
            ValueError: a lifetime that is not between 0 and a day.
        """
        self._token(token, "start a class")
        life = self.lifetime_s if lifetime_s is None else float(lifetime_s)
        if not 0 < life <= MAX_LIFETIME_S:
            raise ValueError(f"a class lives more than 0 s and at most {MAX_LIFETIME_S:.0f} s")
        now = self._clock()
        for _ in range(CODE_TRIES):  # a clash with a live code is rare: draw again
            record = ClassRecord(new_id(), new_code(), now, now + life)
            if self.store.create(record, record.ends_at + CODE_GRACE_S):
                return Lead(token, _info(record))
        raise ClassError("No free join code was found; try again.")

    def resume(self, token: TeacherToken, code: str) -> Lead:
        """The teacher's Lead for a live class, by its code (after a reload lost the session).

        Raises:
            NotAllowed: not a valid teacher token.
            UnknownCode, ClassEnded: no such class, or it ended.
        """
        self._token(token, "lead a class")
        info = self._find(code)
        return Lead(token, _info(self._snapshot(info).record))

    def extend(self, lead: Lead, extra_s: float) -> Lead:
        """Move the class's end ``extra_s`` seconds later (at most a day from now).

        Returns:
            A Lead with the new end time.
        """
        self._lead(lead, "extend the class")
        record = self._snapshot(lead.info).record
        ends = min(record.ends_at + float(extra_s), self._clock() + MAX_LIFETIME_S)
        record = dataclasses.replace(record, ends_at=ends)
        if not self.store.extend(record, ends + CODE_GRACE_S):
            raise _ended(lead.info)
        return Lead(lead.token, _info(record))

    def end(self, lead: Lead) -> None:
        """End the class now: its view, seats, questions and answers are deleted."""
        self._lead(lead, "end the class")
        self.store.delete(lead.info.class_id, lead.info.code, self._clock() + CODE_GRACE_S)

    def _find(self, text: str) -> ClassInfo:
        code = normalise_code(text)
        if code is None:
            shown = str(text).strip()[:20]
            raise UnknownCode(
                f"{shown!r} is not a join code: a code is 6 letters and digits, as shown on "
                "the teacher's screen."
            )
        class_id = self.store.class_for_code(code)
        if class_id is None:
            raise UnknownCode(
                f"No class has the code {code}: check it on the teacher's screen. Meanwhile "
                "you explore on your own."
            )
        return ClassInfo(class_id, code, 0.0)

    def join(self, code: str) -> Seat:
        """Join a class by its code (spaces, dashes and case do not matter).

        Returns:
            The student's :class:`Seat`, following the teacher.

        Raises:
            UnknownCode: not a code, or no class has it.
            ClassEnded: the class ended.
        """
        info = self._find(code)
        snap = self._snapshot(info)
        seat = Seat(_info(snap.record), new_id())
        if not self.store.add_student(info.class_id, seat.student_id, self._presence(True)):
            raise _ended(info)
        return seat

    def leave(self, seat: Seat) -> None:
        """Give up a seat (its answers stay counted)."""
        seat = self._seat(seat, "leave the class")
        self.store.remove_student(seat.info.class_id, seat.student_id)

    def _presence(self, following: bool) -> dict:
        return {"seen": self._clock(), "following": bool(following)}

    def heartbeat(self, seat: Seat, following: bool) -> None:
        """Say the student's screen is still there, following the teacher or not.

        Raises:
            NotAllowed: not a seat of this class.
            ClassEnded: the class ended.
        """
        seat = self._seat(seat, "be counted in the class")
        if not self.store.touch_student(
            seat.info.class_id, seat.student_id, self._presence(following)
        ):
            if self.store.version(seat.info.class_id) is None:
                raise _ended(seat.info)
            raise NotAllowed("This browser is not in the class any more: join again with the code.")

    def attendance(self, lead: Lead) -> Attendance:
        """How many seats joined, how many are present and how many of those follow."""
        self._lead(lead, "see who is in the class")
        self._snapshot(lead.info)
        seats = self.store.presences(lead.info.class_id)
        since = self._clock() - self.present_s
        present = [p for p in seats if p["seen"] >= since]
        return Attendance(len(seats), len(present), sum(bool(p["following"]) for p in present))

    # ------------------------------------------------------------------ the view

    def publish(self, lead: Lead, view: View | Mapping) -> int:
        """Set the teacher's current view (a shared link's page and query parameters).

        Args:
            view: a :class:`View`, or {"page": ..., "params": {...}}.

        Returns:
            The class's new version.
        """
        self._lead(lead, "lead the class")
        view = view if isinstance(view, View) else View.from_dict(view)
        version = self.store.set_view(lead.info.class_id, view.to_dict())
        if version is None:
            raise _ended(lead.info)
        return version

    def version(self, member: Lead | Seat) -> int:
        """The class's version: poll it, and call :meth:`state` when it changed. One store
        read (one GET in Redis).

        Raises:
            ClassEnded: the class ended.
        """
        if not isinstance(member, (Lead, Seat)):
            raise NotAllowed("Only the class's teacher and students can follow it.")
        version = self.store.version(member.info.class_id)
        if version is None:
            raise _ended(member.info)
        return version

    def state(self, member: Lead | Seat) -> ClassState:
        """Version, facts, the teacher's view and the question on screen, in one read; the
        question as the caller's role may see it."""
        member = self._member(member)
        snap = self._snapshot(member.info)
        view = None if snap.view is None else View.from_dict(snap.view)
        question = None
        if snap.question is not None:
            question = _question_state(snap.question, isinstance(member, Lead))
        return ClassState(snap.version, _info(snap.record), view, question)

    # ------------------------------------------------------------------ questions

    def ask(
        self, lead: Lead, question: Question, prepared: PreparedQuestion | None = None
    ) -> QuestionState:
        """Put a question on every screen and open it for answers; a question still open is
        closed first (one open at a time; its answers are kept for the export).

        Args:
            question: from the questions file or ``choice_question``.
            prepared: ``quiz.prepare(question, ...)`` from the teacher's session: needed for
                the picture kinds (its seed, right answer, reason and figures are stored).

        Returns:
            The question as the teacher sees it.

        Raises:
            ValueError: a picture question without its prepared form, or a prepared form
                of another question.
        """
        self._lead(lead, "ask a question")
        if not isinstance(question, Question):
            raise ValueError("ask() takes a Question (see convae.classroom.questions)")
        if prepared is not None and prepared.question != question:
            raise ValueError(f"the prepared question is not {question.id!r}")
        if prepared is None and question.kind != "choice":
            raise ValueError(
                f"a {question.kind!r} question is asked with quiz.prepare(...)'s result"
            )
        snap = self._snapshot(lead.info)
        if snap.question is not None and snap.question["state"] == "open":
            self._put_question(lead, {**snap.question, "state": "closed"}, False, False)
        record = {
            "qid": secrets.token_hex(6),
            "asked_at": self._clock(),
            "question": question.to_dict(),
            "state": "open",
            "seed": prepared.seed if prepared else (question.seed or 0),
            "correct": prepared.correct if prepared else question.answer,
            "reason": prepared.reason if prepared else question.reason,
            "labels": dict(prepared.labels) if prepared else {},
            "figures": dict(prepared.figures) if prepared else {},
        }
        self._put_question(lead, record, True, True)
        return _question_state(record, teacher=True)

    def _put_question(self, lead: Lead, record: dict, open_: bool, on_screen: bool) -> None:
        if self.store.set_question(lead.info.class_id, record, open_, on_screen) is None:
            raise _ended(lead.info)

    def _on_screen(self, lead: Lead, action: str) -> dict:
        question = self._snapshot(lead.info).question
        if question is None:
            raise ClassError(f"There is no question to {action}.")
        return question

    def close_question(self, lead: Lead) -> None:
        """Stop taking answers to the question on screen (it stays on screen)."""
        self._lead(lead, "close a question")
        record = self._on_screen(lead, "close")
        if record["state"] == "open":
            self._put_question(lead, {**record, "state": "closed"}, False, True)

    def reveal(self, lead: Lead) -> None:
        """Close the question on screen and show everyone its answer and reason."""
        self._lead(lead, "reveal the answer")
        record = self._on_screen(lead, "reveal")
        self._put_question(lead, {**record, "state": "revealed"}, False, True)

    def clear_question(self, lead: Lead) -> None:
        """Take the question off the screens (closed; kept for the export)."""
        self._lead(lead, "take a question away")
        record = self._snapshot(lead.info).question
        if record is not None:
            state = "closed" if record["state"] == "open" else record["state"]
            self._put_question(lead, {**record, "state": state}, False, False)

    def answer(self, seat: Seat, qid: str, option: str) -> None:
        """A student's answer to the open question; a second answer replaces the first.

        Args:
            qid: the ``QuestionState.qid`` the student saw (an answer never lands on a
                question asked after the click).
            option: one of the question's options.

        Raises:
            NotAllowed: not a seat of this class.
            AnswerRefused: no such open question, or not one of its options.
            ClassEnded: the class ended.
        """
        seat = self._seat(seat, "answer")
        record = self._snapshot(seat.info).question
        if record is None or record["qid"] != qid:
            raise AnswerRefused("That question is no longer on the teacher's screen.")
        if record["state"] != "open":
            raise AnswerRefused("This question is closed: answers are no longer taken.")
        if not isinstance(option, str) or option not in record["question"]["options"]:
            raise AnswerRefused(f"{str(option)[:40]!r} is not one of this question's options.")
        outcome = self.store.put_answer(seat.info.class_id, qid, seat.student_id, option)
        if outcome is AnswerOutcome.NOT_OPEN:
            raise AnswerRefused("This question closed before your answer arrived.")
        if outcome is AnswerOutcome.NOT_A_STUDENT:
            raise NotAllowed("This browser is not in the class any more: join again with the code.")
        if outcome is AnswerOutcome.NO_CLASS:
            raise _ended(seat.info)

    def tally(self, member: Lead | Seat) -> Tally | None:
        """Answers per option to the question on screen (None when there is none): live for
        the teacher, for a student only once revealed. Never who answered what.

        Raises:
            NotAllowed: a student before the reveal, or a visitor.
        """
        member = self._member(member)
        record = self._snapshot(member.info).question
        if record is None:
            return None
        teacher = isinstance(member, Lead)
        if not teacher and record["state"] != "revealed":
            raise NotAllowed("The answers are shown when the teacher reveals the right one.")
        return self._tally(member.info.class_id, record, teacher)

    def _tally(self, class_id: str, record: dict, teacher: bool) -> Tally:
        options = record["question"]["options"]
        counts = self.store.answer_counts(class_id, record["qid"])
        counts = {o: counts.get(o, 0) for o in options}
        shown = teacher or record["state"] == "revealed"
        return Tally(
            record["qid"],
            Question.from_dict(record["question"]),
            record["state"],
            counts,
            sum(counts.values()),
            record["correct"] if shown else None,
        )

    def export_csv(self, lead: Lead) -> str:
        """Every question asked in the class with its answers per option, as CSV text (no
        seats, no names: counts only).

        Columns: asked (1, 2, ... in order), question (its id), kind, prompt, option,
        answers, right ("yes"/"no", empty when the question has no right option), state.
        """
        self._lead(lead, "export the answers")
        self._snapshot(lead.info)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            ["asked", "question", "kind", "prompt", "option", "answers", "right", "state"]
        )
        records = sorted(self.store.asked(lead.info.class_id), key=lambda r: r["asked_at"])
        for n, record in enumerate(records, 1):
            t = self._tally(lead.info.class_id, record, teacher=True)
            for option, count in t.counts.items():
                right = "" if t.correct is None else ("yes" if option == t.correct else "no")
                writer.writerow(
                    [
                        n,
                        t.question.id,
                        t.question.kind,
                        t.question.prompt,
                        option,
                        count,
                        right,
                        t.state,
                    ]
                )
        return out.getvalue()


def _question_state(record: dict, teacher: bool) -> QuestionState:
    """The stored record as the role may see it: a student sees no answer before the reveal."""
    question = Question.from_dict(record["question"])
    state = record["state"]
    if not teacher and state != "revealed":
        return QuestionState(
            record["qid"],
            dataclasses.replace(question, answer=None, reason=""),
            record["seed"],
            state,
        )
    return QuestionState(
        record["qid"],
        question,
        record["seed"],
        state,
        record["correct"],
        record["reason"],
        dict(record["labels"]),
        {k: dict(v) for k, v in record["figures"].items()},
    )
