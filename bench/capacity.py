"""Capacity of one app server, measured without browsers on the server: simulated students
that speak Streamlit's websocket protocol (bench/students), driven by Locust.

Starts the app as ``./dev app`` does (serve.py, one process) on a free loopback port with
a copy of the shipped checkpoints and the CIFAR-10 copy in data/ when it is there (else
the embedded sample on an empty data root, as on a fresh machine), warms it (one session
steps through Layers), then:

- ``--students 10,20,40``: for each class size N, Locust (niced, its own process) runs N
  :class:`~bench.students.locustfile.LayersStudent` users, each pressing Layers' Next
  every 2-4 s. Once all N sessions are open, a window of ``--window`` seconds measures
  (bench/students/meter.py): the server process's CPU time from /proc over the clicks
  that finished in it (server CPU per click; also less the idle server's rate, measured
  beforehand with no session), Locust's p50 / p95 of a click (send to the run's
  ``script_finished``), the server's RSS / PSS / USS with the N sessions open, and
  Locust's own CPU (in the window, and in all, opening the sessions included).
  ``--trainings 0,2`` runs every size once with no training and once while 2 sessions
  (simulated too) train on the Train page; there "less idle" takes off the server's rate
  with the trainings running and nobody clicking (10 s before the sizes), a rough figure
  since a training's CPU varies.
- ``--validate``: 5 real Chromium sessions (bench/students/chromium.py: Playwright,
  /usr/bin/chromium, tests/e2e's args, niced like Locust) do the same clicks on the same
  schedule, then 5 simulated students; ``--rounds`` times each, alternating. The server's
  CPU per click of both and their ratio (the simulation is good when they agree within
  30 %); and the ``rerun_script`` a browser sent for its first Next against the simulated
  student's, widget by widget.

- ``--scenario class --students 10,20,40,60 --trainings 0,2``: a live class
  (bench/students/live_class.py) for each size: a teacher and N students, 10 % of them
  exploring Layers on their own, the others following and answering. Once all have
  joined, a quiet stretch with only the students' polls gives the server's CPU per poll;
  then the teacher steps through both shipped lessons and asks two questions, and one
  window measures every click, poll and jump: the server's CPU per click or jump (less
  the trainings' niced threads and the polls at the quiet stretch's cost), p50 / p95 of a
  student's click and of the teacher's click to a following student's screen showing it,
  the answers sent against the teacher's CSV export (lost, extra), errors of every kind,
  the server's memory, and the share of the machine's CPU that other work took.
  ``--merge`` adds the sizes to the results file's, so a series runs in short parts;
  ``--replicas N`` serves it as ``./dev serve --replicas N`` (HAProxy, Redis).
- ``--scenario class --validate``: 5 real Chromium students follow a teacher (a
  simulated session) through the first lesson, then 5 simulated students; the server's
  CPU per follower and change of both, and their ratio.

Between runs the server drops the closed sessions: it is started with
``server.disconnectedSessionTTL`` = 10 s (Streamlit's default 120 s keeps a closed tab's
session for a reconnect), and a probe session opened and closed after that makes it
expire them (the TTL cache drops expired entries when next written).

Results: ``bench/results/capacity-validate.json`` / ``capacity-layers.json`` /
``capacity-class.json`` / ``capacity-class-validate.json`` (with the date,
load averages, versions and command line), Locust's CSV of each size beside them
(``capacity-layers-n10_stats.csv``, ...), and a markdown table on stdout.

Usage::

    python bench/capacity.py --validate
    python bench/capacity.py --students 10,20,40 --window 60
    python bench/capacity.py --students 10,20,40 --trainings 0,2
    python bench/capacity.py --scenario class --validate
    python bench/capacity.py --scenario class --students 10,20 --trainings 0 --merge
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.classroom import Server  # noqa: E402
from bench.students.meter import cpu_s, family, memory_mb, tree_cpu_s  # noqa: E402
from bench.students.protocol import (  # noqa: E402
    RunTimeout,
    SessionClosed,
    StreamlitSession,
)

RESULTS = ROOT / "bench" / "results"
LOCUSTFILE = ROOT / "bench" / "students" / "locustfile.py"
SESSION_TTL_S = 10
NICE = ["nice", "-n", "10"]  # the generators yield to the server on the shared cores


# ------------------------------------------------------------------ the server
def server_env(tmp: Path) -> tuple[dict[str, str], str]:
    """Environment for the server (a copy of the shipped checkpoints, the data set) and
    the data set's name: the CIFAR-10 copy in data/ when there, else the sample."""
    ck = tmp / "checkpoints"
    ck.mkdir()
    for p in sorted((ROOT / "checkpoints").glob("*.pt")):
        shutil.copy2(p, ck / p.name)
    env = {"CONVAE_CHECKPOINTS": str(ck), "CONVAE_OFFLINE": "1"}
    data = Path(os.environ.get("CONVAE_DATA") or ROOT / "data")
    if (data / "cifar10-jpeg" / "test").is_dir() or (data / "cifar-10-batches-py").is_dir():
        env.update(CONVAE_DATA=str(data), CONVAE_SOURCE="cifar10")
        return env, "cifar10"
    empty = tmp / "empty_root"
    empty.mkdir()
    env["CONVAE_DATA"] = str(empty)
    return env, "cifar10-sample"


