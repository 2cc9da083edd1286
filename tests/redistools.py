"""A real redis-server for tests: started on a free loopback port with no persistence
(``--save "" --appendonly no``), stopped and started again on the same port and folder
(to test a store that loses Redis mid-class and gets it back).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

START_TIMEOUT_S = 20.0  # a busy 2-core machine can take a while to start a process


def _client(port: int) -> redis.Redis:
    # No retries: the default ones back off for seconds on a server that is going away.
    return redis.Redis(port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


def find_redis_server() -> str | None:
    """Debian's redis-server (./dev test installs it), or one on PATH."""
    for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process.

    Args:
        exe: the redis-server binary.
        folder: its working folder (where SHUTDOWN SAVE writes dump.rdb).
    """

    def __init__(self, exe: str, folder: Path) -> None:
        self.exe, self.folder, self.port = exe, folder, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and return once it answers PING (a dump.rdb in the folder is loaded)."""
        args = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.folder), "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = _client(self.port)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.proc.stderr.read().decode()}")
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:  # BusyLoadingError is one too
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # the process is starting: wait for it to listen
        client.close()

    def stop(self, save: bool = False) -> None:
        """Stop it: SHUTDOWN SAVE writes the data to dump.rdb first (start() reads it back),
        otherwise the process is terminated and the data is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if save:
            # The server closes the connection as it exits: that error is the success.
            with contextlib.suppress(redis.exceptions.ConnectionError):
                _client(self.port).shutdown(save=True)
        else:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stderr.close()
