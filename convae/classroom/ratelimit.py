"""A sliding-window limit on wrong teacher keys, per browser session and per process.

Guessing a 128-bit key is hopeless anyway; the limit is there so that a class full of
curious students cannot hammer the check, and so that a wrong key costs time. After
``per_session`` wrong keys within ``window_s`` seconds from one session, or
``per_process`` from all sessions of this process together, a key is refused without
being checked until the oldest of those failures leaves the window.

The per-process limit is the one a student could trip for everybody (by opening many
sessions); it is set higher than the per-session one, and the teacher normally enters the
key once, before the class starts, and keeps the token for the whole class.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import TooManyWrongKeys

PER_SESSION = 5  # wrong keys a minute from one browser session
PER_PROCESS = 30  # ... from all sessions of this process together
WINDOW_S = 60.0


class WrongKeyLimiter:
    """Counts wrong keys per session and per process in a sliding window.

    Args:
        per_session: wrong keys allowed per session within the window.
        per_process: wrong keys allowed for the whole process within the window.
        window_s: the window's length in seconds.
        clock: a monotonic clock in seconds (tests pass their own).
    """

    def __init__(
        self,
        per_session: int = PER_SESSION,
        per_process: int = PER_PROCESS,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = (per_session, per_process)
        self._window = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, deque[float]] = {}
        self._process: deque[float] = deque()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self._window:
            times.popleft()

    def check(self, session: str) -> None:
        """Raise :class:`TooManyWrongKeys` when ``session`` (or the process) is over its
        limit; otherwise return, and the caller may check the key.

        Raises:
            TooManyWrongKeys: with the whole seconds to wait.
        """
        now = self._clock()
        with self._lock:
            mine = self._sessions.get(session, deque())
            self._trim(mine, now)
            self._trim(self._process, now)
            waits = [
                times[-limit] + self._window - now
                for times, limit in zip((mine, self._process), self._limits, strict=True)
                if len(times) >= limit
            ]
        if waits:
            raise TooManyWrongKeys(max(1, math.ceil(max(waits))))

    def failed(self, session: str) -> None:
        """Count one wrong key for ``session`` and for the process."""
        now = self._clock()
        with self._lock:
            mine = self._sessions.setdefault(session, deque())
            self._trim(mine, now)
            mine.append(now)
            self._process.append(now)
            # Forget sessions whose failures have all left the window (no growth over time).
            for sid in [s for s, t in self._sessions.items() if t and t[-1] <= now - self._window]:
                del self._sessions[sid]

    def succeeded(self, session: str) -> None:
        """A right key: this session's count starts again (the process's stays)."""
        with self._lock:
            self._sessions.pop(session, None)
