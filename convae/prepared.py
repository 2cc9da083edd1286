"""Which data sources this process has decoded, and why the others failed.

The app decodes a source once per process (the first CIFAR-10 decode takes seconds and
shows a progress bar); every session after that gets the cached uint8 tensors. A failure
is remembered too, so a missing data set does not retry a download on every click, until
someone asks to retry. Thread-safe: Streamlit runs each session in its own thread, and two
sessions starting together must decode once, not twice.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .data import DataNotFoundError, DataSet, ProgressFn, load_dataset


class PreparedSources:
    """A per-process registry of prepared (decoded and cached) data sources."""

    def __init__(self) -> None:
        self._ready: set[tuple[str, str]] = set()
        self._failed: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def prepare(
        self, source: str, root: str | Path, progress: ProgressFn | None = None
    ) -> str | None:
        """Decode ``source`` once (later calls return at once).

        Returns:
            None when the source is ready, else the loader's message saying what is
            missing and how to get it.
        """
        key = (source, str(root))
        if key in self._ready:
            return None
        if key in self._failed:
            return self._failed[key]
        with self._lock:
            if key in self._ready:
                return None
            try:
                load_dataset(source, root=root, progress=progress)
            except (DataNotFoundError, ValueError, OSError) as exc:
                self._failed[key] = str(exc)
                return self._failed[key]
            self._ready.add(key)
        return None

    def ready(self, source: str, root: str | Path) -> bool:
        return (source, str(root)) in self._ready

    def problem(self, source: str, root: str | Path) -> str | None:
        return self._failed.get((source, str(root)))

    def forget(self, source: str, root: str | Path) -> None:
        """Forget a failure, so the next :meth:`prepare` tries again."""
        self._failed.pop((source, str(root)), None)

    def load(self, source: str, root: str | Path) -> DataSet:
        """The prepared source (a ~10 ms memory map of the cache)."""
        return load_dataset(source, root=root)