def warm(url: str) -> None:
    """One session steps through every step of Layers and back: the digest-keyed caches
    (traces, maps, strips) are filled before anything is measured."""
    s = StreamlitSession(url, "layer-by-layer")
    s.connect().wait(300)
    steps = s.widget("layers_step").options
    for key in ["layers_next"] * (len(steps) - 2) + ["layers_prev"] * (len(steps) - 2):
        s.click(key).wait(120)
    s.close()


def drop_closed_sessions(url: str) -> None:
    """Wait out the closed sessions' TTL, then open and close a probe session: its
    disconnect makes Streamlit drop the expired ones."""
    time.sleep(SESSION_TTL_S + 2)
    probe = StreamlitSession(url, "layer-by-layer")
    probe.connect().wait(120)
    probe.close()
    time.sleep(2)


@contextmanager
def trainings(url: str, n: int, epochs: int = 30) -> Iterator[list[StreamlitSession]]:
    """``n`` sessions training on the Train page (every training picture, ``epochs``
    epochs: longer than the measurement), each a simulated student too; stopped with
    Stop at the end. With the server's training queue (convae/queue.py, one training per
    two cores unless $CONVAE_MAX_TRAININGS says otherwise) some may wait their turn."""
    sessions: list[StreamlitSession] = []
    try:
        for _ in range(n):
            s = StreamlitSession(url, "training")
            sessions.append(s)
            s.connect().wait(300)
            s.set_value("train_limit", int(s.widget("train_limit").proto.max)).wait(300)
            s.set_value("train_epochs", epochs).wait(300)
            s.click("train_start")  # its run lasts as long as the training: not awaited
        time.sleep(5)  # past the set-up, into the steps (or into the queue)
        yield sessions
    finally:
        for s in sessions:
            try:
                s.click("train_stop").wait(300)
            except (SessionClosed, RunTimeout, LookupError) as exc:
                print(f"(stopping a training: {exc})", flush=True)
            s.close()


def idle_ms_per_s(pid: int, seconds: float = 5.0) -> float:
    """The server's CPU rate with nothing to do (ms of CPU per second; with replicas, of
    the whole deployment)."""
    c0, t0 = tree_cpu_s(pid), time.perf_counter()
    time.sleep(seconds)
    return 1000 * (tree_cpu_s(pid) - c0) / (time.perf_counter() - t0)


def deployment_memory_mb(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of the server's processes together (one, or the replicas, HAProxy
    and redis-server of ``serve.py --replicas``)."""
    total = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    for p in family(pid):
        for k, v in memory_mb(p).items():
            total[k] += v
    return total


def start_server(result: dict, env: dict[str, str], work: Path, replicas: int) -> Server:
    """serve.py as ``./dev app`` runs it, or ``serve.py --replicas N`` (HAProxy in front, a
    local redis-server for the classes) on the same loopback port."""
    launcher = [sys.executable, str(ROOT / "serve.py")]
    if replicas > 1:
        launcher += ["--replicas", str(replicas)]
    result["server_command"] = " ".join(["serve.py", *launcher[2:], *result["server_args"]])
    return Server(result["server_args"], env, work / "server.log", launcher=launcher)


# ------------------------------------------------------------------ the generators
def _run_niced(cmd: list[str], env: dict[str, str], log: Path, limit_s: float) -> float:
    """Run ``cmd`` niced; return its CPU seconds (with its children) from wait4."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([*NICE, *cmd], cwd=ROOT, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + limit_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.5)
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # Locust exits 1 on failures
        raise RuntimeError(f"{cmd[:4]} failed (status {status}); see {log}")
    return usage.ru_utime + usage.ru_stime


