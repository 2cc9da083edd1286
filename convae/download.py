"""Download a full data set into the data root, with progress, when the machine is online.

``download_source("cifar10", root, progress)`` streams torchvision's official archive for
that data set (the same URL and md5 torchvision's ``CIFAR10`` / ``FashionMNIST`` / ``MNIST``
use), reports ``progress(done_bytes, total_bytes, text)`` as it goes, checks the md5, and
unpacks it where ``convae.data.load_dataset`` then finds it. Everything is written under a
temporary folder in the data root and moved into place only when complete, so a failed or
interrupted download leaves nothing behind that could pass for data.

``is_online(host)`` is a quick probe (a TCP connection with a short timeout, remembered for
a minute) so that a page can decide whether to offer a download at all.

The app could let torchvision download by itself (``download=True``), as ``load_dataset``
does when it is allowed to; this module exists for what that does not give: byte-level
progress for a progress bar, one clear error when offline, and no half-written files.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from urllib.parse import urlsplit

from .data import FULL_SOURCE_FILES, DataNotFoundError, ProgressFn, available_full_source, data_root

CHUNK = 1 << 20  # bytes per read: a progress update every MB (about 170 for CIFAR-10)
ONLINE_TTL_S = 60.0  # how long an is_online() answer is reused


class DownloadError(DataNotFoundError):
    """A download failed: no network, an HTTP error, a broken transfer or a bad md5.

    The data set is still not on disk, hence a DataNotFoundError; the message is one line
    that says what went wrong and what to do.
    """


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set's official download."""

    url: str
    md5: str  # the checksum torchvision publishes for it


@dataclass(frozen=True)
class DownloadSpec:
    """Where a source's files come from and how they become what load_dataset reads."""

    files: tuple[RemoteFile, ...]
    # "tar": one .tar.gz unpacked into the data root (CIFAR-10: cifar-10-batches-py/);
    # "gunzip": each .gz decompressed into ``folder`` (MNIST-style idx files).
    unpack: str
    folder: str  # the folder under the data root that the files end up in


def official_spec(name: str) -> DownloadSpec:
    """torchvision's download (URLs and md5s) for a source.

    Args:
        name: "cifar10", "fashion-mnist" or "mnist".

    Raises:
        ValueError: a source that has no download (samples, folders, unknown names).
    """
    from torchvision import datasets

    if name == "cifar10":
        c = datasets.CIFAR10
        return DownloadSpec((RemoteFile(c.url, c.tgz_md5),), "tar", c.base_folder)
    if name in ("fashion-mnist", "mnist"):
        c = datasets.FashionMNIST if name == "fashion-mnist" else datasets.MNIST
        # torchvision tries its mirrors in turn; the first is the canonical one.
        files = tuple(RemoteFile(c.mirrors[0] + f, md5) for f, md5 in c.resources)
        return DownloadSpec(files, "gunzip", f"{c.__name__}/raw")
    raise ValueError(
        f"no download for data source {name!r}: only cifar10, fashion-mnist and mnist "
        "can be downloaded (the samples ship with the code; a folder is yours)"
    )


def source_host(name: str) -> str:
    """The host a source downloads from (what :func:`is_online` should probe)."""
    return urlsplit(official_spec(name).files[0].url).hostname or ""


# Answers of is_online, (host, port) -> (time, answer): a page asks on every rerun, and
# a probe of an unreachable host costs its whole timeout.
_ONLINE: dict[tuple[str, int], tuple[float, bool]] = {}
_ONLINE_LOCK = threading.Lock()


