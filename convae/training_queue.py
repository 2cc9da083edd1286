"""A server-wide training queue: at most ``limit`` trainings run at once, the rest wait in
line (first come, first served), each can read its place and give it up.

One Streamlit server serves a whole class, and every session's script runs in its own
thread of the one process. A CIFAR-10 training takes every core it is given, so two
trainings at once on a 2-core server each run several times slower and starve the
students who are only looking (issue 10: 28 s instead of 4 s, viewers' p95 11 s). The
queue makes trainings take turns; ``training_resources`` (below) keeps the one that runs
from crowding out the viewers.

Usage, in the thread that trains::

    with training_queue().ticket() as ticket:
        while not ticket.wait(timeout=0.5):    # False: still waiting
            show(f"You are {ordinal(ticket.position())} in line")
        with training_resources():
            fit(...)
    # the slot is free again here, whatever happened inside (an exception, or Streamlit's
    # rerun/stop exception raised at an st.* call: a Cancel or Stop click)

A slot is handed to the first ticket in line by whoever frees it, under the queue's lock,
so the order is strict and positions are exact. A ticket whose thread ended without
leaving the line (a crash that skipped ``with``) is dropped when the queue next looks, so
a lost thread cannot hold a slot for ever.

The limit: ``$CONVAE_MAX_TRAININGS`` if set, else one training per two cores (at least
one), cores being those this process may run on.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

LIMIT_ENV = "CONVAE_MAX_TRAININGS"


class TicketCancelled(RuntimeError):
    """Raised by ``Ticket.wait`` when the ticket was cancelled (by anyone) before it got
    a slot, so a waiting loop cannot spin for ever."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_limit(env: dict[str, str] | None = None) -> int:
    """How many trainings may run at once: ``$CONVAE_MAX_TRAININGS``, else one per two
    cores, at least one.

    Args:
        env: the environment to read (default ``os.environ``).

    Returns:
        The limit, >= 1.

    Raises:
        ValueError: the variable is set but is not a whole number >= 1 (the message says
            what was read and what to set).
    """
    env = os.environ if env is None else env
    raw = env.get(LIMIT_ENV, "").strip()
    if not raw:
        # One per two cores: a training uses one core well (tiny convolutions, see
        # training_resources) and the other core stays for the students who are viewing.
        return max(1, usable_cores() // 2)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"{LIMIT_ENV}={raw!r} is not a number of trainings: set it to a whole number "
            f">= 1 (e.g. {LIMIT_ENV}=2) or unset it for one per two cores"
        )
    return value


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd': for 'you are 2nd in line'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Ticket:
    """One caller's place in a ``TrainingQueue``: waiting, then running, then done.

    Made by ``TrainingQueue.ticket()``, which puts it at the end of the line at once.
    Use it as a context manager: leaving the ``with`` block (normally or by any
    exception) gives up its place or its slot.
    """

    def __init__(self, queue: TrainingQueue, number: int, label: str) -> None:
        self._queue = queue
        self.number = number  # increasing per queue: the order of arrival
        self.label = label  # who asked (for a server log or an admin view)
        self.owner = threading.current_thread()
        self.state = "waiting"  # -> "running" -> "done", or "waiting" -> "cancelled"
        self.created = time.monotonic()
        self.started: float | None = None  # when it got its slot

    # -- reading
    def position(self) -> int:
        """1-based place in line while waiting ("you are 2nd in line" is 2); 0 once it
        holds a slot or has left the line."""
        return self._queue._position(self)

    @property
    def running(self) -> bool:
        """True while this ticket holds a slot."""
        return self.state == "running"

    def waited(self) -> float:
        """Seconds spent in line (so far, or until it got its slot)."""
        end = self.started if self.started is not None else time.monotonic()
        return end - self.created

    # -- acting
    def wait(self, timeout: float | None = None) -> bool:
        """Block until this ticket holds a slot, at most ``timeout`` seconds.

        Args:
            timeout: seconds to wait; None waits for as long as it takes. A page waits a
                little at a time so that it can redraw the position and so that a click
                (Cancel, Stop, any widget) reaches it at its next st.* call.

        Returns:
            True when the ticket holds a slot (also when it already did), False when the
            timeout passed first.

        Raises:
            TicketCancelled: the ticket was cancelled or released before it got a slot.
        """
        return self._queue._wait(self, timeout)

    def cancel(self) -> bool:
        """Leave the line. Safe to call more than once and from any thread.

        Returns:
            True when the ticket left the line (a ``wait`` in progress raises
            ``TicketCancelled``); False when it already holds a slot or is done. A running
            ticket is not freed by cancel: its training is still using the CPU until its
            own thread stops it and leaves the ``with`` block (``release``), so the limit
            holds even when a cancel and a granted slot cross.
        """
        return self._queue._leave(self, "cancelled", running_too=False)

    def release(self) -> None:
        """Free the slot, or leave the line if still waiting. Called on leaving ``with``."""
        self._queue._leave(self, "done", running_too=True)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Ticket(#{self.number} {self.label!r} {self.state})"


class TrainingQueue:
    """At most ``limit`` tickets run at once; the others wait in order of arrival.

    Thread-safe: every change happens under one lock, and freeing a slot hands it to the
    first ticket in line at once (the waiter's thread only has to notice).

    Args:
        limit: trainings allowed at once, >= 1 (``default_limit()`` for the server's).
    """

    def __init__(self, limit: int) -> None:
        if int(limit) < 1:
            raise ValueError(f"a training queue needs a limit >= 1, got {limit}")
        self.limit = int(limit)
        self._cond = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._running: list[Ticket] = []
        self._numbers = itertools.count(1)

    def ticket(self, label: str = "") -> Ticket:
        """Join the end of the line; the ticket gets a slot at once if one is free.

        Args:
            label: who is asking (shown in ``snapshot()``), e.g. a session id.

        Returns:
            The new Ticket (use it in a ``with`` block).
        """
        with self._cond:
            t = Ticket(self, next(self._numbers), label)
            self._waiting.append(t)
            self._grant()
            return t

    def snapshot(self) -> dict:
        """What the queue holds now: ``{"limit", "running": [labels], "waiting": [labels]}``
        (waiting in order), for a status line such as '1 training running, 3 waiting'."""
        with self._cond:
            self._drop_orphans()
            return {
                "limit": self.limit,
                "running": [t.label for t in self._running],
                "waiting": [t.label for t in self._waiting],
            }

    # -- internals, all called with the lock held (or taking it)
    def _drop_orphans(self) -> None:
        # A ticket whose thread has ended can never release it: drop it rather than let it
        # hold a slot (or block the line) until the server restarts.
        for t in [t for t in self._running if not t.owner.is_alive()]:
            self._running.remove(t)
            t.state = "done"
        for t in [t for t in self._waiting if not t.owner.is_alive()]:
            self._waiting.remove(t)
            t.state = "cancelled"

    def _grant(self) -> None:
        self._drop_orphans()
        granted = False
        while self._waiting and len(self._running) < self.limit:
            t = self._waiting.popleft()
            t.state, t.started = "running", time.monotonic()
            self._running.append(t)
            granted = True
        if granted:
            self._cond.notify_all()

    def _position(self, t: Ticket) -> int:
        with self._cond:
            if t.state != "waiting":
                return 0
            self._drop_orphans()
            try:
                return self._waiting.index(t) + 1
            except ValueError:  # dropped just now
                return 0

    def _wait(self, t: Ticket, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if t.state == "running":
                    return True
                if t.state != "waiting":
                    raise TicketCancelled(f"training ticket #{t.number} was {t.state}")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                # Wake at least once a second to drop orphans even if nobody notifies.
                self._cond.wait(1.0 if left is None else min(left, 1.0))
                self._grant()

    def _leave(self, t: Ticket, how: str, running_too: bool) -> bool:
        with self._cond:
            if t.state == "running" and running_too:
                self._running.remove(t)
                t.state = "done"
            elif t.state == "waiting":
                with contextlib.suppress(ValueError):
                    self._waiting.remove(t)
                t.state = how
            else:
                return False
            self._grant()
            self._cond.notify_all()  # a cancelled waiter must stop waiting
            return True


_QUEUE: TrainingQueue | None = None
_QUEUE_LOCK = threading.Lock()


def training_queue() -> TrainingQueue:
    """The process-wide queue (one per server), made on first use with ``default_limit()``.

    Raises:
        ValueError: ``$CONVAE_MAX_TRAININGS`` is set to something that is not a limit.
    """
    global _QUEUE
    with _QUEUE_LOCK:
        if _QUEUE is None:
            _QUEUE = TrainingQueue(default_limit())
        return _QUEUE


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class TrainingResources:
    """How a training inside a server thread shares the machine with the viewers.

    Defaults measured on the 2-core development server (bench/train_priority.py, results
    in bench/results/train_priority.json): one intra-op thread per training (the queue's
    one-per-two-cores leaves the other core to the viewers; the tiny convolutions here
    gain little from a second thread) and nice 10 on the training thread only, so the
    viewers' script threads in the same process win the CPU when both want it.
    """

    threads: int = 1  # torch intra-op (OpenMP) threads for this thread's work only
    nice: int = 10  # added to this thread's nice value (0..19 is "lower priority")


@functools.cache
def _libgomp() -> ctypes.CDLL | None:
    # torch ships its own libgomp and has it loaded already; opening the same file gives
    # the same library instance, whose omp_set_num_threads sets the calling thread's ICV.
    libdir = Path(torch.__file__).parent / "lib"
    for cand in sorted(libdir.glob("libgomp*.so*")):
        with contextlib.suppress(OSError):
            return ctypes.CDLL(str(cand))
    name = ctypes.util.find_library("gomp")
    if name:
        with contextlib.suppress(OSError):
            return ctypes.CDLL(name)
    return None


@functools.cache
def _uses_openmp() -> bool:
    return "ATen parallel backend: OpenMP" in torch.__config__.parallel_info()


def thread_num_threads() -> int:
    """The intra-op thread count that torch's CPU ops started from the calling thread
    use (its own OpenMP setting: each thread has one)."""
    return torch.get_num_threads()


def set_thread_num_threads(n: int) -> bool:
    """Set the intra-op thread count for torch work started from the calling thread only.

    ``torch.set_num_threads`` is process-wide in effect: it sets the calling thread's
    OpenMP setting and also the value every thread that has not yet run a parallel op
    copies on its first one, and Streamlit starts a fresh thread for each session's run.
    Called from a training thread it would quietly give later viewers' runs one thread
    too, and restoring it races with other trainings. This sets only the calling
    thread's OpenMP setting (``omp_set_num_threads`` of the libgomp torch uses), after
    torch has made its own per-thread first-use setting, so it sticks.

    Args:
        n: threads, >= 1.

    Returns:
        True when set for this thread alone; False when no OpenMP library was found (then
        nothing is changed: torch's own setting stays).
    """
    torch.get_num_threads()  # torch's per-thread lazy init runs now, not after us
    lib = _libgomp() if _uses_openmp() else None
    if lib is None:
        return False
    lib.omp_set_num_threads(ctypes.c_int(int(n)))
    return True


def _thread_nice() -> int:
    # On Linux a thread is a task: PRIO_PROCESS with its native id reads/sets that
    # thread alone (man 2 setpriority, NOTES).
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def env_nice() -> int:
    """The nice increment for trainings: ``CONVAE_TRAINING_NICE`` (0..19) when set,
    else ``TrainingResources.nice``."""
    raw = os.environ.get("CONVAE_TRAINING_NICE", "").strip()
    if not raw:
        return TrainingResources.nice
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 19:
        raise ValueError(
            f"CONVAE_TRAINING_NICE must be a whole number from 0 to 19, got {raw!r}: "
            "unset it for the default (10), or 0 to train at the viewers' priority"
        )
    return value


@contextlib.contextmanager
def training_resources(
    threads: int | None = None, nice: int | None = None
) -> Iterator[TrainingResources]:
    """Run a training in the calling thread with few threads and a lower priority, and
    put both back afterwards (also on an exception, e.g. Streamlit's rerun exception).

    Args:
        threads: intra-op threads for this thread (default ``TrainingResources.threads``).
        nice: how much to raise this thread's nice value (default
            ``TrainingResources.nice``); 0 leaves it.

    Yields:
        The settings in effect.

    Raising a nice value is always allowed; lowering it back needs CAP_SYS_NICE or an
    RLIMIT_NICE allowance. Without them the thread keeps the higher nice value until it
    ends, which in Streamlit is when its session has no more reruns queued; the priority
    of other threads is never touched.
    """
    if nice is None:
        nice = env_nice()
    want = TrainingResources(
        threads=TrainingResources.threads if threads is None else max(1, int(threads)),
        nice=max(0, int(nice)),
    )
    old_threads = thread_num_threads()
    set_thread_num_threads(want.threads)
    old_nice = None
    if want.nice and hasattr(os, "setpriority"):
        try:
            old_nice = _thread_nice()
            os.setpriority(
                os.PRIO_PROCESS, threading.get_native_id(), min(19, old_nice + want.nice)
            )
        except OSError:
            old_nice = None
    try:
        yield want
    finally:
        set_thread_num_threads(old_threads)
        if old_nice is not None:
            with contextlib.suppress(OSError):  # EPERM without CAP_SYS_NICE, see above
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), old_nice)