def run_locust(
    server: Server,
    users: int,
    window: float,
    tag: str,
    work: Path,
    classes: tuple[str, ...] = ("LayersStudent",),
    extra_env: dict[str, str] | None = None,
    limit: float | None = None,
) -> dict:
    """N simulated students (Locust users ``classes``); the window's figures plus Locust's
    CSV. ``limit``: Locust's run time (default: opening the sessions, then the window)."""
    out = work / f"{tag}.json"
    csv = work / tag
    env = {
        **os.environ,
        "STUDENTS_SERVER_PID": str(server.proc.pid),
        "STUDENTS_WINDOW_S": str(window),
        "STUDENTS_RESULT": str(out),
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    rate = min(users, 4)  # sessions opened per second: a first run is a full app run
    limit = limit or users / rate + 120 + window  # opening on a busy machine, then the window
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        *classes,
        "--headless",
        "-u",
        str(users),
        "-r",
        str(rate),
        "-t",
        f"{int(limit)}s",
        "--host",
        server.url,
        "--csv",
        str(csv),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    total_cpu = _run_niced(cmd, env, work / f"{tag}.log", limit + 60)
    result = json.loads(out.read_text())
    if "error" in result:
        raise RuntimeError(f"locust {tag}: {result['error']}; see {work / (tag + '.log')}")
    result["generator_cpu_total_s"] = total_cpu  # opening the sessions included
    result["generator"] = f"locust (bench/students/locustfile.py {' '.join(classes)})"
    result["locust_csv"] = f"{csv}_stats.csv"
    return result


def run_chromium(server: Server, sessions: int, window: float, tag: str, work: Path) -> dict:
    """N real Chromium sessions on Layers, the same clicks (bench/students/chromium.py)."""
    out = work / f"{tag}.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.students.chromium",
        server.url,
        "--sessions",
        str(sessions),
        "--seconds",
        str(window),
        "--server-pid",
        str(server.proc.pid),
        "--out",
        str(out),
    ]
    total_cpu = _run_niced(cmd, {**os.environ, "PYTHONPATH": str(ROOT)}, work / f"{tag}.log", 600)
    result = json.loads(out.read_text())
    result["generator_cpu_total_s"] = total_cpu  # the driver; Chromium is in the window's
    result["generator"] = "chromium (bench/students/chromium.py)"
    return result


def with_idle(result: dict, idle: float) -> dict:
    """Add the server CPU per click less the server's rate with nobody clicking (idle,
    or the trainings' when some run) over the window."""
    busy = result["server_cpu_s"] - idle / 1000 * result["window_s"]
    result["server_cpu_ms_per_click_net"] = 1000 * max(0.0, busy) / max(1, result["clicks"])
    return result


# ------------------------------------------------------------------ what was sent
def _states(payload: bytes) -> dict:
    from google.protobuf import text_format
    from streamlit.proto.BackMsg_pb2 import BackMsg

    msg = BackMsg()
    msg.ParseFromString(payload)
    cs = msg.rerun_script
    return {
        "query_string": cs.query_string,
        "page_script_hash": cs.page_script_hash,
        "page_name": cs.page_name,
        "fragment_id": cs.fragment_id,
        "widgets": {
            w.id: text_format.MessageToString(w, as_one_line=True).split(" ", 2)[-1]
            for w in cs.widget_states.widgets
        },
    }