def is_online(host: str = "www.cs.toronto.edu", timeout: float = 1.5, port: int = 443) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    The answer is remembered for a minute per host and port. Returns False without
    probing when ``$CONVAE_OFFLINE`` is set (tests and offline set-ups).

    Args:
        host: host name or address to reach.
        timeout: seconds to wait, name lookup included (a hung DNS lookup counts as
            offline: the probe runs in a thread that is not waited for past the timeout).
        port: TCP port (443: the downloads are HTTPS).

    Returns:
        True when the connection opened.
    """
    if os.environ.get("CONVAE_OFFLINE"):
        return False
    key = (host, port)
    with _ONLINE_LOCK:
        hit = _ONLINE.get(key)
        if hit is not None and monotonic() - hit[0] < ONLINE_TTL_S:
            return hit[1]
    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(key, timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    t = threading.Thread(target=probe, daemon=True, name=f"is_online {host}")
    t.start()
    t.join(timeout)
    ok = bool(answer and answer[0])
    with _ONLINE_LOCK:
        _ONLINE[key] = (monotonic(), ok)
    return ok


def _fetch(
    f: RemoteFile, dest: Path, progress: ProgressFn | None, label: str, timeout: float
) -> None:
    """Stream ``f.url`` into ``dest``, checking its md5 on the way.

    Raises:
        DownloadError: unreachable host, HTTP error, broken transfer or md5 mismatch.
    """
    host = urlsplit(f.url).hostname or f.url
    try:
        resp = urllib.request.urlopen(f.url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"download failed: {f.url} answered HTTP {exc.code} {exc.reason}; "
            "try again later, or get the data set another way (see the README)"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"no network: could not reach {host} ({reason}); connect to the internet and "
            "try again, or use the embedded sample"
        ) from None
    md5 = hashlib.md5()
    done = 0
    with resp:
        total = int(resp.headers.get("Content-Length") or 0)
        with dest.open("wb") as out:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except Exception as exc:  # timeout, reset, http.client.IncompleteRead
                    raise DownloadError(
                        f"download of {f.url} broke off after {done / 1e6:.1f} MB "
                        f"({type(exc).__name__}: {exc}); nothing was kept, try again"
                    ) from None
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DownloadError(
                        f"could not write the download to {dest.parent} ({exc.strerror}); "
                        "free some space or set CONVAE_DATA to a writable folder with room"
                    ) from None
                md5.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total, label)
    if total and done != total:
        raise DownloadError(
            f"download of {f.url} stopped at {done:,} of {total:,} bytes; nothing was kept, "
            "try again"
        )
    if md5.hexdigest() != f.md5:
        raise DownloadError(
            f"download of {f.url} is corrupt (md5 {md5.hexdigest()}, expected {f.md5}); "
            "nothing was kept, try again"
        )


class _CountingReader:
    """A file wrapper that reports how far it has been read (progress while unpacking)."""

    def __init__(self, fileobj, total: int, progress: ProgressFn | None, label: str):
        self._f, self._total, self._progress, self._label = fileobj, total, progress, label
        self._next = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        pos = self._f.tell()
        if self._progress and (pos >= self._next or not data):
            self._progress(pos, self._total, self._label)
            self._next = pos + CHUNK
        return data


def _unpack(spec: DownloadSpec, fetched: list[Path], work: Path, progress, what: str) -> Path:
    """Unpack the fetched files under ``work``; returns the folder that holds the result."""
    out = work / "unpacked"
    out.mkdir()
    if spec.unpack == "tar":
        archive = fetched[0]
        size = archive.stat().st_size
        with archive.open("rb") as raw:
            reader = _CountingReader(raw, size, progress, f"unpacking {what}")
            try:
                with tarfile.open(fileobj=reader, mode="r|gz") as tar:
                    tar.extractall(out, filter="data")
                if progress:  # the stream may stop short of the gzip trailer: say "done"
                    progress(size, size, f"unpacking {what}")
            except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
                raise DownloadError(
                    f"the downloaded {archive.name} cannot be unpacked ({exc}); nothing was "
                    "kept, try again"
                ) from None
        return out / spec.folder
    for i, gz in enumerate(fetched, 1):
        target = out / gz.name.removesuffix(".gz")
        try:
            with gzip.open(gz, "rb") as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        except (OSError, EOFError, zlib.error) as exc:
            raise DownloadError(
                f"the downloaded {gz.name} cannot be unpacked ({exc}); nothing was kept, try again"
            ) from None
        if progress:
            progress(i, len(fetched), f"unpacking {what}")
    return out


def download_source(
    name: str,
    root: Path | str | None = None,
    progress: ProgressFn | None = None,
    *,
    spec: DownloadSpec | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download a full data set into the data root, unless it is already there.

    Args:
        name: "cifar10", "fashion-mnist" or "mnist".
        root: data root (default: :func:`convae.data.data_root`); created if missing.
        progress: called as progress(done, total, text): bytes while downloading (total is
            0 when the server does not say), then steps while unpacking.
        spec: where to download from (default: :func:`official_spec`, torchvision's URLs
            and md5s); a mirror or a test server can be given here.
        timeout: seconds to wait for a connection or for the next bytes.

    Returns:
        The folder the data set now sits in (e.g. ``<root>/cifar-10-batches-py``).

    Raises:
        DownloadError: offline, HTTP error, broken transfer, md5 mismatch, an archive that
            does not hold the expected files, or a data root that cannot be written.
            Nothing is left in the data root.
        ValueError: a source with no download.
    """
    root = Path(root) if root is not None else data_root()
    spec = spec or official_spec(name)
    final = root / spec.folder
    if available_full_source(name, root):
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    except OSError as exc:
        raise DownloadError(
            f"cannot write to the data root {root} ({exc.strerror}); set CONVAE_DATA to a "
            "writable folder"
        ) from None
    try:
        fetched = []
        n = len(spec.files)
        for i, f in enumerate(spec.files, 1):
            file_name = urlsplit(f.url).path.rsplit("/", 1)[-1] or f"file{i}"
            label = f"downloading {name}" + (f" ({i}/{n}: {file_name})" if n > 1 else "")
            dest = work / file_name
            _fetch(f, dest, progress, label, timeout)
            fetched.append(dest)
        result = _unpack(spec, fetched, work, progress, name)
        expected = [rel for rel in FULL_SOURCE_FILES.get(name, ()) if rel.startswith(spec.folder)]
        missing = [
            rel for rel in expected if not (result / Path(rel).relative_to(spec.folder)).is_file()
        ]
        if missing or not result.is_dir():
            raise DownloadError(
                f"the download of {name} does not hold {missing[0] if missing else spec.folder}; "
                "nothing was kept (was it the right file?)"
            )
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            if not final.exists():
                os.replace(result, final)  # one atomic step: the folder is whole or absent
            else:
                # A folder left from an earlier, partial copy: only our files are replaced,
                # each atomically; anything else in it is the user's and stays.
                for p in sorted(result.iterdir()):
                    os.replace(p, final / p.name)
        except OSError as exc:
            raise DownloadError(
                f"could not move the download into {final} ({exc.strerror}); check that "
                f"the data root {root} is writable"
            ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
