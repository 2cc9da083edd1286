"""serve.py's command line and the HAProxy configuration it writes (the replicas in a
real browser are tests/e2e/test_replicas.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

import serve
from serve import ReplicaPlan, haproxy_config, parse_args


def test_one_server_keeps_every_streamlit_option():
    plan = parse_args(["--server.port", "8600", "--theme.base", "dark"])
    assert plan == ReplicaPlan(1, "", 8501, ("--server.port", "8600", "--theme.base", "dark"))


@pytest.mark.parametrize(
    "argv",
    [
        ["--replicas", "3", "--server.port", "9000", "--server.address", "0.0.0.0", "--x", "1"],
        ["--server.port=9000", "--replicas=3", "--x", "1", "--server.address=0.0.0.0"],
    ],
)
def test_replicas_take_the_public_address_for_haproxy(argv):
    # The replicas get loopback ports of their own; the public port and address are
    # HAProxy's, so they must not reach the replicas' streamlit options.
    assert parse_args(argv) == ReplicaPlan(3, "0.0.0.0", 9000, ("--x", "1"))


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--replicas", "0"], "--replicas must be 1 or more"),
        (["--replicas", "two"], "invalid int value"),
        (["--replicas", "2", "--server.port", "http"], "--server.port must be a port number"),
        (["--replicas", "2", "--server.port", "70000"], "--server.port must be a port number"),
    ],
)
def test_bad_arguments_get_a_one_line_error(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_the_haproxy_configuration_is_sticky_health_checked_and_valid(tmp_path):
    plan = ReplicaPlan(2, "127.0.0.1", 8600, ())
    cfg = haproxy_config(plan, [41001, 41002], tmp_path / "haproxy.sock")
    assert "bind 127.0.0.1:8600" in cfg
    assert f"cookie {serve.REPLICA_COOKIE} insert indirect nocache" in cfg
    assert "server r1 127.0.0.1:41001 check cookie r1" in cfg
    assert "server r2 127.0.0.1:41002 check cookie r2" in cfg
    assert "option httpchk GET /_stcore/health" in cfg
    assert not re.search(r"\$\{\w+\}", cfg)  # every template field filled
    assert "bind :8600" in haproxy_config(ReplicaPlan(2, "", 8600, ()), [1, 2], tmp_path / "s")
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(haproxy, os.X_OK):
        pytest.skip("HAProxy is not installed (./dev serve installs it): config not checked")
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    check = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_replicas_without_haproxy_say_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setattr(serve.shutil, "which", lambda name: None)
    monkeypatch.setattr(serve.os, "access", lambda path, mode: False)
    assert serve.serve_replicas(ReplicaPlan(2, "", 8600, ())) == 1
    err = capsys.readouterr().err
    assert "HAProxy, which is not installed" in err and "apt-get install haproxy" in err


def test_the_teacher_key_is_printed_with_its_link_for_the_terminal_only(monkeypatch):
    monkeypatch.setenv("CONVAE_TEACHER_KEY", "a-key-set-by-the-admin-0123")
    assert serve.teacher_key() == "a-key-set-by-the-admin-0123"
    banner = serve.teacher_banner("a-key-set-by-the-admin-0123", "", 8600)
    assert "Teacher key: a-key-set-by-the-admin-0123" in banner
    assert "http://localhost:8600/class?teacher=a-key-set-by-the-admin-0123" in banner
    assert "Students join at http://localhost:8600/class" in banner
    assert "http://10.0.0.5:80/class?teacher=" in serve.teacher_banner("k" * 20, "10.0.0.5", 80)


def test_without_a_key_one_is_made_and_given_to_the_app(monkeypatch):
    monkeypatch.delenv("CONVAE_TEACHER_KEY", raising=False)
    key = serve.teacher_key()
    assert len(key) >= 32 and os.environ["CONVAE_TEACHER_KEY"] == key  # replicas inherit it


def test_an_unusable_key_stops_the_start_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("CONVAE_TEACHER_KEY", "short")
    assert serve.teacher_key() is None
    assert serve.serve_one([]) == 1
    assert "CONVAE_TEACHER_KEY must be at least 16 characters" in capsys.readouterr().err


def test_replicas_without_redis_say_how_to_get_it(monkeypatch, capsys):
    monkeypatch.delenv("CONVAE_CLASS_STORE", raising=False)
    monkeypatch.setattr(serve.shutil, "which", lambda name: "/bin/true")  # "haproxy"
    monkeypatch.setattr(serve, "find_redis_server", lambda: None)
    assert serve.serve_replicas(ReplicaPlan(2, "", 8600, ())) == 1
    err = capsys.readouterr().err
    assert "redis-server is not installed" in err and "apt-get install redis-server" in err


def test_the_local_class_store_is_a_private_redis_server(redis_binary):
    port = serve._free_loopback_port()
    cmd = serve.redis_command(redis_binary, port)
    assert cmd[cmd.index("--bind") + 1] == "127.0.0.1" and cmd[cmd.index("--save") + 1] == ""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20  # a busy machine may take a while to start it
        while not serve.redis_answers(port) and proc.poll() is None:
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.02)
        assert serve.redis_answers(port)
    finally:
        proc.terminate()
        proc.wait(10)
    assert not serve.redis_answers(port)
