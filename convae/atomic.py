"""Atomic file writes: a whole new file or the old one, never half of either.

Every file the app writes for later (checkpoints, the decoded data cache, the PCA cache,
the code-space cache) goes through :func:`write_atomic`: the content is written to a temp
file in the same folder, flushed to disk (fsync), renamed over the target (``os.replace``
is atomic on POSIX and Windows), and then the folder itself is flushed, so a crash, a kill
or a power cut at any moment leaves either the old file or the complete new one.

A writer killed mid-write cannot remove its own temp file (up to 184 MB for the CIFAR-10
data cache), so every write first removes the temp files of dead writers in its folder.
A live writer, in this process or another, holds an exclusive ``flock`` on its temp file
until the rename; the kernel drops the lock when the process dies, however it dies, so a
temp file nobody holds is an orphan. Only files named exactly as this module names its
temp files are ever touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

try:  # POSIX; elsewhere orphaned temp files are simply left (see remove_orphans)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

# The temp files write_atomic makes: ".<name>." + mkstemp's 8 random characters (a-z, 0-9,
# _) + ".tmp". Only files of exactly this form are ever cleaned up.
TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temp file, which replaces ``path``.

    The folder is created when missing, temp files orphaned by killed writers in it are
    removed first, the temp file is fsynced before the rename and the folder after it.
    The new file is readable by everyone (0644), like a plain ``open(path, "wb")`` file
    under the usual umask, since checkpoints and caches are shared between users.

    Args:
        path: the file to write.
        write: fills the open binary file it is given (e.g. ``lambda f: torch.save(x, f)``);
            it must not close it.

    Raises:
        OSError, or whatever ``write`` raises (``torch.save`` reports a full disk as
        RuntimeError): the previous file at ``path`` is then untouched and the temp file
        is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)
    fd, tmp = _locked_temp_file(path)
    f = os.fdopen(fd, "wb")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        write(f)
        f.flush()
        os.fsync(f.fileno())
        # Renamed while the lock is still held: until then a cleaner must see it as live.
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        f.close()  # releases the lock
    _fsync_folder(path.parent)


def save_or_notice(path: Path, obj: Any, what: str, fallback: str) -> str:
    """``torch.save(obj)`` to ``path`` atomically, or one line saying why it could not be.

    For caches: the caller still holds ``obj``, so a failed write (a read-only data root,
    a full disk, a file where the folder should be) costs only the next computation.

    Args:
        path: the file to write (its folder is created when missing).
        obj: what to save (tensors, dicts, lists of them).
        what: the notice's subject, e.g. "The data cache".
        fallback: the notice's end, what happens instead, e.g. "the result is used from
            memory."

    Returns:
        "" when written, else "<what> could not be written to <folder> (<error type>:
        <first 160 characters of the error>); <fallback>", on one line.
    """
    try:
        write_atomic(path, lambda f: torch.save(obj, f))
        return ""
    # torch.save reports a full disk or a file it cannot open as RuntimeError (its C++
    # zip writer), not OSError; either way the object itself is fine.
    except (OSError, RuntimeError) as exc:
        why = " ".join(str(exc).split())[:160]
        return (
            f"{what} could not be written to {Path(path).parent} "
            f"({type(exc).__name__}: {why}); {fallback}"
        )


def _locked_temp_file(path: Path) -> tuple[int, str]:
    """A new temp file beside ``path``, open and exclusively locked (flock) by this writer.

    Between mkstemp and flock a cleaner may have taken the lock and removed the file: the
    name then no longer leads to our file, and we start again with a new one.
    """
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a cleaner is looking at it
        try:
            if os.path.samestat(os.stat(tmp), os.fstat(fd)):
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_orphans(folder: Path) -> None:
    """Remove the temp files of earlier writes in ``folder`` whose writer is gone (killed).

    A file we can lock without waiting has no writer. The name is checked again under the
    lock: a writer may have renamed the file in between, and then the name leads elsewhere
    (or nowhere) and nothing is removed.
    """
    if fcntl is None:
        return
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not TEMP_NAME.fullmatch(entry.name):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # gone already, a link, or not ours to read
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if stat.S_ISREG(os.fstat(fd).st_mode) and os.path.samestat(
                os.stat(entry.path, follow_symlinks=False), os.fstat(fd)
            ):
                os.unlink(entry.path)
        except OSError:  # BlockingIOError: a live writer holds it; or it went meanwhile
            pass
        finally:
            os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Flush the folder's entries: os.replace changed only the directory, and without
    this a power cut may bring back the old entry though the new file's data is synced."""
    # Some file systems (and all of Windows) cannot open or fsync a directory; the file
    # itself is synced already, so that only loses the rename's durability there.
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
