"""Simulated students for Locust: each User is one browser session on the app, spoken in
Streamlit's websocket protocol (protocol.py), so a class of 40 costs the machine little.

Run (``bench/capacity.py`` does it for you, with the server and the measurements)::

    locust -f bench/students/locustfile.py LayersStudent --headless -u 10 -r 2 \\
        -t 2m --host http://127.0.0.1:8501 --csv bench/results/students

Every action is a Locust request: its name says what was clicked, its response time is
from sending the ``rerun_script`` to the ``script_finished`` of the run that served it
(Locust's percentiles and CSV). A session's opening is a request named ``open <page>``.

Users:

- :class:`LayersStudent` opens Layers and presses Next every 2-4 s (Prev on the way back
  from the last step): the button ``layers_next`` / ``layers_prev`` in Layers' step
  fragment (pages/layers.py), so each click reruns that fragment only. A click after which
  the page's step (the ``layers_step`` select_slider the server sets) did not move is a
  failure.

A class (teacher, following students, questions; issue 22) plugs in as more subclasses of
:class:`StreamlitUser`, without touching the engine:

- ``Teacher(StreamlitUser)`` with ``fixed_count = 1``: opens the app with the teacher key
  in ``query``, steps through a lesson with ``self.act("teacher: next", lambda:
  self.session.click(KEY))`` and posts each change on a module-level
  :class:`~bench.students.follow.Board` (``board.post(version, request.sent)``).
- ``FollowingStudent(StreamlitUser)``: joins with the class code in ``query``; its page's
  polling fragment sends ``auto_rerun``, which the engine replays on its interval; a
  :class:`~bench.students.follow.Follower` on its session reports each change as a Locust
  request "follow: teacher to screen" (``self.report``); answers are
  ``self.act("answer", lambda: self.session.set_value(KEY, option))``, and the answers
  lost are the answers sent less those the class record holds at the end.
- the 10 % exploring on their own: a ``weight`` on a user like LayersStudent.

Measurement window (``bench/capacity.py`` sets these environment variables): with
``STUDENTS_SERVER_PID``, once every user has opened its session, Locust's statistics are
reset, the server's and this process's CPU time are read (meter.py), and after
``STUDENTS_WINDOW_S`` seconds they are read again and written as JSON to
``STUDENTS_RESULT`` with the window's percentiles and the generator's own wake-up lag,
and Locust stops.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gevent
from locust import User, between, events, task
from locust.env import Environment
from locust.stats import StatsEntry

# Locust puts this file's folder on sys.path, not the repo's root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.students.meter import Window, cpu_s  # noqa: E402
from bench.students.protocol import (  # noqa: E402
    Request,
    RunTimeout,
    SessionClosed,
    StreamlitSession,
)

RUN_TIMEOUT_S = 120.0  # one run on a loaded 2-core server; past it the click failed
SETTLE_S = 2.0  # after the last session opened, before the window: its first run's tail
LAG_TICK_S = 0.05  # the generator's wake-up lag is sampled this often in the window


class StreamlitUser(User):
    """One browser session on the app. Subclasses set ``page`` / ``query`` and tasks."""

    abstract = True
    page = ""  # the URL path opened ("" = the default page)
    query = ""  # the URL's query string, without "?"

    def on_start(self) -> None:
        self.session = StreamlitSession(self.host, self.page, self.query)
        opened = self.act(f"open {self.page or '/'}", self.session.connect, reconnect=False)
        if opened is not None:
            METER.opened(self.environment)

    def on_stop(self) -> None:
        self.session.close()

    def is_open(self) -> bool:
        """Whether the session is usable; when its opening failed, try once more now."""
        if self.session.closed.is_set():
            self.on_start()
        return not self.session.closed.is_set()

    def act(
        self,
        name: str,
        send: Callable[[], Request],
        check: Callable[[], None] | None = None,
        reconnect: bool = True,
    ) -> Request | None:
        """Send one request, wait for its run, report it to Locust.

        Args:
            name: the request's name in Locust's statistics.
            send: sends it (a session method returning its Request).
            check: called after the run; an AssertionError it raises is a failure.
            reconnect: when the socket closed, open a new session (as the browser
                reconnects); off for the opening itself, which the next task retries.

        Returns:
            The finished request, or None when it failed (reported as a failure).
        """
        t0 = time.perf_counter()
        req, error = None, None
        try:
            req = send()
            req.wait(RUN_TIMEOUT_S)
            if check is not None:
                check()
        except (SessionClosed, RunTimeout, LookupError, RuntimeError, AssertionError) as exc:
            error = exc
        took = req.latency if req is not None and req.finished else time.perf_counter() - t0
        self.report(name, took, req.bytes_received if req else 0, error)
        if reconnect and isinstance(error, SessionClosed):
            self.session.close()
            self.on_start()  # the browser reconnects too (a new session here)
        return None if error else req

    def report(self, name: str, seconds: float, size: int = 0, error: Exception | None = None):
        """One Locust request (also for timings measured elsewhere, e.g. following)."""
        self.environment.events.request.fire(
            request_type="st",
            name=name,
            response_time=1000 * seconds,
            response_length=size,
            exception=error,
            context={},
        )


class LayersStudent(StreamlitUser):
    """Opens Layers and steps through it: Next every 2-4 s, Prev back from the end."""

    page = "layer-by-layer"
    wait_time = between(2, 4)
    forward = True

    @task
    def step(self) -> None:
        if not self.is_open():
            return
        steps = self.session.widget("layers_step").options
        before = self.session.value("layers_step")[0]
        i = steps.index(before)
        if i == len(steps) - 1:
            self.forward = False
        elif i <= 1:  # "input" is step 0; the page opens at step 1
            self.forward = True
        key, name = ("layers_next", "Next") if self.forward else ("layers_prev", "Prev")

        def moved() -> None:
            now = self.session.value("layers_step")[0]
            assert now != before, f"{name}: the step stayed at {before}"

        self.act(f"Layers: {name}", lambda: self.session.click(key), moved)


class _Meter:
    """The steady-state window (see the module docstring); one per Locust process."""

    def __init__(self) -> None:
        self.opens = 0
        self.window: Window | None = None
        self.server_pid = int(os.environ.get("STUDENTS_SERVER_PID") or 0)
        self.seconds = float(os.environ.get("STUDENTS_WINDOW_S") or 60)
        self.out = os.environ.get("STUDENTS_RESULT") or ""

    def opened(self, env: Environment) -> None:
        self.opens += 1
        if self.server_pid and self.window is None and self.opens >= env.runner.target_user_count:
            self.window = Window(self.server_pid, lambda: cpu_s(os.getpid()))
            gevent.spawn(self._run, env)

    def _run(self, env: Environment) -> None:
        gevent.sleep(SETTLE_S)
        env.runner.stats.reset_all()
        self.window.start()
        lags: list[float] = []
        watch = gevent.spawn(self._lag, lags)
        gevent.sleep(self.seconds)
        watch.kill()
        stats = env.runner.stats
        clicks = StatsEntry(stats, "clicks", "st")  # every request but sessions opening
        for e in stats.entries.values():
            if not e.name.startswith("open "):
                clicks.extend(e)
        result = self.window.stop(clicks.num_requests)
        result["users"] = env.runner.user_count
        result["clicks_ms"] = _summary(clicks)
        result["requests"] = {e.name: _summary(e) for e in stats.entries.values() if e.num_requests}
        result["failures"] = {str(k): v.occurrences for k, v in stats.errors.items()}
        lags.sort()
        result["generator_lag_ms"] = {
            "p50": 1000 * lags[len(lags) // 2],
            "p95": 1000 * lags[int(0.95 * (len(lags) - 1))],
            "max": 1000 * lags[-1],
        }
        if self.out:
            Path(self.out).write_text(json.dumps(result, indent=1) + "\n")
        env.runner.quit()

    @staticmethod
    def _lag(lags: list[float]) -> None:
        """How late this process wakes up (a 50 ms sleep's overshoot): a click's latency
        includes it, so on a loaded machine (Locust runs niced) it says how much of a
        latency is the generator's own waiting rather than the server's."""
        while True:
            t = time.perf_counter()
            gevent.sleep(LAG_TICK_S)
            lags.append(time.perf_counter() - t - LAG_TICK_S)


def _summary(e: StatsEntry) -> dict:
    return {
        "count": e.num_requests,
        "failures": e.num_failures,
        "p50_ms": e.get_response_time_percentile(0.5),
        "p95_ms": e.get_response_time_percentile(0.95),
        "max_ms": e.max_response_time,
    }


METER = _Meter()


@events.quitting.add_listener
def _no_window(environment: Environment, **_) -> None:
    if METER.server_pid and METER.out and not Path(METER.out).exists():
        # Locust stopped (its -t) before every session had opened: say so in the result.
        Path(METER.out).write_text(
            json.dumps({"error": f"only {METER.opens} sessions opened"}, indent=1) + "\n"
        )
