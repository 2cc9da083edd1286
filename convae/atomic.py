"""Write a file so that readers see the old content or the new, never half of it.

Every cache shared by the server's sessions (and by several servers on one data root) is
written through :func:`write_atomic`: a temporary file in the same folder, flushed to
disk, then ``os.replace`` over the target (atomic on POSIX within one file system). A
crash or a full disk mid-write leaves the old file as it was and no temporary behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(f)`` on a temporary file, then move it into place.

    Args:
        path: the file to (re)write; its folder is created when missing.
        write: writes the whole content to the open binary file it is given
            (e.g. ``lambda f: torch.save(blob, f)``).

    Raises:
        OSError, RuntimeError: whatever creating, writing or moving raised (torch.save
            reports some write failures as RuntimeError); the temporary file is removed
            first, and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name per writer: two sessions of one process may write the same file.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a data root may be shared by users
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # BaseException too: a Streamlit stop or a KeyboardInterrupt mid-write must not
        # leave a temporary file behind.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
