"""Where a class lives: one small interface, two implementations.

* :class:`~convae.classroom.memory_store.MemoryStore`: a dict and a lock, for one app
  process (``CONVAE_CLASS_STORE`` unset or ``memory``).
* :class:`~convae.classroom.redis_store.RedisStore`: Redis through redis-py, for replicas
  behind HAProxy (``CONVAE_CLASS_STORE=redis://host:port/db``), where the teacher and
  the students may land on different processes.

A store keeps records and checks only what must be checked atomically where the data is
(the class still exists, a seat exists, a question is the open one); who may call what
is the service's job (:mod:`convae.classroom.service`). Everything a class owns expires
with it. A store that cannot be reached raises :class:`ClassStoreUnavailable` from every
call.

Records are plain JSON-able dicts (a view, a question's record, a student's presence),
so the two stores behave alike byte for byte.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from .errors import ClassStoreConfigError

STORE_ENV = "CONVAE_CLASS_STORE"


@dataclass(frozen=True)
class ClassRecord:
    """A class's fixed facts.

    Attributes:
        class_id: the record's unguessable id.
        code: its join code.
        created: when it started (unix seconds).
        ends_at: when it ends by itself (unix seconds); every key it owns expires then.
    """

    class_id: str
    code: str
    created: float
    ends_at: float

    def to_dict(self) -> dict:
        return {
            "id": self.class_id,
            "code": self.code,
            "created": self.created,
            "ends": self.ends_at,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ClassRecord:
        return cls(d["id"], d["code"], float(d["created"]), float(d["ends"]))


@dataclass(frozen=True)
class Snapshot:
    """What a screen needs of a class, read in one go.

    Attributes:
        record: the class's facts.
        version: changes whenever the view or the current question changes.
        view: the teacher's current view (a ``View.to_dict()``), or None before the first.
        question: the current question's record, or None when none is on screen.
    """

    record: ClassRecord
    version: int
    view: dict | None
    question: dict | None


class AnswerOutcome(Enum):
    """What the store did with an answer."""

    STORED = "stored"
    NOT_OPEN = "not open"  # that question is not the one open for answers
    NOT_A_STUDENT = "not a student"  # no such seat in the class
    NO_CLASS = "no class"  # the class has ended


class ClassStore(ABC):
    """The records of live classes. Implementations must be safe to call from many threads
    (every Streamlit session runs in its own)."""

    #: where the records live, for messages ("memory", "redis://localhost:6379/0")
    where: str = ""

    @abstractmethod
    def create(self, record: ClassRecord, code_until: float) -> bool:
        """Store a new class and claim its join code until ``code_until`` (unix seconds; a
        little after the class ends, so a late student hears the class ended).

        Returns:
            False (and nothing stored) when a live class or a recent one holds the code.
        """

    @abstractmethod
    def class_for_code(self, code: str) -> str | None:
        """The class id a join code names (also for a while after the class ended), or None."""

    @abstractmethod
    def version(self, class_id: str) -> int | None:
        """The class's version number, or None once it ended: what a student polls, so it
        costs one lookup (one GET in Redis)."""

    @abstractmethod
    def snapshot(self, class_id: str) -> Snapshot | None:
        """Record, version, view and current question in one read, or None once it ended."""

    @abstractmethod
    def extend(self, record: ClassRecord, code_until: float) -> bool:
        """Move the class's end to ``record.ends_at`` (every key it owns follows).

        Returns:
            False when the class had already ended.
        """

    @abstractmethod
    def delete(self, class_id: str, code: str, code_until: float) -> None:
        """End a class now: everything it owns goes; the code keeps naming the ended class
        until ``code_until`` so that a late student hears it ended."""

    @abstractmethod
    def set_view(self, class_id: str, view: dict) -> int | None:
        """Store the teacher's view and bump the version.

        Returns:
            The new version, or None when the class has ended.
        """

    @abstractmethod
    def set_question(
        self, class_id: str, record: dict, open_for_answers: bool, on_screen: bool
    ) -> int | None:
        """Store a question's record (``record["qid"]`` names it) in the class's list of asked
        questions, make it the one open for answers or close answers, put it on screen or
        take it off, and bump the version.

        Returns:
            The new version, or None when the class has ended.
        """

    @abstractmethod
    def asked(self, class_id: str) -> list[dict]:
        """Every question asked in the class (records, in no particular order)."""

    @abstractmethod
    def add_student(self, class_id: str, student_id: str, presence: dict) -> bool:
        """A new seat. Returns False when the class has ended."""

    @abstractmethod
    def touch_student(self, class_id: str, student_id: str, presence: dict) -> bool:
        """Update an existing seat's presence. Returns False when there is no such seat
        (or no such class): a store never creates a seat on a heartbeat."""

    @abstractmethod
    def remove_student(self, class_id: str, student_id: str) -> None:
        """Drop a seat (a student leaving); its answers stay counted."""

    @abstractmethod
    def presences(self, class_id: str) -> list[dict]:
        """Every seat's presence record, without the seats' ids."""

    @abstractmethod
    def put_answer(self, class_id: str, qid: str, student_id: str, option: str) -> AnswerOutcome:
        """Record (or replace) this seat's answer, atomically only if ``qid`` is the question
        open for answers and the seat exists."""

    @abstractmethod
    def answer_counts(self, class_id: str, qid: str) -> dict[str, int]:
        """How many seats chose each option (options nobody chose are absent). There is no
        call that reads an individual seat's answer."""

    @abstractmethod
    def ping(self) -> None:
        """Return when the store answers; raise ClassStoreUnavailable otherwise."""

    def close(self) -> None:  # noqa: B027 (optional: only stores with connections need it)
        """Release connections."""


def without_password(url: str) -> str:
    """``url`` with any user and password replaced by "***" (for messages and logs)."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def _is_redis_url(spec: str) -> bool:
    try:
        parts = urlsplit(spec)
        port_ok = parts.port is None or parts.port > 0  # .port raises on a non-number
    except ValueError:
        return False
    return (
        parts.scheme == "redis"
        and bool(parts.hostname)
        and port_ok
        and re.fullmatch(r"(/\d*)?", parts.path) is not None
        and not parts.query
        and not parts.fragment
    )


def open_store(spec: str | None = None) -> ClassStore:
    """The store that ``spec`` (default: ``$CONVAE_CLASS_STORE``) names.

    Args:
        spec: unset, "" or "memory" for the in-process store; "redis://host:port/db" for
            Redis (port 6379 and db 0 by default).

    Raises:
        ClassStoreConfigError: anything else, naming both forms.
    """
    spec = os.environ.get(STORE_ENV, "") if spec is None else spec
    spec = spec.strip()
    if spec in ("", "memory"):
        from .memory_store import MemoryStore

        return MemoryStore()
    if _is_redis_url(spec):
        from .redis_store import RedisStore

        return RedisStore(spec)
    raise ClassStoreConfigError(
        f"{STORE_ENV}={without_password(spec)!r} is not a class store: leave it unset (or "
        "'memory') for one "
        "app process, or give a Redis address as redis://host:port/db (e.g. "
        "redis://localhost:6379/0) for replicas"
    )
