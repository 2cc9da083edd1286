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

A live class (issue 22; the people's actions and how they read their screens are in
live_class.py):

- :class:`Teacher` (``fixed_count = 1``) opens the Class page with the teacher key
  (``STUDENTS_TEACHER_KEY``), starts a class, waits until every student has joined, then
  follows the plan (``STUDENTS_CLASS_PLAN``: ``full``, both shipped lessons step by step
  and two questions; ``quick``; ``steps``) and ends the run.
- :class:`FollowingStudent` (weight 9) joins with the code and follows: the poll
  fragment's ``auto_rerun`` is replayed by the engine; a Follower reports each teacher
  change reaching its screen as "follow: teacher to screen"; it answers each question on
  its screen after reading it for 2-6 s.
- :class:`ExploringStudent` (weight 1: 10 % of the students) joins, presses Explore on
  my own and steps through Layers as :class:`LayersStudent` does.

Every poll of a student is reported too ("student: poll", and "student: poll, then
jump" when the teacher's view had changed and the poll reran the app on it). The class's
measurements (``STUDENTS_RESULT``, see :class:`_ClassMeter`): a quiet stretch with only
the polls, then the teacher's plan; the answers sent against the class record's
(the teacher's Export); errors of every kind.

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
import random
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

from bench.students import live_class as lc  # noqa: E402
from bench.students.follow import Follower  # noqa: E402
from bench.students.meter import Window, cpu_s  # noqa: E402
from bench.students.protocol import (  # noqa: E402
    Request,
    RunEnd,
    RunTimeout,
    SessionClosed,
    StreamlitSession,
)

RUN_TIMEOUT_S = 120.0  # one run on a loaded 2-core server; past it the click failed
SETTLE_S = 2.0  # after the last session opened, before the window: its first run's tail
LAG_TICK_S = 0.05  # the generator's wake-up lag is sampled this often in the window
JOIN_TIMEOUT_S = 600.0  # every student seated, on a busy machine
POLLS_ONLY_S = 15.0  # the class's quiet stretch: only the students' polls
# A student reads a question this long before answering ($STUDENTS_READ_S: "low,high").
READ_S = tuple(float(x) for x in (os.environ.get("STUDENTS_READ_S") or "2,6").split(","))


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


def layers_step(user: StreamlitUser) -> None:
    """Press Layers' Next (Prev on the way back from the last step); a click after which
    the page's step did not move is a failure."""
    steps = user.session.widget("layers_step").options
    before = user.session.value("layers_step")[0]
    i = steps.index(before)
    if i == len(steps) - 1:
        user.forward = False
    elif i <= 1:  # "input" is step 0; the page opens at step 1
        user.forward = True
    key, name = ("layers_next", "Next") if user.forward else ("layers_prev", "Prev")

    def moved() -> None:
        now = user.session.value("layers_step")[0]
        assert now != before, f"{name}: the step stayed at {before}"

    user.act(f"Layers: {name}", lambda: user.session.click(key), moved)


class LayersStudent(StreamlitUser):
    """Opens Layers and steps through it: Next every 2-4 s, Prev back from the end."""

    page = "layer-by-layer"
    wait_time = between(2, 4)
    forward = True

    @task
    def step(self) -> None:
        if self.is_open():
            layers_step(self)


# ------------------------------------------------------------------ a live class
BOARD = lc.ClassBoard()
PLAN = lc.PLANS[os.environ.get("STUDENTS_CLASS_PLAN") or "full"]
SESSIONS: list[StreamlitSession] = []  # every class session, for the errors at the end
FOLLOWING: list[StreamlitSession] = []  # the following students' sessions


class ClassStudent(StreamlitUser):
    """A student of the class: waits for the teacher's code, joins with it."""

    abstract = True
    page = lc.CLASS_PAGE
    following = True

    def on_start(self) -> None:
        if not BOARD.opened.wait(JOIN_TIMEOUT_S):
            raise RuntimeError("the teacher started no class")
        self.rng = random.Random()
        self.session = StreamlitSession(self.host, self.page, f"join={BOARD.code}")
        SESSIONS.append(self.session)
        self.session.listeners.append(self._polled)
        if self.following:
            FOLLOWING.append(self.session)
            Follower(self.session, BOARD, lambda _v: BOARD.shown(self.session), self._followed)
        self.seated = lc.join(self.act, self.session, BOARD, self.following)

    def is_open(self) -> bool:
        if self.session.closed.is_set():  # the socket closed: join again (a new seat)
            self.on_start()
        return self.seated and not self.session.closed.is_set()

    def _followed(self, version: int, seconds: float) -> None:
        BOARD.delay(version, seconds)
        self.report("follow: teacher to screen", seconds)

    def _polled(self, session: StreamlitSession, end: RunEnd) -> None:
        # A run that served a poll (an auto-rerun request; Streamlit folds a poll that
        # arrives before a pending run into it) is one poll, and a jump when it reran the
        # app; its time is the earliest poll's.
        polls = [r for r in end.requests if r.auto]
        if polls:
            kind = "student: poll" if end.fragment_ids else "student: poll, then jump"
            CLASS_METER.count(kind)
            self.report(kind, polls[0].latency, sum(r.bytes_received for r in polls))


class FollowingStudent(ClassStudent):
    """Follows the teacher; answers each question when it reaches the screen."""

    weight = 9
    wait_time = between(0.5, 1.0)  # looks at the own screen (no request) this often

    @task
    def answer(self) -> None:
        if self.is_open():
            lc.answer_when_asked(self.act, self.session, BOARD, self.rng, READ_S)


class ExploringStudent(ClassStudent):
    """Explores on their own: Explore on my own, then Layers' Next every 2-4 s."""

    weight = 1
    following = False
    wait_time = between(2, 4)
    forward = True

    def on_start(self) -> None:
        super().on_start()
        if self.seated:
            self.act("student: open Layers", lambda: self.session.goto("layer-by-layer"))

    @task
    def step(self) -> None:
        if self.is_open():
            layers_step(self)


class Teacher(StreamlitUser):
    """Leads the class through the plan, then ends the run (see the module docstring)."""

    fixed_count = 1
    page = lc.CLASS_PAGE
    wait_time = between(1, 1)

    def on_start(self) -> None:
        key = os.environ.get("STUDENTS_TEACHER_KEY", "")
        self.session = StreamlitSession(self.host, self.page, f"teacher={key}&present=1")
        SESSIONS.append(self.session)
        self.act(f"open {self.page}?teacher", self.session.connect, reconnect=False)

    @task
    def lead(self) -> None:
        rng = random.Random()
        runner = self.environment.runner
        try:
            lc.start_class(self.act, self.session, BOARD)
            students = runner.target_user_count - 1
            lc.wait_for(lambda: BOARD.joined >= students, JOIN_TIMEOUT_S, "the students")
            CLASS_METER.polls_only(self.environment)
            lc.lead_lessons(self.act, self.session, BOARD, PLAN, rng)
            record = lc.ask_questions(self.act, self.session, BOARD, PLAN, rng)
            CLASS_METER.finish(self.environment, record)
        except Exception as exc:  # the run cannot go on: say why in the result
            if CLASS_METER.out:
                Path(CLASS_METER.out).write_text(
                    json.dumps({"error": f"the teacher stopped: {exc!r}"}, indent=1) + "\n"
                )
            raise
        finally:
            BOARD.over.set()
            gevent.spawn(runner.quit)
        gevent.sleep(60)


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


class _ClassMeter:
    """The class's measurements (one per Locust process), driven by the teacher: once
    every student has joined, a quiet stretch of ``STUDENTS_POLLS_ONLY_S`` seconds (only
    the polls: the server's CPU per poll), then the teacher's plan in one window (every
    click, jump and poll), then the results to ``STUDENTS_RESULT``. Without
    ``STUDENTS_SERVER_PID`` (a server elsewhere) the CPU figures are left out."""

    def __init__(self) -> None:
        self.server_pid = int(os.environ.get("STUDENTS_SERVER_PID") or 0)
        self.out = os.environ.get("STUDENTS_RESULT") or ""
        self.quiet_s = float(os.environ.get("STUDENTS_POLLS_ONLY_S") or POLLS_ONLY_S)
        self.counts: dict[str, int] = {}
        self.result: dict = {}
        self.window: Window | None = None
        self.lags: list[float] = []

    def count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _window(self) -> Window | None:
        if not self.server_pid:
            return None
        w = Window(self.server_pid, lambda: cpu_s(os.getpid()))
        w.start()
        return w

    def polls_only(self, env: Environment) -> None:
        """The quiet stretch, then open the plan's window."""
        if self.quiet_s:  # no stretch (a test's class): nothing to let settle
            gevent.sleep(SETTLE_S)
        self.counts.clear()
        w = self._window()
        gevent.sleep(self.quiet_s)
        polls = self.counts.get("student: poll", 0)
        if w is not None:
            r = w.stop(polls)
            busy = r["server_cpu_s"] - r["server_training_threads_cpu_s"]
            r["server_cpu_ms_per_poll"] = 1000 * busy / max(1, polls)
            r["jumps"] = self.counts.get("student: poll, then jump", 0)
            self.result["polls_only"] = r
        env.runner.stats.reset_all()
        self.counts.clear()
        self.lags.clear()
        self.watch = gevent.spawn(_Meter._lag, self.lags)
        self.window = self._window()

    def finish(self, env: Environment, record: dict | None) -> None:
        """Wait for the followers to show the teacher's last change, close the window,
        write the results."""
        following = [s for s in FOLLOWING if not s.closed.is_set()]
        last = len(BOARD.changes)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(BOARD.shown(s) < last for s in following):
            gevent.sleep(0.2)
        behind = sum(BOARD.shown(s) < last for s in following)
        self.watch.kill()
        stats = env.runner.stats
        r = self.result
        r["users"] = env.runner.user_count
        r["students"], r["following"] = BOARD.joined, BOARD.following
        r["plan"] = os.environ.get("STUDENTS_CLASS_PLAN") or "full"
        r["requests"] = {e.name: _summary(e) for e in stats.entries.values() if e.num_requests}
        r["student_clicks_ms"] = _merged(stats, ("student: answer", "Layers: "))
        r["teacher_clicks_ms"] = _merged(stats, ("teacher: ",))
        r["follow_ms"] = _spread([d for _, d in BOARD.delays])
        r["follow_by_change"] = [
            {"change": c.label, **_spread([d for v, d in BOARD.delays if v == c.version])}
            for c in BOARD.changes
        ]
        r["answers"] = lc.answers_lost(BOARD.answers, record) if record is not None else None
        r["counts"] = dict(self.counts)
        r["errors"] = {
            "failed_requests": sum(e.num_failures for e in stats.entries.values()),
            "failures": {str(k): v.occurrences for k, v in stats.errors.items()},
            "task_exceptions": [str(e["msg"]) for e in env.runner.exceptions.values()],
            "exceptions_on_screens": sum(len(s.view.exceptions()) for s in SESSIONS),
            "protocol_errors": sum(len(s.protocol_errors) for s in SESSIONS),
            "followers_behind_at_end": behind,
            "not_in_time": list(BOARD.problems),
            # a click still waiting for its run at the end: Locust never hears of it
            "clicks_unfinished": _unfinished(),
        }
        r["errors"]["total"] = (
            r["errors"]["failed_requests"]
            + len(r["errors"]["task_exceptions"])
            + r["errors"]["exceptions_on_screens"]
            + r["errors"]["protocol_errors"]
            + behind
            + len(BOARD.problems)
            + r["errors"]["clicks_unfinished"]
            + (r["answers"]["lost"] + r["answers"]["extra"] if r["answers"] else 0)
        )
        if self.window is not None:
            self._cpu(r, stats)
        self.lags.sort()
        if self.lags:
            r["generator_lag_ms"] = {
                "p50": 1000 * self.lags[len(self.lags) // 2],
                "p95": 1000 * self.lags[int(0.95 * (len(self.lags) - 1))],
                "max": 1000 * self.lags[-1],
            }
        if self.out:
            Path(self.out).write_text(json.dumps(r, indent=1) + "\n")

    def _cpu(self, r: dict, stats) -> None:
        """The window's CPU, and the server's CPU per click or jump: less the trainings'
        threads and the polls (at the quiet stretch's cost per poll)."""
        clicks = r["student_clicks_ms"]["count"] + r["teacher_clicks_ms"]["count"]
        jumps = self.counts.get("student: poll, then jump", 0)
        polls = self.counts.get("student: poll", 0)
        w = self.window.stop(clicks + jumps)
        per_poll = r.get("polls_only", {}).get("server_cpu_ms_per_poll", 0.0)
        rest = w["server_cpu_s"] - w["server_training_threads_cpu_s"] - polls * per_poll / 1000
        w["clicks"], w["jumps"], w["polls"] = clicks, jumps, polls
        w["server_cpu_ms_per_run"] = 1000 * rest / max(1, clicks + jumps)
        r["window"] = w


def _unfinished(older_than: float = 10.0) -> int:
    """Requests other than polls sent more than ``older_than`` seconds ago whose run has
    not finished (a run takes well under that; the last click of a run is younger)."""
    now = time.perf_counter()
    return sum(
        not r.auto and r.finished is None and now - r.sent > older_than
        for s in SESSIONS
        for r in list(s._pending)
    )


def _merged(stats, starts: tuple[str, ...]) -> dict:
    """Locust's entries whose names start so, as one."""
    e = StatsEntry(stats, "+".join(starts), "st")
    for x in stats.entries.values():
        if x.name.startswith(starts):
            e.extend(x)
    return _summary(e)


def _spread(xs: list[float]) -> dict:
    """Count, p50, p95 and max of seconds, in ms (exact, not Locust's rounded buckets)."""
    if not xs:
        return {"count": 0}
    xs = sorted(xs)
    return {
        "count": len(xs),
        "min_ms": 1000 * xs[0],
        "p50_ms": 1000 * xs[len(xs) // 2],
        "p95_ms": 1000 * xs[int(0.95 * (len(xs) - 1))],
        "max_ms": 1000 * xs[-1],
    }


def _summary(e: StatsEntry) -> dict:
    return {
        "count": e.num_requests,
        "failures": e.num_failures,
        "p50_ms": e.get_response_time_percentile(0.5),
        "p95_ms": e.get_response_time_percentile(0.95),
        "max_ms": e.max_response_time,
    }


METER = _Meter()
CLASS_METER = _ClassMeter()


@events.quitting.add_listener
def _no_window(environment: Environment, **_) -> None:
    if METER.server_pid and METER.out and not Path(METER.out).exists():
        # Locust stopped (its -t) before every session had opened: say so in the result.
        Path(METER.out).write_text(
            json.dumps({"error": f"only {METER.opens} sessions opened"}, indent=1) + "\n"
        )
