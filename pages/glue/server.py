"""Once per server process (not a page): torch threads and a cheaper garbage collection.

Streamlit runs ``gc.collect(2)`` after every script run (``runner.postScriptGC``). With
torch, plotly and pandas loaded, that full collection walks about a million objects:
measured on the server process with a real browser, it was half of a Layers click's CPU
(about 190 of 400 ms). The config turns it off, and a daemon thread here collects fully
every ``GC_EVERY_S`` seconds instead, only when scripts ran since the last collection,
so the memory that cyclic garbage holds is still given back (bench/classroom.py's soak
checks it) at about 1/100 of the CPU.

That full collection still walked every object of the imported libraries: 170 ms on an
idle core for the libraries alone, in which no other thread of the server runs (it holds
the GIL), so every click that arrived meanwhile waited (py-spy on Layers clicks,
2026-11-26: 30 % of the server's samples). So the process freezes its
objects twice, the way long-running servers do (``gc.freeze``): once the libraries are
imported, and after its first collection, when the pages' modules are loaded and the
caches warm. Frozen objects are never walked again; Python's automatic collections and
this thread walk only what came later (sessions, their models, cache entries); right
after the freeze a full collection took under 0.1 ms. What the first sessions hold at
that moment is frozen too:
freed normally when its reference count drops, but a reference cycle in it stays (it
is a few sessions, once).
"""

from __future__ import annotations

import gc
import threading
import time

from convae.train import configure_threads

GC_EVERY_S = 20.0

_runs = 0
_started = False  # the collector runs and the libraries are frozen
_lock = threading.Lock()


def count_run() -> None:
    """Called by app.py on every script run."""
    global _runs
    with _lock:
        _runs += 1


def _collector() -> None:
    seen = 0
    frozen = False
    while True:
        time.sleep(GC_EVERY_S)
        if _runs != seen:
            seen = _runs
            gc.collect()
            if not frozen:  # the pages' modules are loaded now: stop walking them
                gc.freeze()
                frozen = True


def setup_process() -> int:
    """Threads for torch (one per core) and the periodic collector; returns the threads."""
    # pandas imported once here: imported first by two session threads at once, plotly
    # saw a half-initialised module ("partially initialized module 'pandas'").
    import pandas  # noqa: F401

    global _started
    with _lock:  # once per process, also when a test clears Streamlit's caches
        if not _started:
            _started = True
            gc.collect()
            gc.freeze()  # the libraries' objects: never garbage, never walked again
            threading.Thread(target=_collector, name="convae-gc", daemon=True).start()
    return configure_threads()
