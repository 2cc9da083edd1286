"""Simulated students (bench/students): Streamlit's websocket protocol against real servers.

On the app (the browser tests' server, tests/e2e/conftest.py): a student opens Layers and
Next moves the step its page shows, each session keeping its own step, and the Locust
user does the same under Locust. On a small Streamlit script of this file's own (a real
``streamlit run``, a second or two to start): a ``run_every`` fragment's ``auto_rerun`` is
replayed, a follower sees a leader's click through its polling fragment, and bad frames
either way are handled (the server closes on a bad BackMsg with 1002; a bad ForwardMsg
is recorded and the session goes on).
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.students.follow import Board, Follower
from bench.students.protocol import FRAGMENT_SUCCESS, SessionClosed, StreamlitSession

ROOT = Path(__file__).resolve().parents[2]
RUN_S = 120  # one run on a busy 2-core machine (cold caches)

TINY_APP = """
import streamlit as st

@st.cache_resource
def board() -> dict:
    return {"version": 0}  # shared by every session, like a class record

b = board()
if st.button("Teacher: next", key="teach"):
    b["version"] += 1
st.markdown(f"teacher at {b['version']}")

@st.fragment(run_every=0.2)
def follow() -> None:
    st.session_state.polls = st.session_state.get("polls", 0) + 1
    st.markdown(f"shows version {b['version']} after {st.session_state.polls} polls")

follow()
"""


def _step_line(s: StreamlitSession) -> str:
    """Layers' step sentence ("**conv1** (encoder, step 1 of 10): ...")."""
    return next(t for t in s.texts() if re.match(r"\*\*\w+\*\* \(.*step \d+ of \d+", t))


def test_next_on_layers_moves_the_step_each_session_its_own(server: str) -> None:
    a = StreamlitSession(server, "layer-by-layer")
    b = StreamlitSession(server, "layer-by-layer")
    try:
        a.connect().wait(RUN_S)
        b.connect().wait(RUN_S)
        steps = a.widget("layers_step").options
        first = a.value("layers_step")[0]
        i = steps.index(first)
        assert _step_line(a).startswith(f"**{first}**")
        assert a.widget("layers_next").fragment_id  # Next lives in Layers' fragment

        for k in (1, 2):
            req = a.click("Next ▶")  # by its label; "layers_next" is its key
            assert req.wait(RUN_S) > 0
            assert req.status == FRAGMENT_SUCCESS  # the fragment reran, not the page
            assert a.value("layers_step") == [steps[i + k]]
            assert _step_line(a).startswith(f"**{steps[i + k]}**")
            assert f"step={steps[i + k]}" in a.query  # the address the server set
        assert b.value("layers_step") == [first]  # another student's page did not move
        b.click("layers_next").wait(RUN_S)
        assert b.value("layers_step") == [steps[i + 1]]
        assert a.protocol_errors == [] and b.protocol_errors == []
        assert a.view.unmodelled == set()  # every widget's state is sent
    finally:
        a.close()
        b.close()


def test_the_locust_user_clicks_through_layers(server: str, tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "bench" / "students" / "locustfile.py"),
            "LayersStudent",
            "--headless",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "5s",
            "--host",
            server,
            "--csv",
            str(prefix),
            "--only-summary",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    with open(f"{prefix}_stats.csv") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    assert int(rows["open layer-by-layer"]["Request Count"]) == 1
    assert int(rows["Layers: Next"]["Request Count"]) >= 1
    assert int(rows["Aggregated"]["Failure Count"]) == 0


def test_a_class_under_locust_follows_a_step_and_answers(server, app_data, tmp_path) -> None:
    """The class scenario of bench/capacity.py --scenario class, cut short (plan "quick"):
    a teacher and two following students; they join with the code, follow the lesson's
    steps, answer the question when it reaches their screens, and the class record (the
    teacher's CSV export) holds exactly the answers they sent."""
    prefix, result = tmp_path / "class", tmp_path / "class.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "bench" / "students" / "locustfile.py"),
            "Teacher",
            "FollowingStudent",
            "--headless",
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "240s",
            "--host",
            server,
            "--csv",
            str(prefix),
            "--only-summary",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "STUDENTS_TEACHER_KEY": app_data["teacher_key"],
            "STUDENTS_CLASS_PLAN": "quick",
            "STUDENTS_POLLS_ONLY_S": "0",
            "STUDENTS_READ_S": "0.2,0.5",
            "STUDENTS_RESULT": str(result),
        },
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    r = json.loads(result.read_text())
    assert "error" not in r, r
    assert (r["students"], r["following"]) == (2, 2)
    assert r["answers"]["sent"] == r["answers"]["recorded"] == 2, r["answers"]
    assert r["answers"]["lost"] == 0 and r["errors"]["total"] == 0, r["errors"]
    # Both students saw every change the teacher made: two lesson steps, the lesson's end,
    # the Class page, the question, its reveal, and the question taken off.
    changes = [c["change"] for c in r["follow_by_change"]]
    assert changes[:2] == ["lesson step 1", "lesson step 2"] and len(changes) == 7, changes
    assert all(c["count"] == 2 for c in r["follow_by_change"]), r["follow_by_change"]
    assert 0 < r["follow_ms"]["p50_ms"] < 60_000
    with open(f"{prefix}_stats.csv") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(rows["student: answer"]["Request Count"]) == 2
    assert int(rows["student: poll"]["Request Count"]) > 0


