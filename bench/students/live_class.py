"""A live class for simulated students: what the teacher does, what a student does, and
how each reads the screen it is shown.

The class is the app's (pages/live_class.py, pages/glue/classroom.py, class_questions.py,
lessons.py); this module drives it through :class:`~bench.students.protocol.StreamlitSession`
as people do, by the widgets' keys and the texts on the page:

- the teacher opens the Class page with the teacher key (``?teacher=KEY&present=1``),
  presses Start a class and reads the join code off the join card; steps through the
  shipped lessons in presentation mode (``lesson_pick``, ``lesson_start``,
  ``lesson_next``, ``lesson_end``) with a few seconds of thinking between steps; opens
  the Class page, asks questions (``class_question_pick``, ``class_ask``), waits until
  every following student has answered and its own live tally shows that many answers,
  reveals (``class_reveal``), reads the class record's answers from its Export button
  (the CSV the teacher downloads) and takes the question off the screens
  (``class_clear``);
- a following student joins with the code (``?join=CODE``) and does nothing else to
  follow: its page's poll fragment sends ``auto_rerun``, which the engine replays; when a
  question shows on its screen it reads it for a few seconds and presses one of the
  answer buttons (``class_answer_<i>``);
- an exploring student joins, presses Explore on my own and steps through Layers.

Every teacher action that changes the view is a :class:`Change` on the
:class:`ClassBoard`, with the time its click was sent and how a following screen shows
it (the lesson banner's step, the question, the reveal); a
:class:`~bench.students.follow.Follower` on each following student then times "teacher's
click to this screen showing it". The board also keeps the answers sent, so that they
can be checked against the class record at the end (:func:`answers_lost`).

Both Locust's users (locustfile.py) and the test (tests/e2e/test_students.py) use it;
``act`` is how the caller sends a request and reports it (Locust's ``StreamlitUser.act``).
"""

from __future__ import annotations

import csv
import io
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench.students.protocol import Request, StreamlitSession

ROOT = Path(__file__).resolve().parents[2]
LESSONS = ROOT / "lessons" / "lessons.toml"
CLASS_PAGE = "class"  # the Class page's url path (pages/glue/page_table.py)
POLL_S = 1.5  # a following screen's poll interval (pages/glue/classroom.py's POLL_S)
NO_QUESTION = "No question right now"  # a student's Class page without a question
RIGHT_ANSWER = "The right answer"  # the reveal's line (class_questions.show_reveal)
_BANNER = re.compile(r"^\*\*(.+)\*\* · step (\d+) of (\d+)$")  # lessons.banner
_CODE = re.compile(r'aria-label="join code ([A-Z0-9 ]+)"')  # classroom.join_card
_MINE = re.compile(r"^Your answer: \*\*(.+?)\*\*")  # class_questions.answer_buttons
_TALLY = re.compile(r"^(\d+) answers?: ")  # class_questions.tally_chart's summary

Act = Callable[..., Request | None]  # act(name, send, check=None) -> the request or None


@dataclass(frozen=True)
class ClassPlan:
    """What the teacher does in one class.

    Args:
        lessons: (lesson id, steps shown; 0 for all) in order, from lessons/lessons.toml.
        questions: the question picker's values (``builtin:blind``, ``builtin:worst`` or a
            question id of lessons/questions.toml), asked one after the other.
        think_s: the teacher's pause between two clicks (uniform in this range): time
            to say a sentence about the step, as in a class.
        answer_wait_s: the longest wait for every following student's answer.
        reveal_s: how long a revealed answer stays on the screens before the next step.
    """

    lessons: tuple[tuple[str, int], ...]
    questions: tuple[str, ...]
    think_s: tuple[float, float] = (3.0, 5.0)
    answer_wait_s: float = 60.0
    reveal_s: float = 4.0


# Issue 22's class: both shipped lessons step by step, a blind quiz and a "worst" question.
FULL = ClassPlan((("squeeze", 0), ("tiles", 0)), ("builtin:blind", "builtin:worst"))
# The test's: join, one step to follow, one question.
QUICK = ClassPlan((("squeeze", 2),), ("builtin:blind",), think_s=(0.2, 0.4), reveal_s=0.3)
# The Chromium check's: one lesson, no question (following is what it compares).
STEPS_ONLY = ClassPlan((("squeeze", 0),), ())
PLANS = {"full": FULL, "quick": QUICK, "steps": STEPS_ONLY}


def lesson_steps(lesson_id: str) -> tuple[str, int]:
    """The shipped lesson's title (the picker's label) and its number of steps."""
    from convae.lessons import load_lessons

    for lesson in load_lessons(LESSONS):
        if lesson.id == lesson_id:
            return lesson.title, len(lesson.steps)
    raise LookupError(f"no lesson {lesson_id!r} in {LESSONS}")


