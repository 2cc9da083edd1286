"""The browser tests' own instrument: App.act waits for the script runs that
conftest._RUN_COUNTER counts from the app's websocket messages. Checked here on
ForwardMsgs built with the installed Streamlit's protobuf classes, so a Streamlit upgrade
that moves the field the counter reads fails this test, not as 90 s waits for runs all
over the suite."""

from __future__ import annotations

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from .conftest import _RUN_COUNTER


def _frames() -> tuple[list[list[int]], int]:
    """One run's messages as the server sends them, a run stopped for a rerun, and a
    fragment's run; returns the frames (bytes as lists) and the runs they finish."""
    status = ForwardMsg.ScriptFinishedStatus
    msgs = []
    start = ForwardMsg()
    start.new_session.page_script_hash = "ab" * 16
    start.metadata.run.script_run_id = "run-1"
    msgs.append(start)
    running = ForwardMsg()
    running.session_status_changed.script_is_running = True
    msgs.append(running)
    delta = ForwardMsg()
    delta.metadata.delta_path[:] = [0, 300, 2]  # multi-byte varints before the field
    delta.delta.new_element.markdown.body = "x" * 200  # a long length-delimited field
    msgs.append(delta)
    counted = 0
    for code, counts in (
        (status.FINISHED_EARLY_FOR_RERUN, False),  # another run follows at once
        (status.FINISHED_SUCCESSFULLY, True),
        (status.FINISHED_FRAGMENT_RUN_SUCCESSFULLY, True),
        (status.FINISHED_WITH_COMPILE_ERROR, True),
    ):
        done = ForwardMsg()
        done.metadata.run.script_run_id = "run-1"
        done.script_finished = code
        msgs.append(done)
        counted += counts
    return [list(m.SerializeToString()) for m in msgs], counted


@pytest.mark.e2e
def test_the_run_counter_counts_each_finished_run_once(browser):
    frames, runs = _frames()
    context = browser.new_context()
    page = context.new_page()
    page.add_script_tag(content=_RUN_COUNTER)
    counted = page.evaluate(
        """(frames) => new Promise((resolve) => {
            // never connects; the counter listens from a microtask after construction
            const ws = new WebSocket('ws://127.0.0.1:9');
            queueMicrotask(() => {
                for (const f of frames) {
                    ws.dispatchEvent(new MessageEvent('message', {data: new Uint8Array(f).buffer}));
                }
                resolve(window.__stRuns);
            });
        })""",
        frames,
    )
    context.close()
    assert counted == runs == 3