def compare_first_next(url: str, browser_frames: list[str]) -> dict:
    """The rerun_script of a browser's first Next against a simulated student's."""
    sent: list[bytes] = []
    s = StreamlitSession(url, "layer-by-layer")
    s.connect().wait(120)
    s.on_send = sent.append
    s.click("layers_next").wait(120)
    s.close()
    ours = _states(sent[0])
    theirs = _states(bytes.fromhex(browser_frames[0])) if browser_frames else {"widgets": {}}
    a, b = theirs["widgets"], ours["widgets"]
    fields = ("query_string", "page_script_hash", "page_name", "fragment_id")
    return {
        "identical": a == b and all(theirs.get(f) == ours.get(f) for f in fields),
        "fields": {f: {"chromium": theirs.get(f), "protocol": ours.get(f)} for f in fields},
        "widgets_chromium": len(a),
        "widgets_protocol": len(b),
        "only_chromium": sorted(set(a) - set(b)),
        "only_protocol": sorted(set(b) - set(a)),
        "different": {k: [a[k], b[k]] for k in sorted(set(a) & set(b)) if a[k] != b[k]},
    }


# ------------------------------------------------------------------ a live class
CLASS_USERS = ("Teacher", "FollowingStudent", "ExploringStudent")
LESSONS = ROOT / "lessons" / "lessons.toml"


def warm_lessons(url: str) -> None:
    """Open every shipped lesson step's view once, as its link would: the steps' traces
    and pictures are cached before any class is measured, so every size meets the same
    caches (in a class the teacher's own click computes a step first)."""
    from urllib.parse import urlencode

    from convae.lessons import load_lessons

    for lesson in load_lessons(LESSONS):
        for step in lesson.steps:
            s = StreamlitSession(url, step.page, urlencode(step.params))
            s.connect().wait(300)
            s.close()


def run_class(
    server: Server,
    students: int,
    tag: str,
    work: Path,
    key: str,
    plan: str = "full",
    classes: tuple[str, ...] = CLASS_USERS,
) -> dict:
    """One class under Locust: a teacher and ``students`` students (10 % exploring), the
    teacher's plan (bench/students/live_class.py); the class's figures."""
    extra = {"STUDENTS_TEACHER_KEY": key, "STUDENTS_CLASS_PLAN": plan}
    r = run_locust(server, students + 1, 0, tag, work, classes, extra, limit=students / 4 + 900)
    r.pop("window_s", None)  # the Layers window's; the class has its own
    return r


def machine() -> dict:
    """The machine the figures come from."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "nproc": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "system": platform.platform(),
    }


def _ms(d: dict | None, key: str = "p50_ms") -> str:
    return f"{d[key]:,.0f}" if d and d.get("count") else "-"


def _class_row(r: dict) -> str:
    w = r.get("window", {})
    q = r.get("polls_only", {})
    a = r.get("answers") or {}
    mem = w.get("server_memory_mb_end", {}).get("rss", float("nan"))
    sc, fm = r["student_clicks_ms"], r["follow_ms"]
    load = r.get("load_average_before", [float("nan")])[0]
    return (
        f"| {r['students']} | {r['trainings']} | {q.get('server_cpu_ms_per_poll', 0):.1f} ms "
        f"| {w.get('server_cpu_ms_per_run', float('nan')):.0f} ms "
        f"| {_ms(sc)} / {_ms(sc, 'p95_ms')} ms | {_ms(fm)} / {_ms(fm, 'p95_ms')} ms "
        f"| {a.get('lost', '-')} of {a.get('sent', '-')} | {r['errors']['total']} "
        f"| {mem:,.0f} MB | {100 * w.get('server_cpu_share', 0):.0f} % "
        f"| {100 * w.get('generator_cpu_share', 0):.1f} % "
        f"| {100 * w.get('other_cpu_share', 0):.0f} % | {load:.1f} |"
    )


CLASS_HEADER = (
    "| students | trainings | server CPU per poll | server CPU per click or jump "
    "| student click p50 / p95 | teacher to student p50 / p95 | answers lost of sent "
    "| errors | server RSS | server CPU (cores) | Locust CPU | other work's CPU "
    "| load average |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
    "| --- | --- |"
)


def class_series(server: Server, sizes: list[int], counts: list[int], key: str, work: Path,
                 out: Path, plan: str) -> list[dict]:  # fmt: skip
    """Every class size with each number of trainings; Locust's CSV kept beside ``out``."""
    rows = []
    for k in counts:
        with trainings(server.url, k):
            for n in sizes:
                suffix = f"n{n}-t{k}"
                before = os.getloadavg()
                r = run_class(server, n, suffix, work, key, plan)
                r["trainings"] = k
                r["load_average_before"], r["load_average_after"] = before, os.getloadavg()
                kept = out.with_name(f"{out.stem}-{suffix}_stats.csv")  # Locust's own
                shutil.copy2(r["locust_csv"], kept)
                r["locust_csv"] = os.path.relpath(kept, ROOT)
                rows.append(r)
                print(_class_row(r), flush=True)
                drop_closed_sessions(server.url)
    return rows


