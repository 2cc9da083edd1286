"""What can go wrong in a live class, one exception type per case a page handles differently.

Every message is one plain sentence a page can show as it is (``st.error(str(exc))``):
it says what happened and, where there is one, what to do. None of them ever holds the
teacher key, a student's id or another student's answer.
"""

from __future__ import annotations


class ClassError(Exception):
    """Anything a class call refuses; the message is meant for the person on screen."""


class ClassStoreUnavailable(ClassError):
    """The class store (Redis) cannot be reached. Raised by every store call while it is
    down; the next call after it comes back works again (the client reconnects). A page
    shows its one line and lets students explore on their own meanwhile."""


class ClassStoreConfigError(ValueError):
    """``CONVAE_CLASS_STORE`` names neither the in-process store nor a Redis address."""


class NotAllowed(ClassError):
    """The caller's role may not do this (a student leading, a visitor answering, a forged
    or stale capability). The message names what only the teacher (or a student) may do."""


class UnknownCode(ClassError):
    """No class has this join code."""


class ClassEnded(ClassError):
    """The class ended (the teacher ended it, or its time ran out)."""


class WrongTeacherKey(ClassError):
    """A teacher key that does not match."""


class TooManyWrongKeys(WrongTeacherKey):
    """Refused without checking: too many wrong keys lately.

    Attributes:
        wait_s: whole seconds until a key is checked again.
    """

    def __init__(self, wait_s: int) -> None:
        self.wait_s = wait_s
        super().__init__(f"Too many wrong keys: wait {wait_s} s.")


class AnswerRefused(ClassError):
    """An answer that does not count: no open question, the question is closed, or an
    option the question does not have."""


class QuestionError(ValueError):
    """A questions file (or a question) that cannot be used; the message names the question,
    the key and what is wrong."""
