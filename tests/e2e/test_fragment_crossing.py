"""A fragment's rerun crossing a full run, in real Chromium (issue 21: the Class page once
lost its Reveal / Export row under the live tally).

Streamlit 1.67: when a fragment's rerun is asked for while a full run is going, it starts
the moment that run ends, and the server drops the full run's messages for the fragment
that it has not sent yet, while still telling the browser the full run finished. The
browser then removes the fragment's block as stale, the elements after it move up one
place, and the fragment's rerun draws over the next one. ``pages.glue.draw.fragment`` puts
every fragment of the app in a container of its own, so that nothing else can move.

The crossing is made on purpose here, on a small script beside the app: the test sends
the fragment's timed rerun itself (the message its timer sends) while the full run sleeps,
and the script keeps the server's event loop busy (as sending other sessions' pictures
does on a loaded machine) from just before the fragment until after the run, so the
fragment's part of that run is still unsent when the fragment's rerun starts. Both kinds
are checked: ``st.fragment`` loses the row after it (the cause, shown), ``draw.fragment``
keeps it.
"""

from __future__ import annotations

import sys

import pytest
from playwright.sync_api import expect
from streamlit.proto.BackMsg_pb2 import BackMsg

from .conftest import ROOT, Person, people_on, running_app

SCRIPT = """
import time

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from pages.glue import draw

make = draw.fragment if st.query_params.get("kind") == "draw" else st.fragment
st.title("A full run and a fragment's rerun, crossing")
go = st.button("Go", key="go")
if go:
    st.session_state.runs = st.session_state.get("runs", 0) + 1
    # In the sidebar: a line drawn before the fragment in the main part would move it,
    # and a fragment's id depends on where it is drawn.
    st.sidebar.caption(f"Full run {st.session_state.runs} is going")
    time.sleep(2)  # the test asks for the fragment's rerun now: it waits for this run
    # The server's event loop busy from here until after this run ends (private API: a
    # test's stand-in for a loop that is sending other sessions' pictures).
    Runtime.instance()._get_async_objs().eventloop.call_soon_threadsafe(time.sleep, 1)


@make(run_every=600)  # its own timer never fires here: the test sends its message
def tally():
    own = bool(get_script_run_ctx().fragment_ids_this_run)
    st.markdown(f"The live tally, drawn by {'its own rerun' if own else 'the full run'}")


tally()
c1, c2 = st.columns(2)
c1.button("Take it off", key="off")
c2.button("Export", key="export")
st.success("The right answer")
"""


@pytest.fixture(scope="module")
def crossing_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crossing")
    (folder / "crossing.py").write_text(SCRIPT, encoding="utf-8")
    launcher = [sys.executable, "-m", "streamlit", "run", str(folder / "crossing.py")]
    with running_app({"PYTHONPATH": str(ROOT)}, folder / "streamlit.log", launcher) as url:
        yield url


@pytest.fixture
def person(browser, crossing_server, request):
    """A maker of browser contexts on the script (screenshot and run log on a failure)."""
    yield from people_on(browser, crossing_server, request)


def _timed_rerun(p: Person) -> list[int]:
    """The message the fragment's timer sends (a timed rerun of it), as bytes."""
    msgs = p.messages()
    msg = BackMsg()
    msg.rerun_script.fragment_id = [
        m.auto_rerun.fragment_id for m in msgs if m.WhichOneof("type") == "auto_rerun"
    ][-1]
    msg.rerun_script.is_auto_rerun = True
    msg.rerun_script.page_script_hash = next(
        m.new_session.page_script_hash for m in msgs if m.WhichOneof("type") == "new_session"
    )
    return list(msg.SerializeToString())


def _crossed(msgs: list) -> bool:
    """Whether the last full run ended without its fragment part and the fragment's rerun
    started right after it (the crossing this test makes)."""
    kinds = [
        ("frag" if m.delta.fragment_id else "delta")
        if m.WhichOneof("type") == "delta"
        else ("fragment run" if m.metadata.run.fragment_ids else "full run")
        if m.WhichOneof("type") == "new_session"
        else m.WhichOneof("type")
        for m in msgs
    ]
    start = len(kinds) - 1 - kinds[::-1].index("full run")
    run = kinds[start:]
    end = run.index("script_finished")
    return "frag" not in run[:end] and "fragment run" in run[end : end + 3]


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["st", "draw"])
def test_a_fragment_rerun_crossing_a_full_run(person, kind):
    p = person()
    p.open("", f"kind={kind}")
    before = p.runs()
    p.page.get_by_role("button", name="Go").click()
    p.sees("Full run 1 is going", timeout=30_000)
    p.page.evaluate("b => window.__stSockets.at(-1).send(new Uint8Array(b))", _timed_rerun(p))
    # The full run, then the fragment's rerun: two runs finished.
    p.page.wait_for_function("n => window.__stRuns >= n + 2", arg=before, timeout=60_000)
    assert _crossed(p.messages()), "the crossing did not happen: the test proves nothing"
    expect(p.main.get_by_text("The live tally, drawn by its own rerun")).to_have_count(1)
    export = p.main.get_by_role("button", name="Export")
    if kind == "st":  # Streamlit's own fragment: the row after it is drawn over
        main = p.main.inner_text()
        assert export.count() == 0, f"Streamlit no longer loses the row (draw.fragment): {main}"
        assert main.index("The live tally") < main.index("The right answer"), main
    else:  # ours: nothing after the fragment moves
        expect(export).to_be_visible()
        expect(p.main.get_by_role("button", name="Take it off")).to_be_visible()
    p.no_exception()
