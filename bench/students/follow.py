"""Following a leader: how long from one session's click to another session's screen
showing what it changed.

Streamlit has no way for one session to rerun another (streamlit issue #2838), so a
follower's page polls: an ``st.fragment(run_every=...)`` reads a shared version number
and redraws when it moved. The engine replays those polls as the browser does
(``auto_rerun``, see protocol.py); this module only keeps the clock. The leader
:meth:`Board.post`\\ s each change with the time it sent the click; a :class:`Follower`,
attached to one session, looks at the page after every finished run and reports, once
per change, the delay from the leader's click to the end of the first run whose page
shows it. Both clocks are ``time.perf_counter()`` of one process: leader and followers
must run in the same process (Locust's default, one process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from bench.students.protocol import RunEnd, StreamlitSession
from bench.students.view import View


class Board:
    """The leader's changes: version -> when the click that made it was sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.changes: dict[int, float] = {}

    def post(self, version: int, sent_at: float) -> None:
        """Record that the click sent at ``sent_at`` (perf_counter) made ``version``."""
        with self._lock:
            self.changes.setdefault(version, sent_at)

    def sent_at(self, version: int) -> float | None:
        with self._lock:
            return self.changes.get(version)


class Follower:
    """Watches one session's page for the leader's changes.

    Args:
        session: the follower's session (its listeners get one more).
        board: where the leader posts its changes.
        shown_version: reads the version the page shows (None when it shows none).
        report: called once per change seen, with the version and the delay in seconds.
    """

    def __init__(
        self,
        session: StreamlitSession,
        board: Board,
        shown_version: Callable[[View], int | None],
        report: Callable[[int, float], None],
    ) -> None:
        self.board, self.shown_version, self.report = board, shown_version, report
        self.seen = -1
        session.listeners.append(self._on_run)

    def _on_run(self, session: StreamlitSession, end: RunEnd) -> None:
        # Called by the session's reader after the run's messages are applied; only the
        # reader changes the view, so reading it here needs no lock.
        version = self.shown_version(session.view)
        if version is None or version <= self.seen:
            return
        if self.seen < 0:  # the version shown on joining: nothing to time
            self.seen = version
            return
        for v in range(self.seen + 1, version + 1):
            sent = self.board.sent_at(v)
            if sent is not None:
                self.report(v, end.at - sent)
        self.seen = version