# ------------------------------------------------------------------ reading a screen
def banner(s: StreamlitSession) -> tuple[str, int] | None:
    """The lesson banner's (title, step) shown, or None."""
    for t in s.texts():
        if m := _BANNER.match(t):
            return m.group(1), int(m.group(2))
    return None


def headings(s: StreamlitSession) -> list[str]:
    """The headings of the main area (a question's prompt is one)."""
    return s.texts(kinds=("heading",))


def on_page(s: StreamlitSession, url_path: str) -> bool:
    """Whether the session shows the page with this url path."""
    return bool(s.pages) and s.page_script_hash == s.pages.get(url_path)


def answer_keys(s: StreamlitSession) -> list[str]:
    """The answer buttons shown and enabled (an open question), in option order."""
    shown = [w for w in s.widgets() if w.key.startswith("class_answer_") and not w.proto.disabled]
    return [w.key for w in sorted(shown, key=lambda w: int(w.key.rsplit("_", 1)[1]))]


def my_answer(s: StreamlitSession) -> str | None:
    """The answer this student's screen says it gave ("Your answer: **B**")."""
    return next((m.group(1) for t in s.texts() if (m := _MINE.match(t))), None)


def shows_text(s: StreamlitSession, start: str) -> bool:
    return any(t.startswith(start) for t in s.texts())


def tally_answers(s: StreamlitSession) -> int | None:
    """The answers the teacher's live tally counts ("3 answers: A: 2, B: 1.")."""
    return next((int(m.group(1)) for t in s.texts() if (m := _TALLY.match(t))), None)


def join_code(s: StreamlitSession) -> str | None:
    """The join code on the teacher's join card."""
    for t in s.texts(None):
        if m := _CODE.search(t):
            return m.group(1).replace(" ", "")
    return None


# ------------------------------------------------------------------ the board
@dataclass
class Change:
    """One teacher click that changes what a following screen shows."""

    version: int  # 1, 2, ... in the order clicked
    label: str
    sent: float  # time.perf_counter() when the click was sent
    shows: Callable[[StreamlitSession], bool]  # a following screen shows it


@dataclass
class ClassBoard:
    """What the people of one class share in the load generator's process: the join code,
    the teacher's changes, who joined, the questions and the answers sent.

    Its ``sent_at`` is :class:`~bench.students.follow.Board`'s, so a Follower reads it.
    """

    code: str = ""
    changes: list[Change] = field(default_factory=list)
    joined: int = 0
    following: int = 0
    prompts: dict[str, int] = field(default_factory=dict)  # prompt -> asked (1, 2, ...)
    answers: Counter = field(default_factory=Counter)  # (asked, option) -> answers sent
    delays: list[tuple[int, float]] = field(default_factory=list)  # (version, seconds)
    problems: list[str] = field(default_factory=list)  # what did not happen in time
    opened: threading.Event = field(default_factory=threading.Event)
    over: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, code: str) -> None:
        self.code = code
        self.opened.set()

    def post(self, label: str, shows: Callable[[StreamlitSession], bool]) -> float:
        """Record a change about to be clicked; returns its send time (perf_counter)."""
        with self._lock:
            sent = time.perf_counter()
            self.changes.append(Change(len(self.changes) + 1, label, sent, shows))
        return sent

    def sent_at(self, version: int) -> float | None:
        with self._lock:
            return self.changes[version - 1].sent if 0 < version <= len(self.changes) else None

    def shown(self, s: StreamlitSession) -> int:
        """The latest change this screen shows (0: none of them)."""
        with self._lock:
            changes = list(self.changes)
        return next((c.version for c in reversed(changes) if c.shows(s)), 0)

    def seated(self, following: bool) -> None:
        with self._lock:
            self.joined += 1
            self.following += following

    def answered(self, prompt: str, option: str) -> None:
        with self._lock:
            self.answers[(self.prompts[prompt], option)] += 1

    def answers_to(self, asked: int) -> int:
        with self._lock:
            return sum(n for (q, _), n in self.answers.items() if q == asked)

    def delay(self, version: int, seconds: float) -> None:
        with self._lock:
            self.delays.append((version, seconds))


# ------------------------------------------------------------------ the teacher
def _pause(plan: ClassPlan, rng: random.Random) -> None:
    time.sleep(rng.uniform(*plan.think_s))


