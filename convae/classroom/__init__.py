"""A live class: the teacher leads, students follow and answer questions (no Streamlit here).

Modules, one job each:

* :mod:`.key`         - the teacher key the server prints at start; ``verify()`` gives a token.
* :mod:`.ratelimit`   - the limit on wrong keys (per session and per process).
* :mod:`.codes`       - join codes (no look-alike characters) and random ids.
* :mod:`.view`        - the teacher's view: a shared link's page and query parameters.
* :mod:`.store`       - the store interface and ``open_store()`` (``CONVAE_CLASS_STORE``).
* :mod:`.memory_store`, :mod:`.redis_store` - its two implementations.
* :mod:`.service`     - roles and permission checks: start, join, follow, ask, answer.
* :mod:`.questions`   - the questions file (``lessons/questions.toml``) and its kinds.
* :mod:`.quiz`        - a picture question's pictures, right answer and measured reason.
* :mod:`.errors`      - one exception per case a page handles differently.

How a page uses it (the UI keeps ``svc`` in a ``st.cache_resource`` and the capabilities in
``st.session_state``; they never go to a browser)::

    svc = ClassService(open_store())                    # CONVAE_CLASS_STORE picks the store
    token = verify(typed_key, session=session_id)       # WrongTeacherKey / TooManyWrongKeys
    lead = svc.start(token)                             # lead.info.code, lead.info.join_path
    svc.publish(lead, View("layer-by-layer", {"step": "conv1"}))
    seat = svc.join("k7r x4m")                          # UnknownCode / ClassEnded
    if svc.version(seat) != seen:                       # the poll: one GET
        state = svc.state(seat)                         # view + question, as a student sees it
    svc.heartbeat(seat, following=True)                 # every few polls
    q = load_questions("lessons/questions.toml", models=keys, classes=data.classes)[0]
    asked = svc.ask(lead, q, prepare(q, models, data.test))
    svc.answer(seat, asked.qid, "A")                    # again: replaces the first answer
    svc.tally(lead).counts                              # {"A": 1, "B": 0}
    svc.reveal(lead); csv_text = svc.export_csv(lead)
    # every call: except ClassStoreUnavailable as exc: one line, explore on your own
"""

from __future__ import annotations

from .errors import (
    AnswerRefused,
    ClassEnded,
    ClassError,
    ClassStoreConfigError,
    ClassStoreUnavailable,
    NotAllowed,
    QuestionError,
    TooManyWrongKeys,
    UnknownCode,
    WrongTeacherKey,
)
from .key import KEY_ENV, TeacherKey, TeacherToken, process_key, teacher_key, verify
from .questions import PictureRef, Question, choice_question, load_questions, parse_questions
from .service import (
    Attendance,
    ClassInfo,
    ClassService,
    ClassState,
    Lead,
    QuestionState,
    Role,
    Seat,
    Tally,
)
from .store import STORE_ENV, ClassStore, open_store
from .view import View

__all__ = [
    "KEY_ENV",
    "STORE_ENV",
    "AnswerRefused",
    "Attendance",
    "ClassEnded",
    "ClassError",
    "ClassInfo",
    "ClassService",
    "ClassState",
    "ClassStore",
    "ClassStoreConfigError",
    "ClassStoreUnavailable",
    "Lead",
    "NotAllowed",
    "PictureRef",
    "Question",
    "QuestionError",
    "QuestionState",
    "Role",
    "Seat",
    "Tally",
    "TeacherKey",
    "TeacherToken",
    "TooManyWrongKeys",
    "UnknownCode",
    "View",
    "WrongTeacherKey",
    "choice_question",
    "load_questions",
    "open_store",
    "parse_questions",
    "process_key",
    "teacher_key",
    "verify",
]
