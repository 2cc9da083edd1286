"""The teacher key: who may lead a class, proved the way a notebook server's token is.

The server makes one key when it starts (192 random bits, URL-safe) unless
``CONVAE_TEACHER_KEY`` gives one, and prints it; ``serve.py`` passes the same key to every
replica through that variable. A teacher types it once; :meth:`TeacherKey.verify` turns
it into a :class:`TeacherToken`, the capability every teacher call of
:class:`~convae.classroom.service.ClassService` asks for. The token carries an HMAC of a
random id under the key, so a token made up by hand (or carried over from a server with
another key) is refused, and a token is valid on every replica sharing the key.

The key is never logged: the objects holding it print as ``TeacherKey(<hidden>)`` and
``TeacherToken(<hidden>)``, and no error message repeats a candidate key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import WrongTeacherKey
from .ratelimit import WrongKeyLimiter

KEY_ENV = "CONVAE_TEACHER_KEY"
KEY_BYTES = 24  # 192 bits of secrets.token_urlsafe: 32 URL-safe characters
MIN_KEY_CHARS = 16  # a key set by hand: at least 16 URL-safe characters (96 bits if random)
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
WRONG_KEY = (
    "That is not the teacher key. The server prints it when it starts (or it was set "
    f"with {KEY_ENV})."
)


@dataclass(frozen=True)
class TeacherToken:
    """Proof that the holder entered the teacher key: only :meth:`TeacherKey.verify` makes
    a valid one. Keep it in the teacher's session; it never goes to a browser."""

    token_id: str = field(repr=False)
    mac: str = field(repr=False)

    def __repr__(self) -> str:
        return "TeacherToken(<hidden>)"


class TeacherKey:
    """The key itself, hidden from repr and str.

    Args:
        value: the key, at least 16 characters of A-Z, a-z, 0-9, '-' and '_' (it may go in
            the printed link, so it must be URL-safe).
        generated: whether it was made here (the server then prints it).
        limiter: the limit on wrong keys (default: 5 a minute per session, 30 per process).

    Raises:
        ValueError: a key that is too short or not URL-safe.
    """

    def __init__(
        self, value: str, generated: bool = False, limiter: WrongKeyLimiter | None = None
    ) -> None:
        if len(value) < MIN_KEY_CHARS or not _URL_SAFE.fullmatch(value):
            raise ValueError(
                f"{KEY_ENV} must be at least {MIN_KEY_CHARS} characters of A-Z, a-z, 0-9, "
                "'-' and '_' (it goes into the teacher's link); unset it to get a random one"
            )
        self._value = value.encode()
        self.generated = generated
        self._limiter = limiter if limiter is not None else WrongKeyLimiter()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TeacherKey:
        """The key from ``CONVAE_TEACHER_KEY``, or a new random one when it is unset or empty.

        Raises:
            ValueError: the variable holds a key that is too short or not URL-safe.
        """
        env = os.environ if environ is None else environ
        given = env.get(KEY_ENV, "").strip()
        if given:
            return cls(given)
        return cls(secrets.token_urlsafe(KEY_BYTES), generated=True)

    def __repr__(self) -> str:
        return "TeacherKey(<hidden>)"

    __str__ = __repr__

    def reveal(self) -> str:
        """The key as text: only for printing it once at start and passing it to replicas."""
        return self._value.decode()

    def _mac(self, token_id: str) -> str:
        return hmac.new(
            self._value, b"convae-teacher:" + token_id.encode(), hashlib.sha256
        ).hexdigest()

    def verify(self, candidate: str, session: str = "") -> TeacherToken:
        """A teacher token for the right key.

        Args:
            candidate: what the person typed (surrounding spaces are ignored).
            session: the browser session's id, for the per-session limit on wrong keys.

        Returns:
            A new :class:`TeacherToken`.

        Raises:
            TooManyWrongKeys: too many wrong keys lately; refused without checking.
            WrongTeacherKey: the key does not match.
        """
        self._limiter.check(session)
        given = str(candidate).strip().encode()
        # compare_digest: the time taken does not depend on how much of the key matched.
        if not given or not hmac.compare_digest(given, self._value):
            self._limiter.failed(session)
            raise WrongTeacherKey(WRONG_KEY)
        self._limiter.succeeded(session)
        token_id = secrets.token_urlsafe(16)
        return TeacherToken(token_id, self._mac(token_id))

    def check(self, token: object) -> bool:
        """Whether ``token`` is a :class:`TeacherToken` this key made (any replica's)."""
        if not isinstance(token, TeacherToken):
            return False
        if not isinstance(token.token_id, str) or not isinstance(token.mac, str):
            return False
        return hmac.compare_digest(token.mac.encode(), self._mac(token.token_id).encode())


_lock = threading.Lock()
_process_key: TeacherKey | None = None


def process_key() -> TeacherKey:
    """This process's key, read from ``CONVAE_TEACHER_KEY`` or made on the first call."""
    global _process_key
    with _lock:
        if _process_key is None:
            _process_key = TeacherKey.from_env()
        return _process_key


def teacher_key() -> str:
    """This process's teacher key as text, for the server to print at start and to pass to
    its replicas in ``CONVAE_TEACHER_KEY``."""
    return process_key().reveal()


def verify(candidate: str, session: str = "") -> TeacherToken:
    """:meth:`TeacherKey.verify` with this process's key."""
    return process_key().verify(candidate, session)