# The question picker shows labels (class_questions.catalogue): a built-in's starts so,
# a file question's ends with its id in brackets.
BUILTIN_LABELS = {
    "builtin:blind": "Which decoder drew this?",
    "builtin:worst": "Which of 4 random test pictures",
}


def question_label(s: StreamlitSession, wanted: str) -> str:
    """The question picker's option for a picker value (``builtin:blind``, a file id)."""
    options = s.widget("class_question_pick").options
    start = BUILTIN_LABELS.get(wanted)
    for o in options:
        if (start and o.startswith(start)) or (not start and o.endswith(f"({wanted})")):
            return o
    raise LookupError(f"no question {wanted!r} in the picker: {options}")


def _check(ok: bool, what: str) -> None:
    assert ok, f"the teacher's own screen does not show {what}"


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Look every 0.2 s until ``cond()``; an AssertionError (a failed check) past ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.2)


def click_change(
    act: Act,
    s: StreamlitSession,
    board: ClassBoard,
    name: str,
    key: str,
    shows: Callable[[StreamlitSession], bool],
    own: Callable[[StreamlitSession], bool] | None = None,
) -> Request | None:
    """Click ``key`` as a change of the view: posted on the board with how a following
    screen shows it, then checked on the teacher's own screen (``own``, else ``shows``)."""

    def send() -> Request:
        board.post(name, shows)
        return s.click(key)

    def check() -> None:
        assert (own or shows)(s), f"{name}: the teacher's own screen does not show it"

    return act(f"teacher: {name}", send, check)


def start_class(act: Act, s: StreamlitSession, board: ClassBoard) -> str:
    """Start a class on the Class page (opened with the teacher key); returns its code."""
    act("teacher: start a class", lambda: s.click("class_start"))
    code = join_code(s)
    if not code:
        raise RuntimeError(f"no join code on the teacher's page: {s.texts()[:6]}")
    board.open(code)
    return code


def lead_lessons(
    act: Act, s: StreamlitSession, board: ClassBoard, plan: ClassPlan, rng: random.Random
) -> None:
    """Step through the plan's lessons in presentation mode, each to its end."""
    for lesson_id, shown in plan.lessons:
        lead_lesson(act, s, board, plan, rng, lesson_id, shown)


def lead_lesson(
    act: Act,
    s: StreamlitSession,
    board: ClassBoard,
    plan: ClassPlan,
    rng: random.Random,
    lesson_id: str,
    shown: int = 0,
) -> None:
    """Pick a lesson, start it, Next through its first ``shown`` steps (0: all), end it."""
    title, n = lesson_steps(lesson_id)
    act("teacher: pick a lesson", lambda: s.set_value("lesson_pick", title))
    for step in range(1, min(n, shown or n) + 1):
        if step > 1:
            _pause(plan, rng)
        at = partial(_at_step, title=title, step=step)
        key = "lesson_start" if step == 1 else "lesson_next"
        click_change(act, s, board, f"lesson step {step}", key, at)
    _pause(plan, rng)
    ended = partial(_ended, page=s.page_script_hash)
    click_change(act, s, board, "end the lesson", "lesson_end", ended)


def _at_step(x: StreamlitSession, title: str, step: int) -> bool:
    return banner(x) == (title, step)


def _ended(x: StreamlitSession, page: str) -> bool:
    return x.page_script_hash == page and banner(x) is None


def _class_page(x: StreamlitSession) -> bool:
    """A student's Class page with no question on it."""
    return on_page(x, CLASS_PAGE) and shows_text(x, NO_QUESTION)


def _led(x: StreamlitSession) -> bool:
    """The teacher's Class page with no question on it (the join card)."""
    return on_page(x, CLASS_PAGE) and join_code(x) is not None


def _asked(x: StreamlitSession, prompt: list[str]) -> bool:
    return bool(prompt) and prompt[0] in headings(x) and bool(answer_keys(x))


def _revealed(x: StreamlitSession, prompt: str) -> bool:
    return prompt in headings(x) and shows_text(x, RIGHT_ANSWER)


def ask_questions(
    act: Act, s: StreamlitSession, board: ClassBoard, plan: ClassPlan, rng: random.Random
) -> dict[tuple[int, str], int] | None:
    """Open the Class page and ask the plan's questions one after the other; after the
    last reveal, read the class record's answers from the Export button. Returns them
    ((asked, option) -> answers), or None when there was no question."""
    if not plan.questions:
        return None

    def send_goto() -> Request:
        board.post("open the Class page", _class_page)
        return s.goto(CLASS_PAGE)

    act("teacher: open the Class page", send_goto, lambda: _check(_led(s), "the Class page"))
    for k, wanted in enumerate(plan.questions, 1):
        ask_question(act, s, board, plan, rng, k, wanted)
    record = exported_answers(s)
    click_change(act, s, board, "take the question off", "class_clear", _class_page, _led)
    return record


