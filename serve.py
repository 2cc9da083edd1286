"""Start the app: ``streamlit run app.py`` with one Streamlit fix, or N copies of it
behind HAProxy for a bigger class.

One server (``python serve.py [streamlit run options]``, what ``./dev app`` runs):
Streamlit decides once per server process whether the app is an old-style multipage app
("a pages/ folder beside the main script"), by the folder's name alone. Ours is called
pages/ because the product's layout says so, but it holds st.navigation's page scripts
(and their glue package), so the old treatment never applies; yet the very first browser
session of a fresh server would run the folder's files as old-style pages before app.py's
st.navigation takes over. When that first visit is a shared deep link such as
``/layer-by-layer?...``, a "Page not found" dialog covers the right page (streamlit issue
#9624). Saying "not a pages directory" before the server starts (a class attribute of
Streamlit's PagesManager; Streamlit has no public setting for it) makes the first session
behave like every later one; the folder's name, not its contents, is what triggers it, so
the layout with page scripts and a glue package needs it as much as the old one did.
``tests/e2e`` opens a deep link as a fresh server's first request to check this. It
also skips Streamlit's polling of its config files (every 200 ms, for live reloads):
an idle server then takes 3.0-3.7 ms of CPU a second instead of 6.7 (30 s each, measured
from /proc on this 2-core machine); restart the server to change a setting.

Replicas (``python serve.py --replicas N [streamlit run options]``, ``./dev serve
--replicas N``): N app processes, each started as above on its own loopback port with
``$CONVAE_REPLICA`` = r1..rN, behind HAProxy (Debian's package; never a home-made proxy)
on the public address (``--server.port``, default 8501; ``--server.address``, default
all interfaces as Streamlit's own). The HAProxy configuration is deploy/haproxy.cfg
(why each setting is there is written in it): sticky sessions by an inserted cookie so a
browser's websocket, pictures and uploads all reach the process that holds its session,
health checks on /_stcore/health, least-connections balancing. One cookie secret for
all replicas, so Streamlit's upload (XSRF) cookie stays valid on any of them. The log
prefixes each line with its process ([r1], [haproxy], ...); Ctrl-C or SIGTERM stops
everything; a replica that dies is reported and taken out by HAProxy, the rest go on.

A live class (pages/live_class.py): the server prints the teacher key at start, with a
link for the teacher that carries it (http://host:port/class?teacher=KEY), to this
terminal only, like a notebook server's token; ``CONVAE_TEACHER_KEY`` sets it, else a
random one is made. Every replica gets the same key. A class spread over replicas keeps
its state in Redis: ``CONVAE_CLASS_STORE=redis://host:port/db`` names one, and without it
``--replicas N`` starts a local redis-server (Debian's package; no persistence, loopback
only) and stops it at exit. One process keeps its classes in its own memory.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
HAPROXY_TEMPLATE = ROOT / "deploy" / "haproxy.cfg"
REPLICA_COOKIE = "CONVAE_REPLICA"  # the sticky-session cookie (and the env var's name)
START_TIMEOUT_S = 120.0  # a replica's first start imports torch: slow on a busy machine
KEY_ENV = "CONVAE_TEACHER_KEY"  # convae.classroom.key's; read there
STORE_ENV = "CONVAE_CLASS_STORE"  # convae.classroom.store's
REDIS_START_S = 20.0


@dataclass(frozen=True)
class ReplicaPlan:
    """How ``serve.py --replicas N`` runs: the public address and the replicas' options."""

    replicas: int  # app processes behind HAProxy
    bind_address: str  # where HAProxy listens ("" = all interfaces, as Streamlit's default)
    port: int  # HAProxy's public port (Streamlit's --server.port, default 8501)
    streamlit_args: tuple[str, ...]  # the other `streamlit run` options, for every replica


