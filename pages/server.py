"""Once per server process (not a page): torch threads and a cheaper garbage collection.

Streamlit runs ``gc.collect(2)`` after every script run (``runner.postScriptGC``). With
torch, plotly and pandas loaded, that full collection walks about a million objects:
measured on the server process with a real browser, it was half of a Layers click's CPU
(about 190 of 400 ms). The config turns it off, and a daemon thread here collects fully
every ``GC_EVERY_S`` seconds instead, only when scripts ran since the last collection,
so the memory that cyclic garbage holds is still given back (bench/classroom.py's soak
checks it) at about 1/100 of the CPU.
"""

from __future__ import annotations

import gc
import threading
import time

from convae.train import configure_threads

GC_EVERY_S = 20.0

_runs = 0
_lock = threading.Lock()


def count_run() -> None:
    """Called by app.py on every script run."""
    global _runs
    with _lock:
        _runs += 1


def _collector() -> None:
    seen = 0
    while True:
        time.sleep(GC_EVERY_S)
        if _runs != seen:
            seen = _runs
            gc.collect()


def setup_process() -> int:
    """Threads for torch (one per core) and the periodic collector; returns the threads."""
    # pandas imported once here: imported first by two session threads at once, plotly
    # saw a half-initialised module ("partially initialized module 'pandas'").
    import pandas  # noqa: F401

    threading.Thread(target=_collector, name="convae-gc", daemon=True).start()
    return configure_threads()
