"""The in-process class store: a dict and a lock, for one app process.

Every Streamlit session of the process shares one instance (the UI keeps it in a
``st.cache_resource``). Records are kept as JSON text, as Redis keeps them, so that what a
caller gets back is always a fresh copy and both stores accept exactly the same records.
A class expires by its end time: every call looks at the clock and treats a class past
its end as gone (and drops it), so no timer thread is needed.

A student's poll, :meth:`MemoryStore.version`, is one dict lookup and a clock reading,
without the lock (a dict lookup is atomic in CPython).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .store import AnswerOutcome, ClassRecord, ClassStore, Snapshot


@dataclass
class _Class:
    record: ClassRecord
    version: int = 1
    view: str | None = None
    question: str | None = None  # the record on screen
    open_qid: str | None = None  # the question taking answers
    asked: dict[str, str] = field(default_factory=dict)
    students: dict[str, str] = field(default_factory=dict)
    answers: dict[str, dict[str, str]] = field(default_factory=dict)  # qid -> seat -> option


class MemoryStore(ClassStore):
    """Live classes of this process.

    Args:
        clock: unix time in seconds (the service's clock; tests may move it).
    """

    where = "memory"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._classes: dict[str, _Class] = {}
        self._codes: dict[str, tuple[str, float]] = {}  # code -> (class id, until)

    def _live(self, class_id: str) -> _Class | None:
        c = self._classes.get(class_id)
        if c is not None and c.record.ends_at <= self._clock():
            self._classes.pop(class_id, None)
            return None
        return c

    def _sweep(self) -> None:
        now = self._clock()
        for cid in [k for k, c in self._classes.items() if c.record.ends_at <= now]:
            del self._classes[cid]
        for code in [k for k, (_, until) in self._codes.items() if until <= now]:
            del self._codes[code]

    def create(self, record: ClassRecord, code_until: float) -> bool:
        with self._lock:
            self._sweep()
            if record.code in self._codes or record.class_id in self._classes:
                return False
            self._codes[record.code] = (record.class_id, code_until)
            self._classes[record.class_id] = _Class(record)
            return True

    def class_for_code(self, code: str) -> str | None:
        with self._lock:
            entry = self._codes.get(code)
            if entry is None or entry[1] <= self._clock():
                return None
            return entry[0]

    def version(self, class_id: str) -> int | None:
        c = self._classes.get(class_id)
        if c is None or c.record.ends_at <= self._clock():
            return None
        return c.version

    def snapshot(self, class_id: str) -> Snapshot | None:
        with self._lock:
            c = self._live(class_id)
            if c is None:
                return None
            return Snapshot(c.record, c.version, _load(c.view), _load(c.question))

    def extend(self, record: ClassRecord, code_until: float) -> bool:
        with self._lock:
            c = self._live(record.class_id)
            if c is None:
                return False
            c.record = record
            self._codes[record.code] = (record.class_id, code_until)
            return True

    def delete(self, class_id: str, code: str, code_until: float) -> None:
        with self._lock:
            self._classes.pop(class_id, None)
            if code in self._codes:
                self._codes[code] = (class_id, code_until)

    def set_view(self, class_id: str, view: dict) -> int | None:
        text = json.dumps(view)
        with self._lock:
            c = self._live(class_id)
            if c is None:
                return None
            c.view = text
            c.version += 1
            return c.version

    def set_question(
        self, class_id: str, record: dict, open_for_answers: bool, on_screen: bool
    ) -> int | None:
        qid, text = record["qid"], json.dumps(record)
        with self._lock:
            c = self._live(class_id)
            if c is None:
                return None
            c.asked[qid] = text
            if open_for_answers:
                c.open_qid = qid
            elif c.open_qid == qid:
                c.open_qid = None
            if on_screen:
                c.question = text
            elif c.question is not None and json.loads(c.question)["qid"] == qid:
                c.question = None
            c.version += 1
            return c.version

    def asked(self, class_id: str) -> list[dict]:
        with self._lock:
            c = self._live(class_id)
            return [] if c is None else [json.loads(t) for t in c.asked.values()]

    def add_student(self, class_id: str, student_id: str, presence: dict) -> bool:
        return self._put_student(class_id, student_id, presence, must_exist=False)

    def touch_student(self, class_id: str, student_id: str, presence: dict) -> bool:
        return self._put_student(class_id, student_id, presence, must_exist=True)

    def _put_student(
        self, class_id: str, student_id: str, presence: dict, must_exist: bool
    ) -> bool:
        text = json.dumps(presence)
        with self._lock:
            c = self._live(class_id)
            if c is None or (must_exist and student_id not in c.students):
                return False
            c.students[student_id] = text
            return True

    def remove_student(self, class_id: str, student_id: str) -> None:
        with self._lock:
            c = self._live(class_id)
            if c is not None:
                c.students.pop(student_id, None)

    def presences(self, class_id: str) -> list[dict]:
        with self._lock:
            c = self._live(class_id)
            return [] if c is None else [json.loads(t) for t in c.students.values()]

    def put_answer(self, class_id: str, qid: str, student_id: str, option: str) -> AnswerOutcome:
        with self._lock:
            c = self._live(class_id)
            if c is None:
                return AnswerOutcome.NO_CLASS
            if c.open_qid != qid:
                return AnswerOutcome.NOT_OPEN
            if student_id not in c.students:
                return AnswerOutcome.NOT_A_STUDENT
            c.answers.setdefault(qid, {})[student_id] = str(option)
            return AnswerOutcome.STORED

    def answer_counts(self, class_id: str, qid: str) -> dict[str, int]:
        with self._lock:
            c = self._live(class_id)
            counts: dict[str, int] = {}
            for option in [] if c is None else c.answers.get(qid, {}).values():
                counts[option] = counts.get(option, 0) + 1
            return counts

    def ping(self) -> None:
        return None


def _load(text: str | None) -> dict | None:
    return None if text is None else json.loads(text)