def ask_question(
    act: Act,
    s: StreamlitSession,
    board: ClassBoard,
    plan: ClassPlan,
    rng: random.Random,
    k: int,
    wanted: str,
) -> None:
    """Ask question ``k`` (a picker value), wait for the answers, reveal it; it stays on
    the screens (the next one replaces it)."""
    _pause(plan, rng)
    label = question_label(s, wanted)
    act("teacher: pick a question", lambda: s.set_value("class_question_pick", label))
    prompt: list[str] = []  # known once asked (a built-in's prompt names a model)

    def send_ask() -> Request:
        board.post(f"ask question {k}", partial(_asked, prompt=prompt))
        return s.click("class_ask")

    act(f"teacher: ask question {k}", send_ask)
    prompt.append(next((h for h in headings(s) if h != "Live class"), ""))
    board.prompts[prompt[0]] = k
    # Every following student answers, then the teacher's own tally shows as many;
    # when not, the teacher goes on (as in a class) and the board notes it.
    try:
        everyone = lambda: board.answers_to(k) >= board.following
        wait_for(everyone, plan.answer_wait_s, f"question {k}'s answers")
        counted = lambda: tally_answers(s) == board.answers_to(k)
        wait_for(counted, 30, f"question {k}'s tally on the teacher's screen")
    except AssertionError as exc:
        board.problems.append(str(exc))
    _pause(plan, rng)
    revealed = partial(_revealed, prompt=prompt[0])
    click_change(act, s, board, f"reveal question {k}", "class_reveal", revealed)
    time.sleep(plan.reveal_s)


def exported_answers(s: StreamlitSession) -> dict[tuple[int, str], int]:
    """The class record's answers, from the teacher's Export button (the CSV a teacher
    downloads: one row per question asked and option)."""
    text = s.get(s.widget("class_export").proto.url).decode("utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return {(int(r["asked"]), r["option"]): int(r["answers"]) for r in rows}


def answers_lost(sent: Counter, record: dict[tuple[int, str], int]) -> dict:
    """Answers sent against the class record's: lost (sent, not recorded) and extra
    (recorded, not sent; e.g. a click whose run timed out but whose answer arrived)."""
    keys = set(sent) | set(record)
    return {
        "sent": sum(sent.values()),
        "recorded": sum(record.values()),
        "lost": sum(max(0, sent[k] - record.get(k, 0)) for k in keys),
        "extra": sum(max(0, record.get(k, 0) - sent[k]) for k in keys),
        "by_question": {f"{q} {o}": [sent[(q, o)], record.get((q, o), 0)] for q, o in sorted(keys)},
    }


# ------------------------------------------------------------------ a student
def joined(s: StreamlitSession, code: str) -> bool:
    """Whether the student's screen says it sits in the class (the sidebar's line)."""
    return any(t.startswith(f"**In class {code}**") for t in s.texts(None))


def join(act: Act, s: StreamlitSession, board: ClassBoard, following: bool) -> bool:
    """Open the Class page with the join link, as a student scanning the QR code does;
    an exploring student then presses Explore on my own. Returns whether it joined."""
    got = act(f"open {CLASS_PAGE}?join", s.connect, lambda: _joined(s, board.code), False)
    if got is None:
        return False
    if not following:
        act("student: explore on my own", lambda: s.click("class_explore"))
    board.seated(following)
    return True


def _joined(s: StreamlitSession, code: str) -> None:
    assert joined(s, code), f"not in class {code}: {s.texts(None)[:4]}"


def answer_when_asked(
    act: Act, s: StreamlitSession, board: ClassBoard, rng: random.Random, read_s: tuple
) -> bool:
    """When an open question the student has not answered is on the screen: read it for
    ``read_s`` seconds, press one option, and check the screen says so. Returns whether it
    answered (False when there was nothing to answer)."""
    keys = answer_keys(s)
    if not keys or my_answer(s) is not None:
        return False
    prompt = next((h for h in headings(s) if h in board.prompts), None)
    if prompt is None:
        return False
    time.sleep(rng.uniform(*read_s))
    keys = answer_keys(s)
    if not keys or prompt not in headings(s):
        return False  # the question went meanwhile (the teacher moved on)
    key = rng.choice(keys)
    option = s.widget(key).label

    def check() -> None:
        assert my_answer(s) == option, f"answered {option}, the screen says {my_answer(s)}"

    if act("student: answer", lambda: s.click(key), check) is not None:
        board.answered(prompt, option)
    return True