def teacher_key() -> str | None:
    """The teacher key for this server: ``$CONVAE_TEACHER_KEY``, else a new random one,
    put into this process's environment (the app and every replica read it there).

    Returns:
        The key, or None after printing why the variable's key cannot be used.
    """
    from convae.classroom.key import TeacherKey

    try:
        key = TeacherKey.from_env()
    except ValueError as exc:
        print(f"serve.py: {exc}", file=sys.stderr)
        return None
    os.environ[KEY_ENV] = key.reveal()
    return key.reveal()


def teacher_banner(key: str, host: str, port: int) -> str:
    """What the terminal shows at start: the teacher key and the teacher's link.

    Args:
        key: the teacher key.
        host: the address people open ("" or 0.0.0.0: this machine, shown as localhost).
        port: the public port.
    """
    shown = "localhost" if host in ("", "0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    return (
        f"[serve] Teacher key: {key}\n"
        f"[serve] Teacher link (for you alone; never project it): {base}/class?teacher={key}\n"
        f"[serve] Students join at {base}/class with the code your screen shows "
        "(use this machine's network address instead of localhost)."
    )


def _option(args: Sequence[str], name: str, default: str) -> str:
    rest = list(args)
    value = _pop_option(rest, name)
    return default if value is None else value


def serve_one(streamlit_args: Sequence[str]) -> int:
    """Run one Streamlit server in this process (``streamlit run app.py`` + the fix above),
    printing the teacher key first (a replica leaves that to ``serve_replicas``).

    Args:
        streamlit_args: ``streamlit run`` options, e.g. ``["--server.port", "8502"]``.

    Returns:
        Streamlit's exit status (1 when the teacher key set in the environment is unusable).
    """
    key = teacher_key()
    if key is None:
        return 1
    if not os.environ.get(REPLICA_COOKIE):
        port = _option(streamlit_args, "--server.port", "8501")
        host = _option(streamlit_args, "--server.address", "")
        print(teacher_banner(key, host, int(port) if port.isdigit() else 8501), flush=True)
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import bootstrap, cli

    PagesManager.uses_pages_directory = False  # app.py uses st.navigation (v2) only
    # Streamlit polls its config files every 200 ms for live reloads; a server for a
    # class reads its settings once at start (restart it to change them).
    bootstrap._install_config_watchers = lambda flag_options: None
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *streamlit_args]
    return cli.main()


def _pop_option(args: list[str], name: str) -> str | None:
    """Remove ``--name VALUE`` or ``--name=VALUE`` from ``args``; return the last VALUE."""
    value = None
    i = 0
    while i < len(args):
        if args[i] == name and i + 1 < len(args):
            value = args[i + 1]
            del args[i : i + 2]
        elif args[i].startswith(name + "="):
            value = args[i].split("=", 1)[1]
            del args[i]
        else:
            i += 1
    return value


def parse_args(argv: Sequence[str]) -> ReplicaPlan:
    """Split our ``--replicas N`` from the ``streamlit run`` options.

    Args:
        argv: the command line after ``serve.py``.

    Returns:
        The plan; ``replicas`` is 1 when ``--replicas`` was not given.

    Raises:
        SystemExit: ``--replicas`` or ``--server.port`` is not a positive whole number
            (argparse's one-line error).
    """
    ap = argparse.ArgumentParser(
        prog="serve.py",
        description="Start ConvAE Explorer (other options go to `streamlit run`).",
        add_help=False,
        allow_abbrev=False,
    )
    ap.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="app processes behind HAProxy (default 1: one Streamlit server, no proxy)",
    )
    ns, rest = ap.parse_known_args(list(argv))
    if ns.replicas < 1:
        ap.error(f"--replicas must be 1 or more, got {ns.replicas}")
    port = 8501
    address = ""
    if ns.replicas > 1:  # the public address is HAProxy's; the replicas get their own
        raw_port = _pop_option(rest, "--server.port")
        if raw_port is not None:
            if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
                ap.error(f"--server.port must be a port number (1-65535), got {raw_port!r}")
            port = int(raw_port)
        address = _pop_option(rest, "--server.address") or ""
    return ReplicaPlan(ns.replicas, address, port, tuple(rest))


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_config(plan: ReplicaPlan, ports: Sequence[int], stats_socket: Path) -> str:
    """deploy/haproxy.cfg filled in for these replicas.

    Args:
        plan: the public address and replica count.
        ports: each replica's loopback port (r1 first).
        stats_socket: where HAProxy's admin socket goes (``show stat`` lists each
            replica's state and open sessions).

    Returns:
        The configuration text.
    """
    servers = "\n".join(
        f"    server r{i} 127.0.0.1:{p} check cookie r{i}" for i, p in enumerate(ports, 1)
    )
    host = plan.bind_address
    bind = f"[{host}]:{plan.port}" if ":" in host else f"{host}:{plan.port}"
    return string.Template(HAPROXY_TEMPLATE.read_text()).substitute(
        bind=bind, servers=servers, stats_socket=str(stats_socket), cookie=REPLICA_COOKIE
    )


