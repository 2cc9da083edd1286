"""The server-wide training queue (convae/training_queue.py) with real threads, and the thread
settings a training runs under (training_resources)."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest
import torch

from convae.training_queue import (
    LIMIT_ENV,
    TicketCancelled,
    TrainingQueue,
    TrainingResources,
    default_limit,
    env_nice,
    ordinal,
    set_thread_num_threads,
    training_queue,
    training_resources,
    usable_cores,
)


def _in_thread(fn, *args) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def _until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


# ------------------------------------------------------------------ limit and order


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_never_more_than_limit_run_at_once_and_every_caller_runs(limit):
    q = TrainingQueue(limit)
    lock = threading.Lock()
    now, peak, done = [0], [0], []

    def train(k: int) -> None:
        with q.ticket(f"s{k}") as t:
            assert t.wait(timeout=20)
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            time.sleep(0.03)
            with lock:
                now[0] -= 1
        done.append(k)

    threads = [_in_thread(train, k) for k in range(8)]
    for t in threads:
        t.join(30)
    assert sorted(done) == list(range(8))
    assert peak[0] == limit  # reached, never passed
    assert q.snapshot() == {"limit": limit, "running": [], "waiting": []}


def test_slots_go_in_order_of_arrival_and_positions_count_down():
    q = TrainingQueue(1)
    first = q.ticket("a")
    assert first.running and first.position() == 0
    line = [q.ticket(name) for name in "bcde"]
    assert [t.position() for t in line] == [1, 2, 3, 4]
    assert q.snapshot()["waiting"] == list("bcde")

    granted: list[str] = []

    def waiter(t) -> None:
        assert t.wait(timeout=20)
        granted.append(t.label)
        time.sleep(0.02)
        t.release()

    # Start the waiters in reverse order: the slots must still go b, c, d, e.
    threads = [_in_thread(waiter, t) for t in reversed(line)]
    time.sleep(0.1)
    assert granted == []  # "a" still holds the only slot
    first.release()
    assert [t.position() for t in line][1:] in ([1, 2, 3], [0, 1, 2], [0, 0, 1], [0, 0, 0])
    for t in threads:
        t.join(20)
    assert granted == list("bcde")
    assert all(t.state == "done" for t in [first, *line])


def test_a_waiting_caller_reads_its_place_in_line_as_it_moves_up():
    q = TrainingQueue(1)
    holders = [q.ticket(f"h{k}") for k in range(3)]  # h0 runs, h1 and h2 wait
    seen: list[int] = []

    def student() -> None:
        with q.ticket("me") as t:
            while not t.wait(timeout=0.01):
                if not seen or seen[-1] != t.position():
                    seen.append(t.position())
            seen.append(t.position())

    th = _in_thread(student)
    _until(lambda: seen == [3])
    # One release at a time, each once the caller has read its place: a fixed sleep
    # between releases let a busy machine run two releases before the caller looked
    # (it then read [3, 0]).
    for h, place in zip(holders, (2, 1, 0), strict=True):
        h.release()
        _until(lambda place=place: seen[-1] == place)
    th.join(10)
    assert seen == [3, 2, 1, 0]


def test_wait_times_out_with_false_and_keeps_the_place():
    q = TrainingQueue(1)
    a = q.ticket("a")
    b = q.ticket("b")
    t0 = time.monotonic()
    assert b.wait(timeout=0.2) is False
    assert 0.15 < time.monotonic() - t0 < 2
    assert b.position() == 1 and b.state == "waiting"
    a.release()
    assert b.wait(timeout=0) is True


# ------------------------------------------------------------------ cancel and release


def test_cancel_leaves_the_line_and_the_ones_behind_move_up():
    q = TrainingQueue(1)
    q.ticket("a")
    b, c, d = q.ticket("b"), q.ticket("c"), q.ticket("d")
    assert c.cancel() is True
    assert (b.position(), c.position(), d.position()) == (1, 0, 2)
    assert c.state == "cancelled"
    with pytest.raises(TicketCancelled):
        c.wait(timeout=1)
    assert c.cancel() is False  # twice is harmless
    assert q.snapshot()["waiting"] == ["b", "d"]


def test_cancel_from_another_thread_wakes_a_blocked_wait_at_once():
    q = TrainingQueue(1)
    q.ticket("holder")
    t = q.ticket("waiter")
    outcome: list[object] = []

    def wait_forever() -> None:
        try:
            outcome.append(t.wait())  # no timeout
        except TicketCancelled as exc:
            outcome.append(exc)

    th = _in_thread(wait_forever)
    time.sleep(0.1)
    t0 = time.monotonic()
    t.cancel()
    th.join(5)
    assert isinstance(outcome[0], TicketCancelled)
    assert time.monotonic() - t0 < 0.5  # woken by the cancel, not by a poll


def test_cancel_does_not_free_a_running_slot_only_release_does():
    """A cancel that crosses a granted slot must not let a second training start while
    the first still runs: only its own thread, leaving the with block, frees it."""
    q = TrainingQueue(1)
    a, b = q.ticket("a"), q.ticket("b")
    assert a.running and not b.running
    assert a.cancel() is False
    assert a.running and b.wait(timeout=0.1) is False
    a.release()
    assert b.wait(timeout=1) and a.state == "done"


def test_an_exception_inside_the_with_block_frees_the_slot():
    q = TrainingQueue(1)
    with pytest.raises(ZeroDivisionError), q.ticket("a") as t:
        assert t.wait(1)
        1 / 0  # noqa: B018 - a training that crashes
    assert t.state == "done"
    assert q.ticket("b").running


def test_leaving_the_with_block_while_still_waiting_gives_up_the_place():
    q = TrainingQueue(1)
    q.ticket("holder")
    with q.ticket("b") as b:
        assert b.position() == 1
    assert b.state == "done" and q.snapshot()["waiting"] == []


@pytest.mark.parametrize("which", ["RerunException", "StopException"])
def test_streamlits_rerun_and_stop_exceptions_free_the_slot(which):
    """What a click does to a running script: Streamlit raises one of these at the next
    st.* call, e.g. inside fit()'s callback. They are not Exception subclasses to be
    caught by mistake; the slot must be freed anyway."""
    from streamlit.runtime.scriptrunner_utils import exceptions as stx

    exc_type = getattr(stx, which)
    q = TrainingQueue(1)
    with pytest.raises(exc_type), q.ticket("a") as t:
        assert t.wait(1)
        raise exc_type(None) if which == "RerunException" else exc_type()
    assert t.state == "done" and q.ticket("b").running


def _rerun_mid_training(source: str) -> None:
    """An AppTest script: a real fit() inside a queue slot whose callback calls
    st.rerun() on the first step (as a click during a training does), then, on the rerun,
    shows what the process-wide queue holds."""
    import streamlit as st

    from convae.data import load_dataset
    from convae.train import TrainConfig, fit
    from convae.training_queue import training_queue, training_resources

    st.session_state.setdefault("runs", 0)
    st.session_state.runs += 1
    q = training_queue()
    if st.session_state.runs == 1:
        data = load_dataset(source)

        def callback(ev) -> bool:
            st.session_state.steps = ev.step
            st.rerun()  # raises Streamlit's RerunException inside fit()
            return False

        with q.ticket("apptest") as t:
            t.wait(5)
            with training_resources():
                fit(TrainConfig(epochs=1, batch_size=8, warmup_steps=1), data, callback)
    snap = q.snapshot()
    st.write(f"runs={st.session_state.runs} running={len(snap['running'])}")


def test_a_rerun_raised_in_fits_callback_in_a_streamlit_script_frees_the_slot(tiny_data):
    from streamlit.testing.v1 import AppTest

    source = tiny_data.source
    at = AppTest.from_function(_rerun_mid_training, args=(source,), default_timeout=60)
    at.run()
    assert not at.exception
    assert at.session_state["steps"] == 1  # the rerun came from inside the training
    assert at.markdown[0].value == "runs=2 running=0"
    with training_queue().ticket("next") as t:  # released: the queue is the process's
        assert t.running


def test_a_ticket_whose_thread_ended_without_releasing_loses_its_slot():
    q = TrainingQueue(1)
    lost: list = []

    def crash_without_with() -> None:
        t = q.ticket("lost")  # no `with`: never released
        t.wait(1)
        lost.append(t)

    th = _in_thread(crash_without_with)
    th.join(5)
    assert lost[0].running  # still marked, its thread gone
    nxt = q.ticket("next")
    assert nxt.wait(timeout=3)
    assert lost[0].state == "done"


def test_many_threads_hammering_the_queue_keep_its_invariants():
    q = TrainingQueue(2)
    lock = threading.Lock()
    now, peak, errors = [0], [0], []
    finished = [0]

    def student(k: int) -> None:
        rng = random.Random(k)
        try:
            for _ in range(15):
                with q.ticket(f"s{k}") as t:
                    if rng.random() < 0.3:
                        continue  # gave up while waiting (or right after getting in)
                    if rng.random() < 0.2:
                        threading.Timer(rng.random() * 0.01, t.cancel).start()
                    try:
                        if not t.wait(timeout=rng.random() * 0.05):
                            continue
                    except TicketCancelled:
                        continue
                    with lock:
                        now[0] += 1
                        peak[0] = max(peak[0], now[0])
                    time.sleep(rng.random() * 0.003)
                    with lock:
                        now[0] -= 1
            with lock:
                finished[0] += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [_in_thread(student, k) for k in range(16)]
    for t in threads:
        t.join(60)
    assert not errors
    assert finished[0] == 16
    assert 1 <= peak[0] <= 2
    time.sleep(0.05)  # the cancel timers
    assert q.snapshot() == {"limit": 2, "running": [], "waiting": []}


# ------------------------------------------------------------------ the limit


def test_default_limit_is_one_per_two_cores_or_the_environment_variable():
    assert default_limit({}) == max(1, usable_cores() // 2)
    assert default_limit({LIMIT_ENV: "3"}) == 3
    assert default_limit({LIMIT_ENV: " 1 "}) == 1


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5"])
def test_a_bad_limit_says_what_was_read_and_what_to_set(raw):
    with pytest.raises(ValueError) as err:
        default_limit({LIMIT_ENV: raw})
    msg = str(err.value)
    assert LIMIT_ENV in msg and repr(raw) in msg and ">= 1" in msg
    with pytest.raises(ValueError):
        TrainingQueue(0)


def test_ordinal_for_the_place_in_line():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "101st",
        "111th",
    ]


# ------------------------------------------------------------------ training_resources


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_training_resources_set_this_thread_only_and_restore_afterwards():
    torch.set_num_threads(2)
    seen: dict[str, int] = {}
    inside, leave = threading.Event(), threading.Event()

    def trainer() -> None:
        before_nice = _nice()
        torch.get_num_threads()
        with training_resources(threads=1, nice=5) as got:
            assert got.threads == 1 and got.nice == 5
            seen["threads inside"] = torch.get_num_threads()
            seen["nice inside"] = _nice() - before_nice
            inside.set()
            leave.wait(5)
        seen["threads after"] = torch.get_num_threads()
        seen["nice after"] = _nice() - before_nice

    def viewer_started_meanwhile() -> None:
        seen["new thread's threads"] = torch.get_num_threads()
        seen["new thread's nice"] = _nice()

    main_nice = _nice()
    t = _in_thread(trainer)
    inside.wait(5)
    v = _in_thread(viewer_started_meanwhile)
    v.join(5)
    seen["main nice meanwhile"] = _nice()
    leave.set()
    t.join(5)
    assert seen["threads inside"] == 1 and seen["nice inside"] == 5
    # The viewer thread started during the training keeps the server's thread count
    # (torch.set_num_threads(1) in the trainer would have given it 1) and its priority.
    assert seen["new thread's threads"] == 2
    assert seen["new thread's nice"] == main_nice == seen["main nice meanwhile"]
    assert seen["threads after"] == 2
    if os.geteuid() == 0:  # lowering a nice value back needs CAP_SYS_NICE
        assert seen["nice after"] == 0


def test_training_nice_comes_from_the_environment_and_a_bad_value_is_refused(monkeypatch):
    monkeypatch.delenv("CONVAE_TRAINING_NICE", raising=False)
    assert env_nice() == TrainingResources.nice == 10
    monkeypatch.setenv("CONVAE_TRAINING_NICE", "0")
    got: list = []
    t = _in_thread(lambda: got.append(_enter(training_resources(threads=1))))
    t.join(5)
    assert got == [TrainingResources(threads=1, nice=0)]
    for bad in ("high", "20", "-1"):
        monkeypatch.setenv("CONVAE_TRAINING_NICE", bad)
        with pytest.raises(ValueError, match=r"CONVAE_TRAINING_NICE .* 0 to 19, got"):
            env_nice()


def _enter(cm):
    with cm as value:
        return value


def test_training_resources_restore_the_thread_count_after_an_exception():
    def trainer(out: list) -> None:
        set_thread_num_threads(2)
        try:
            with training_resources(threads=1, nice=0):
                raise KeyError("boom")
        except KeyError:
            out.append(torch.get_num_threads())

    out: list = []
    t = _in_thread(trainer, out)
    t.join(5)
    assert out == [2]


def test_the_per_thread_setting_is_what_the_convolutions_use():
    """Count the threads that did the work of a convolution loop (CPU ticks per thread
    from /proc): one with threads=1 even though the process default is two."""
    torch.set_num_threads(2)
    x = torch.rand(128, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(16, 16, 3, padding=1).to(memory_format=torch.channels_last)

    def ticks() -> dict[str, int]:
        out = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                f = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[tid] = int(f[11]) + int(f[12])
        return out

    result: dict[int, int] = {}

    def work(n: int) -> None:
        with training_resources(threads=n, nice=0), torch.no_grad():
            conv(x)
            before = ticks()
            for _ in range(60):
                conv(x)
            after = ticks()
        spent = sorted((after[k] - before.get(k, 0) for k in after), reverse=True)
        result[n] = sum(1 for d in spent if d > 0.2 * spent[0])

    for n in (1, 2):
        t = _in_thread(work, n)
        t.join(60)
    if usable_cores() < 2:
        pytest.skip("one core: OpenMP runs one thread either way")
    assert result == {1: 1, 2: 2}