# ------------------------------------------------------------------ a small script
@pytest.fixture(scope="module")
def tiny_app(tmp_path_factory) -> Iterator[str]:
    """TINY_APP served by ``streamlit run`` (Streamlit's default settings) on a free port."""
    folder = tmp_path_factory.mktemp("tiny_app")
    (folder / "tiny.py").write_text(TINY_APP)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open(folder / "streamlit.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "tiny.py",
                "--server.headless=true",
                f"--server.port={port}",
                "--server.address=127.0.0.1",
                "--browser.gatherUsageStats=false",
                "--server.fileWatcherType=none",
            ],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"streamlit did not start: {(folder / 'streamlit.log').read_text()}"
                    )
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _polls(view) -> int:
    found = [re.search(r"after (\d+) polls", t) for t in view.texts()]
    return max((int(m.group(1)) for m in found if m), default=0)


def _version(view) -> int | None:
    found = [re.search(r"shows version (\d+)", t) for t in view.texts()]
    return next((int(m.group(1)) for m in found if m), None)


def test_auto_rerun_fragments_are_replayed(tiny_app: str) -> None:
    s = StreamlitSession(tiny_app)
    try:
        s.connect().wait(30)
        assert list(s.auto_rerun_fragments.values()) == [pytest.approx(0.2)]
        # The server sends the fragment again on every run; the timers stay one.
        s.wait_until(lambda v: _polls(v) >= 4, timeout=30)
        assert len(s.auto_rerun_fragments) == 1
    finally:
        s.close()
    assert s.auto_rerun_fragments == {}


def test_a_follower_sees_the_leaders_click_through_its_poll(tiny_app: str) -> None:
    teacher, students = StreamlitSession(tiny_app), [StreamlitSession(tiny_app) for _ in range(2)]
    board, seen = Board(), []
    try:
        teacher.connect().wait(30)
        for s in students:
            Follower(s, board, _version, lambda v, d: seen.append((v, d)))
            s.connect().wait(30)
        now = _version(teacher.view)
        for s in students:  # each has taken the version shown on joining
            s.wait_until(lambda v: _version(v) == now, timeout=30)
        req = teacher.click("teach")
        board.post(now + 1, req.sent)
        req.wait(30)
        for s in students:
            s.wait_until(lambda v: _version(v) == now + 1, timeout=30)
        assert sorted(v for v, _ in seen) == [now + 1, now + 1]
        assert all(0 < d < 30 for _, d in seen)
    finally:
        for s in [teacher, *students]:
            s.close()


def test_a_bad_backmsg_closes_the_socket_with_1002(tiny_app: str) -> None:
    s = StreamlitSession(tiny_app)
    s.connect().wait(30)
    s.send_raw(b"\xff\xff\xff not a BackMsg")
    assert s.closed.wait(10)
    assert s.closed_code == 1002  # starlette_websocket.py: a protocol error
    with pytest.raises(SessionClosed, match="1002"):
        s.rerun()
    assert s.auto_rerun_fragments == {}  # no timer goes on sending into a closed socket
    s.close()


def test_a_bad_forwardmsg_is_recorded_and_the_session_goes_on(tiny_app: str) -> None:
    s = StreamlitSession(tiny_app)
    try:
        s.connect().wait(30)
        s.handle_frame(b"\x0a\xff\xff\xff")  # a truncated field: not a ForwardMsg
        assert len(s.protocol_errors) == 1 and "undecodable" in s.protocol_errors[0]
        before = _polls(s.view)
        s.wait_until(lambda v: _polls(v) > before, timeout=30)  # still reading its socket
        assert s.click("teach").wait(30) > 0
    finally:
        s.close()