def _die_with_parent() -> None:
    # Runs in each child before exec: if serve.py itself is killed (SIGKILL, a crash),
    # Linux sends the child SIGTERM, so no replica or HAProxy is left behind.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _forward(stream, prefix: str) -> None:
    """Copy a child's output to ours, each line prefixed with the child's name."""
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"[{prefix}] {line.decode(errors='replace')}")
        sys.stdout.flush()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def find_redis_server() -> str | None:
    """Debian's redis-server (./dev serve installs it), or one on PATH."""
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def redis_command(exe: str, port: int) -> list[str]:
    """A local redis-server for one run of the class: loopback only, no persistence (a
    class lives a few hours; a restarted server starts empty)."""
    return [
        exe,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
    ]


def redis_answers(port: int) -> bool:
    """Whether a redis-server on this loopback port answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def serve_replicas(plan: ReplicaPlan) -> int:
    """Run ``plan.replicas`` app processes behind HAProxy until Ctrl-C / SIGTERM.

    Args:
        plan: from ``parse_args``.

    Returns:
        0 after a requested stop; 1 when something could not start or HAProxy died.
    """
    haproxy = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )
    if haproxy is None:
        print(
            "serve.py: --replicas needs HAProxy, which is not installed: run "
            "`sudo apt-get install haproxy` (./dev serve does it), or start one server "
            "without --replicas",
            file=sys.stderr,
        )
        return 1
    redis_exe = None
    if not os.environ.get(STORE_ENV):
        redis_exe = find_redis_server()
        if redis_exe is None:
            print(
                "serve.py: a class over replicas keeps its state in Redis, and redis-server "
                "is not installed: run `sudo apt-get install redis-server` (./dev serve does "
                f"it), or set {STORE_ENV}=redis://host:port/db to use another one",
                file=sys.stderr,
            )
            return 1
    key = teacher_key()
    if key is None:
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    workdir = Path(tempfile.mkdtemp(prefix="convae-serve-"))
    env = {
        **os.environ,
        # One secret for all: Streamlit's XSRF cookie (uploads) is signed with it, so a
        # browser moved to another replica (its own went down) can still upload.
        "STREAMLIT_SERVER_COOKIE_SECRET": os.environ.get(
            "STREAMLIT_SERVER_COOKIE_SECRET", secrets.token_hex(32)
        ),
    }
    procs: dict[str, subprocess.Popen] = {}
    ports = [_free_loopback_port() for _ in range(plan.replicas)]

    def start(name: str, cmd: list[str], extra_env: dict[str, str]) -> None:
        p = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**env, **extra_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        procs[name] = p
        threading.Thread(target=_forward, args=(p.stdout, name), daemon=True).start()
        print(f"[serve] {name} started: pid {p.pid}", flush=True)

    status = 0
    try:
        if redis_exe is not None:  # the class store every replica shares
            redis_port = _free_loopback_port()
            start("redis", redis_command(redis_exe, redis_port), {})
            deadline = time.monotonic() + REDIS_START_S
            while not redis_answers(redis_port):
                if procs["redis"].poll() is not None or time.monotonic() > deadline:
                    print("serve.py: the local redis-server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            env[STORE_ENV] = f"redis://127.0.0.1:{redis_port}/0"
            print(f"[serve] class store: {env[STORE_ENV]} (a local redis-server)", flush=True)
        for i, port in enumerate(ports, 1):
            start(
                f"r{i}",
                [
                    sys.executable,
                    str(ROOT / "serve.py"),
                    *plan.streamlit_args,
                    "--server.port",
                    str(port),
                    "--server.address",
                    "127.0.0.1",  # only HAProxy talks to the replicas
                    "--server.headless",
                    "true",
                ],
                {REPLICA_COOKIE: f"r{i}"},
            )
            print(f"[serve] r{i} on 127.0.0.1:{port}", flush=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        waiting = {f"r{i}": p for i, p in enumerate(ports, 1)}
        while waiting and not stop.is_set():
            for name, port in list(waiting.items()):
                if procs[name].poll() is not None:
                    print(f"serve.py: replica {name} exited while starting", file=sys.stderr)
                    return 1
                if _healthy(port):
                    del waiting[name]
            if time.monotonic() > deadline:
                print(
                    f"serve.py: {', '.join(waiting)} did not answer /_stcore/health in "
                    f"{START_TIMEOUT_S:.0f} s; see the log above",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.2)
        if stop.is_set():
            return 0
        cfg = workdir / "haproxy.cfg"
        sock = workdir / "haproxy.sock"
        cfg.write_text(haproxy_config(plan, ports, sock))
        check = subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], capture_output=True)
        if check.returncode != 0:
            print(
                f"serve.py: HAProxy refused the configuration {cfg}: "
                f"{check.stderr.decode(errors='replace').strip()}",
                file=sys.stderr,
            )
            return 1
        start("haproxy", [haproxy, "-db", "-f", str(cfg)], {})
        shown = plan.bind_address or "localhost"
        print(
            f"[serve] {plan.replicas} replicas behind HAProxy: http://{shown}:{plan.port} "
            f"(HAProxy admin socket: {sock})",
            flush=True,
        )
        print(teacher_banner(key, plan.bind_address, plan.port), flush=True)
        gone: set[str] = set()
        reported: set[str] = set()
        while not stop.wait(0.5):
            for name, p in procs.items():
                if name not in gone and p.poll() is not None:
                    gone.add(name)
                    print(f"[serve] {name} exited with status {p.returncode}", flush=True)
            if "haproxy" in gone:
                print("serve.py: HAProxy stopped, stopping the replicas", file=sys.stderr)
                status = 1
                break
            if "redis" in gone and "redis" not in reported:
                reported.add("redis")
                print("[serve] the class store stopped: classes fall back to exploring", flush=True)
            if len(gone - {"haproxy", "redis"}) == plan.replicas:
                print("serve.py: every replica has stopped", file=sys.stderr)
                status = 1
                break
    finally:
        print("[serve] stopping", flush=True)
        # HAProxy first (no new requests), the replicas, then the store they use.
        order = (["haproxy"] if "haproxy" in procs else []) + [
            n for n in procs if n not in ("haproxy", "redis")
        ]
        order += ["redis"] if "redis" in procs else []
        for name in order:
            if procs[name].poll() is None:
                procs[name].terminate()
        deadline = time.monotonic() + 10
        for name in order:
            try:
                procs[name].wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                procs[name].kill()
                procs[name].wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return status


def main(argv: Sequence[str]) -> int:
    """``serve.py [--replicas N] [streamlit run options]``."""
    plan = parse_args(argv)
    if plan.replicas == 1:
        return serve_one(plan.streamlit_args)
    return serve_replicas(plan)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