# ------------------------------------------------------------------ main
def _row(r: dict) -> str:
    req = r["clicks_ms"]
    return (
        f"| {r['users']} | {r.get('trainings', 0)} | {r['clicks']} | "
        f"{r['server_cpu_ms_per_click']:.1f} ms "
        f"({r['server_cpu_ms_per_click_net']:.1f}) | {req['p50_ms']:.0f} / "
        f"{req['p95_ms']:.0f} ms | {r['server_memory_mb_end']['rss']:.0f} MB | "
        f"{r['generator_cpu_ms_per_click']:.1f} ms ({100 * r['generator_cpu_share']:.1f} %) | "
        f"{r.get('generator_lag_ms', {}).get('p95', float('nan')):.0f} ms |"
    )


HEADER = (
    "| sessions | trainings | clicks | server CPU per click (less idle) | click p50 / p95 "
    "| server RSS | generator CPU per click (share of a core) | generator lag p95 |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", default="10,20,40", help="class sizes (default 10,20,40)")
    ap.add_argument("--window", type=float, default=60, help="seconds measured (default 60)")
    ap.add_argument("--validate", action="store_true", help="Chromium vs simulated, 5 each")
    ap.add_argument("--sessions", type=int, default=5, help="--validate: sessions (default 5)")
    ap.add_argument("--rounds", type=int, default=2, help="--validate: rounds (default 2)")
    ap.add_argument(
        "--trainings",
        default="0",
        help="sessions training meanwhile; a list runs every size with each (default 0)",
    )
    ap.add_argument(
        "--scenario",
        choices=("layers", "class"),
        default="layers",
        help="layers: students clicking Layers' Next; class: a live class, a teacher leading "
        "(bench/students/live_class.py) (default layers)",
    )
    ap.add_argument(
        "--plan",
        choices=("full", "quick", "steps"),
        default="full",
        help="--scenario class: the teacher's plan (default full: both shipped lessons, two "
        "questions)",
    )
    ap.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="serve.py --replicas N: N app processes behind HAProxy, the classes in a local "
        "redis-server (default 1: one process, as ./dev app)",
    )
    ap.add_argument(
        "--merge",
        action="store_true",
        help="--scenario class: add these sizes to the results file's (a size measured again "
        "replaces its row), so that a series can be run in short parts",
    )
    ap.add_argument("--out", default="", help="results file (default bench/results/capacity-*)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.students.split(",") if x.strip()]
    train_counts = [int(x) for x in args.trainings.split(",") if x.strip()]
    name = "validate" if args.validate else args.scenario
    if args.scenario == "class":
        name = "class-validate" if args.validate else "class"
        name += f"-replicas{args.replicas}" if args.replicas > 1 else ""
    elif not args.validate:
        name = "layers"
    out = Path(args.out or RESULTS / f"capacity-{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="convae-capacity-"))
    env, source = server_env(work)
    key = env["CONVAE_TEACHER_KEY"] = secrets.token_urlsafe(24)
    result: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cores": len(os.sched_getaffinity(0)),
        "machine": machine(),
        "load_average_before": os.getloadavg(),
        "versions": {p: version(p) for p in ("torch", "streamlit", "locust", "websocket-client")},
        "data": source,
        "page": "Layers (layer-by-layer): Next every 2-4 s, Prev back from the last step",
        "window_s": args.window,
        "server_args": [f"--server.disconnectedSessionTTL={SESSION_TTL_S}"],
        "replicas": args.replicas,
    }
    if args.scenario == "class":
        class_main(args, result, env, work, out, sizes, train_counts)
        return
    server = start_server(result, env, work, args.replicas)
    try:
        warm(server.url)
        drop_closed_sessions(server.url)
        idle = idle_ms_per_s(server.proc.pid)
        result["server_idle_cpu_ms_per_s"] = idle
        result["server_memory_mb_warm"] = deployment_memory_mb(server.proc.pid)
        if args.validate:
            rounds = []
            for k in range(args.rounds):
                pair = {}
                for kind, fn in (("chromium", run_chromium), ("protocol", run_locust)):
                    r = fn(server, args.sessions, args.window, f"{kind}-{k}", work)
                    r["load_average_after"] = os.getloadavg()
                    pair[kind] = with_idle(r, idle)
                    print(f"round {k} {kind}: {_row(pair[kind])}", flush=True)
                    drop_closed_sessions(server.url)
                for key in ("server_cpu_ms_per_click", "server_cpu_ms_per_click_net"):
                    pair[f"ratio_{key}"] = pair["protocol"][key] / pair["chromium"][key]
                rounds.append(pair)
            result["rounds"] = rounds
            frames = rounds[0]["chromium"].pop("first_next_backmsg", [])
            for pair in rounds[1:]:
                pair["chromium"].pop("first_next_backmsg", None)
            result["first_next_rerun_script"] = compare_first_next(server.url, frames)
            for key in ("server_cpu_ms_per_click", "server_cpu_ms_per_click_net"):
                result[f"median_ratio_{key}"] = statistics.median(p[f"ratio_{key}"] for p in rounds)
        else:
            result["sizes"] = []
            for k in train_counts:
                with trainings(server.url, k):
                    # What the server spends with no student clicking (the trainings'
                    # CPU when there are some): "less idle" takes this rate off.
                    base = idle_ms_per_s(server.proc.pid, 10) if k else idle
                    result.setdefault("server_baseline_cpu_ms_per_s", {})[k] = base
                    for n in sizes:
                        suffix = f"n{n}" + (f"-t{k}" if k else "")
                        r = with_idle(run_locust(server, n, args.window, suffix, work), base)
                        r["trainings"] = k
                        r["load_average_after"] = os.getloadavg()
                        kept = out.with_name(f"{out.stem}-{suffix}_stats.csv")  # Locust's
                        shutil.copy2(r["locust_csv"], kept)
                        r["locust_csv"] = os.path.relpath(kept, ROOT)
                        result["sizes"].append(r)
                        print(_row(r), flush=True)
                        drop_closed_sessions(server.url)
    finally:
        server.stop()
    result["load_average_after"] = os.getloadavg()
    out.write_text(json.dumps(result, indent=1) + "\n")
    print("\n" + HEADER)
    if args.validate:
        for k, pair in enumerate(result["rounds"]):
            for kind in ("chromium", "protocol"):
                print(_row(pair[kind]).replace("| ", f"| {kind} r{k}: ", 1))
        print(
            f"\nprotocol / chromium server CPU per click, median of {args.rounds} rounds: "
            f"{result['median_ratio_server_cpu_ms_per_click']:.2f} "
            f"(less idle: {result['median_ratio_server_cpu_ms_per_click_net']:.2f}); "
            f"first Next's rerun_script identical: "
            f"{result['first_next_rerun_script']['identical']}"
        )
    else:
        for r in result["sizes"]:
            print(_row(r))
    print(f"\nwrote {out} (work files in {work}); load average {os.getloadavg()}")


QUIET_S = 15.0  # the Chromium check's stretch with only the polls
AFTER_LAST_S = 5.0  # after the teacher's last click: every follower's poll and jump


def _act(name: str, send, check=None, reconnect: bool = True):
    """``act`` for live_class outside Locust: send, wait for the run, check."""
    req = send()
    req.wait(120)
    if check is not None:
        check()
    return req


def follow_round(server: Server, key: str, kind: str, n: int, work: Path) -> dict:
    """A teacher (a simulated session here) steps through the first shipped lesson while
    ``n`` students follow: real Chromium sessions (``kind`` "chromium", a niced
    subprocess) or simulated ones (``"protocol"``, this process). Server CPU over a quiet
    stretch (only the polls) and over the lesson; per follower-second and per follower
    and teacher change."""
    from bench.students import live_class as lc
    from bench.students.follow import Follower
    from bench.students.meter import Window, tree_cpu_s

    board, rng = lc.ClassBoard(), random.Random(0)
    teacher = StreamlitSession(server.url, lc.CLASS_PAGE, f"teacher={key}&present=1")
    teacher.connect().wait(300)
    code = lc.start_class(_act, teacher, board)
    delays: list[float] = []
    proc, sessions = None, []
    ready, until = work.with_suffix(".ready"), work.with_suffix(".until")
    if kind == "chromium":
        cmd = [sys.executable, "-m", "bench.students.chromium", server.url, "--sessions", str(n)]
        cmd += ["--class-code", code, "--ready", str(ready), "--until", str(until)]
        log = open(work.with_suffix(".log"), "wb")  # noqa: SIM115 (closed below)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([*NICE, *cmd], cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 300
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Chromium students did not join; see {log.name}")
            time.sleep(0.5)
        generator = lambda: tree_cpu_s(proc.pid)  # noqa: E731
    else:
        for _ in range(n):
            s = StreamlitSession(server.url, lc.CLASS_PAGE, f"join={code}")
            Follower(s, board, lambda _v, s=s: board.shown(s), lambda v, d: delays.append(d))
            lc.join(_act, s, board, True)
            sessions.append(s)
        generator = lambda: cpu_s(os.getpid())  # noqa: E731
    try:
        time.sleep(2 + lc.POLL_S)  # the last join's own run, then a poll of every student
        quiet = Window(server.proc.pid, generator)
        quiet.start()
        time.sleep(QUIET_S)
        q = quiet.stop(0)
        lead = Window(server.proc.pid, generator)
        lead.start()
        lc.lead_lessons(_act, teacher, board, lc.STEPS_ONLY, rng)
        time.sleep(AFTER_LAST_S)
        changes = len(board.changes)
        w = lead.stop(changes)
    finally:
        if proc is not None:
            until.write_text("done\n")
            proc.wait(120)
            log.close()
        for s in [teacher, *sessions]:
            s.close()
    quiet_rate = q["server_cpu_s"] / q["window_s"]
    net = w["server_cpu_s"] - quiet_rate * w["window_s"]
    r = {
        "kind": kind,
        "followers": n,
        "teacher_changes": changes,
        "quiet": q,
        "lesson": w,
        # the polls (and the idle server): per student and second
        "server_cpu_ms_per_follower_s_quiet": 1000 * quiet_rate / n,
        # everything in the lesson (jumps, polls, the teacher's own runs)
        "server_cpu_ms_per_follower_change": 1000 * w["server_cpu_s"] / (n * changes),
        # less the quiet rate: a follower's jump to the teacher's step (with its share of
        # the teacher's click)
        "server_cpu_ms_per_jump": 1000 * net / (n * changes),
        "generator_cpu_ms_per_follower_change": 1000 * w["generator_cpu_s"] / (n * changes),
    }
    if delays:
        ordered = sorted(delays)
        r["follow_ms"] = {
            "count": len(ordered),
            "p50_ms": 1000 * ordered[len(ordered) // 2],
            "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
        }
    return r


CLASS_RATIOS = (
    "server_cpu_ms_per_follower_change",
    "server_cpu_ms_per_jump",
    "server_cpu_ms_per_follower_s_quiet",
)


def validate_class(
    server: Server, key: str, args: argparse.Namespace, result: dict, work: Path
) -> None:
    """Chromium against simulated followers, alternating, ``--rounds`` times."""
    rounds = []
    for k in range(args.rounds):
        pair: dict = {}
        for kind in ("chromium", "protocol"):
            pair[kind] = follow_round(server, key, kind, args.sessions, work / f"{kind}-{k}")
            pair[kind]["load_average_after"] = os.getloadavg()
            print(f"round {k} {kind}: {_follow_row(pair[kind])}", flush=True)
            drop_closed_sessions(server.url)
        for m in CLASS_RATIOS:
            pair[f"ratio_{m}"] = pair["protocol"][m] / pair["chromium"][m]
        rounds.append(pair)
    result["rounds"] = rounds
    for m in CLASS_RATIOS:
        result[f"median_ratio_{m}"] = statistics.median(p[f"ratio_{m}"] for p in rounds)


def _follow_row(r: dict) -> str:
    return (
        f"{r['followers']} followers, {r['teacher_changes']} teacher changes: server CPU "
        f"{r['server_cpu_ms_per_follower_change']:.1f} ms per follower and change "
        f"({r['server_cpu_ms_per_jump']:.1f} ms less the polls), "
        f"{r['server_cpu_ms_per_follower_s_quiet']:.1f} ms per follower-second quiet; "
        f"generator {r['generator_cpu_ms_per_follower_change']:.0f} ms per follower and change"
    )


def print_class_validation(result: dict) -> None:
    for k, pair in enumerate(result["rounds"]):
        for kind in ("chromium", "protocol"):
            print(f"round {k} {kind}: {_follow_row(pair[kind])}")
    print(
        "\nprotocol / chromium, median of the rounds: server CPU per follower and change "
        f"{result['median_ratio_server_cpu_ms_per_follower_change']:.2f}, per jump (less the "
        f"polls) {result['median_ratio_server_cpu_ms_per_jump']:.2f}, per follower-second "
        f"quiet {result['median_ratio_server_cpu_ms_per_follower_s_quiet']:.2f}"
    )


def merge_series(old: dict, new: dict) -> dict:
    """A class series measured in parts (``--merge``): the new run's rows replace the old
    file's rows of the same size and trainings; each row keeps its own date, command and
    load averages, and ``runs`` lists every part's.

    Args:
        old: the results file as it was.
        new: this run's result.

    Returns:
        The merged result (this run's machine and versions at the top).
    """
    rows = {(r["students"], r["trainings"]): r for r in old.get("sizes", [])}
    rows.update({(r["students"], r["trainings"]): r for r in new["sizes"]})
    part = ("when", "command", "load_average_before", "load_average_after", "versions")
    runs = old.get("runs") or [{k: old.get(k) for k in part}]
    merged = {**new, "runs": [*runs, {k: new.get(k) for k in part}]}
    merged["sizes"] = [rows[k] for k in sorted(rows, key=lambda k: (k[1], k[0]))]
    return merged


def class_main(
    args: argparse.Namespace,
    result: dict,
    env: dict[str, str],
    work: Path,
    out: Path,
    sizes: list[int],
    counts: list[int],
) -> None:
    """``--scenario class``: the class series (or its Chromium check), results, table."""
    result["scenario"] = (
        f"a live class, plan {args.plan!r} (bench/students/live_class.py): a teacher leads, "
        "90 % of the students follow and answer, 10 % explore Layers on their own"
    )
    result.pop("page")
    result.pop("window_s")
    server = start_server(result, env, work, args.replicas)
    key = env["CONVAE_TEACHER_KEY"]
    try:
        warm(server.url)
        warm_lessons(server.url)
        drop_closed_sessions(server.url)
        result["server_idle_cpu_ms_per_s"] = idle_ms_per_s(server.proc.pid)
        result["server_memory_mb_warm"] = deployment_memory_mb(server.proc.pid)
        if args.validate:
            validate_class(server, key, args, result, work)
        else:
            result["sizes"] = class_series(server, sizes, counts, key, work, out, args.plan)
    finally:
        server.stop()
    result["load_average_after"] = os.getloadavg()
    if not args.validate:
        for r in result["sizes"]:
            r["when"], r["command"] = result["when"], result["command"]
        if args.merge and out.exists():
            result = merge_series(json.loads(out.read_text()), result)
    out.write_text(json.dumps(result, indent=1) + "\n")
    if args.validate:
        print_class_validation(result)
    else:
        print(f"\n{result['when']}, {result['machine']['cpu']} x {result['cores']} cores\n")
        print(CLASS_HEADER)
        for r in result["sizes"]:
            print(_class_row(r))
    print(f"\nwrote {out} (work files in {work}); load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
