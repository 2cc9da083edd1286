"""Where the test suite's time goes: both passes of ``./dev test`` with each test's wall and
CPU seconds recorded (tests/cputime.py), summed up into one results file.

This 2-core machine is shared: the load average runs 5 to 12, so a test's wall time is
mostly a measure of the other jobs. CPU time (the pytest process and everything it
started: app servers, Chromium, torchrun's workers, subprocesses) barely moves with the
load, so the slowest tests, the per-file totals and the before/after comparison are read
in CPU seconds, with the wall seconds beside them. The quiet-machine wall time of a pass is
estimated from its CPU seconds and a reference run whose quiet wall time is known:
``quiet_wall_ref * cpu / cpu_ref`` (``--reference``: a results file of this script with
``quiet_wall`` set per pass, e.g. issue 21's 511 s and 347 s for the suite as it was).

Usage::

    # run both passes (CI=true, as .ci/run does) in this checkout, then sum them up
    python bench/test_times.py run [--out bench/results/test_times.json] [--reference F]
    # run `bash .ci/run` as CI does (no per-test recording) N times in a row: each
    # run's exit status, both passes' wall seconds and counts, the load average
    python bench/test_times.py ci [--runs 3] [--out bench/results/test_times-ci.json]
    # some tests N times in a row as the fresh-machine pass runs them (CI=true, no
    # shared data, an empty data root): each run's outcome, wall seconds, failures
    python bench/test_times.py repeat --runs 20 --out F tests/e2e/test_train_stop.py ...
    # sum up a folder that CONVAE_TEST_CPU=FOLDER ./dev test wrote
    python bench/test_times.py summarize FOLDER [--out ...] [--reference F]
    # ... beside a "before" run: its folder, and/or a pytest --durations listing of it
    python bench/test_times.py summarize FOLDER --before OLD_FOLDER --before-durations F.txt
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = 20


def _test_totals(rec: dict) -> tuple[float, float, float]:
    """(wall, CPU of pytest, CPU of what it started) of one test, its three phases summed."""
    phases = [rec[w] for w in ("setup", "call", "teardown") if w in rec]
    return (
        sum(p["wall"] for p in phases),
        sum(p["cpu"] for p in phases),
        sum(p["cpu_children"] for p in phases),
    )


def summarize_pass(doc: dict) -> dict:
    """One pass's counts, totals, slowest tests (by CPU and by wall) and per-file totals."""
    rows, files = [], defaultdict(lambda: {"tests": 0, "wall": 0.0, "cpu": 0.0})
    counts = defaultdict(int)
    for nodeid, rec in doc["tests"].items():
        wall, own, kids = _test_totals(rec)
        counts[rec["outcome"]] += 1
        row = {
            "test": nodeid,
            "wall": round(wall, 1),
            "cpu": round(own + kids, 1),
            "cpu_pytest": round(own, 1),
            "cpu_started": round(kids, 1),
            "setup_wall": round(rec.get("setup", {}).get("wall", 0.0), 1),
            "outcome": rec["outcome"],
        }
        rows.append(row)
        f = files[nodeid.split("::")[0]]
        f["tests"] += 1
        f["wall"] += wall
        f["cpu"] += own + kids
    by_file = sorted(
        (
            {"file": k, **{n: round(v, 1) if n != "tests" else v for n, v in f.items()}}
            for k, f in files.items()
        ),
        key=lambda r: -r["cpu"],
    )
    tests_wall = sum(r["wall"] for r in rows)
    tests_cpu = sum(r["cpu"] for r in rows)
    return {
        "counts": dict(counts),
        "wall": doc["wall"],
        "cpu": round(doc["cpu"] + doc["cpu_children"], 1),
        "cpu_pytest": doc["cpu"],
        "cpu_started": doc["cpu_children"],
        "cpu_process_start": round(doc["cpu_process"] - doc["cpu"], 1),
        "tests_wall": round(tests_wall, 1),
        "tests_cpu": round(tests_cpu, 1),
        "outside_tests_wall": round(doc["wall"] - tests_wall, 1),
        "load_start": [round(x, 2) for x in doc["load_start"]],
        "load_end": [round(x, 2) for x in doc["load_end"]],
        "load_mean_1min": doc["load_mean_1min"],
        "torch_threads": doc.get("torch_threads"),
        "finished": doc["finished"],
        "slowest_cpu": sorted(rows, key=lambda r: -r["cpu"])[:TOP],
        "slowest_wall": sorted(rows, key=lambda r: -r["wall"])[:TOP],
        "files": by_file,
    }


def summarize(folder: Path, reference: Path | None, note: str) -> dict:
    """Both passes of ``folder`` (pass1.json, pass2.json), with quiet-machine estimates
    when a reference with known quiet wall times is given."""
    ref = json.loads(reference.read_text()) if reference else None
    out: dict = {
        "what": "./dev test, both passes, per-test wall and CPU seconds (tests/cputime.py)",
        "note": note,
        "commit": _git("rev-parse", "HEAD"),
        "machine": f"{os.cpu_count()} cores, shared with other jobs (see load averages)",
        "passes": {},
    }
    for name in ("pass1", "pass2"):
        path = folder / f"{name}.json"
        if not path.is_file():
            continue
        doc = json.loads(path.read_text())
        # Two pytest-xdist workers: the tests are in their files, the totals in the
        # controller's (whose CPU counts the workers and what they started).
        workers = sorted(folder.glob(f"{name}-gw*.json"))
        for w in workers:
            wdoc = json.loads(w.read_text())
            doc["tests"].update(wdoc["tests"])
            doc["loads"] = doc.get("loads", []) + [wdoc["load_mean_1min"]]
        if workers:
            doc["load_mean_1min"] = round(sum(doc["loads"]) / len(doc["loads"]), 2)
        s = summarize_pass(doc)
        s["workers"] = len(workers) or 1
        if workers:  # the workers' tests overlap in time: their sum is worker-seconds
            s["outside_tests_wall"] = None
        if ref and name in ref["passes"] and ref["passes"][name].get("quiet_wall"):
            r = ref["passes"][name]
            s["quiet_wall_estimate"] = round(r["quiet_wall"] * s["cpu"] / r["cpu"], 0)
            s["quiet_wall_estimate_from"] = (
                f"{r['quiet_wall']} s quiet for {r['cpu']} CPU s ({reference.name}, "
                f"{r.get('quiet_wall_source', '')})"
            )
        out["passes"][name] = s
    return out


def durations_listing(path: Path) -> dict:
    """A pytest ``--durations=N`` listing (one run's slowest phases, wall seconds) as
    {"source", "summary" (its last line), "slowest": [{"test", "phase", "wall"}, ...]}."""
    rows, summary = [], ""
    for line in path.read_text().splitlines():
        m = re.match(r"\s*([\d.]+)s (setup|call|teardown)\s+(\S+)", line)
        if m:
            rows.append({"test": m[3], "phase": m[2], "wall": float(m[1])})
        elif re.search(r"\d+ (passed|failed)", line):
            summary = line.strip()
    return {"source": str(path), "summary": summary, "slowest": rows[:TOP]}


def compare(before: dict, after: dict) -> dict:
    """Per pass: CPU, wall and counts before and after, and the ratio of CPU seconds."""
    out = {}
    for name in ("pass1", "pass2"):
        b, a = before["passes"].get(name), after["passes"].get(name)
        if not (a and b):
            continue
        out[name] = {
            "cpu_before": b["cpu"],
            "cpu_after": a["cpu"],
            "cpu_ratio": round(a["cpu"] / b["cpu"], 3),
            "wall_before": b["wall"],
            "wall_after": a["wall"],
            "load_before": b["load_mean_1min"],
            "load_after": a["load_mean_1min"],
            "counts_before": b["counts"],
            "counts_after": a["counts"],
        }
    both = [out[n] for n in ("pass1", "pass2") if n in out]
    if len(both) == 2:
        out["both"] = {
            "cpu_before": round(sum(p["cpu_before"] for p in both), 1),
            "cpu_after": round(sum(p["cpu_after"] for p in both), 1),
            "wall_before": round(sum(p["wall_before"] for p in both), 1),
            "wall_after": round(sum(p["wall_after"] for p in both), 1),
        }
    return out


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()


def run_suite(folder: Path) -> int:
    """Both passes of ./dev test under CI=true (as .ci/run), recording into ``folder``."""
    env = {**os.environ, "CI": "true", "CONVAE_TEST_CPU": str(folder)}
    env.pop("CONVAE_TEST_CPU_OWNER", None)
    return subprocess.run(["./dev", "test"], cwd=ROOT, env=env, check=False).returncode


PASS_LINE = re.compile(r"^== pass (\d) \(([^)]*)\): exit status (\d+), (\d+) s$")
COUNT_LINE = re.compile(r"^(?:=+ )?(.*\d+ (?:passed|failed).*) in ([\d.]+)s")


def ci_runs(runs: int, out: Path, note: str) -> int:
    """``bash .ci/run`` ``runs`` times, as CI runs it; each run's passes from its output."""
    doc = {
        "what": "bash .ci/run (CI=true ./dev test), run after run, wall seconds per pass",
        "note": note,
        "commit": _git("rev-parse", "HEAD"),
        "machine": f"{os.cpu_count()} cores",
        "runs": [],
    }
    worst = 0
    for i in range(runs):
        load_before = [round(x, 2) for x in os.getloadavg()]
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        t0 = time.monotonic()
        proc = subprocess.run(
            ["bash", ".ci/run"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        wall = time.monotonic() - t0
        passes, counts = {}, []
        for line in proc.stdout.splitlines():
            if m := COUNT_LINE.match(line):
                counts.append(m[1])
            if m := PASS_LINE.match(line):
                passes[f"pass{m[1]}"] = {"exit_status": int(m[3]), "wall": int(m[4])}
        for (_, p), c in zip(sorted(passes.items()), counts, strict=False):
            p["counts"] = c
        run = {
            "started": started,
            "exit_status": proc.returncode,
            "wall": round(wall),
            "passes": passes,
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "failures": [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED")],
        }
        if proc.returncode:  # what a failure said, to find its cause afterwards
            run["output_tail"] = (proc.stdout + proc.stderr)[-30000:]
        doc["runs"].append(run)
        worst = max(worst, proc.returncode)
        print(f"run {i + 1}: exit status {proc.returncode}, {wall:.0f} s, {passes}", flush=True)
        out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")
    return worst


def fresh_pass_env(data_root: str) -> dict[str, str]:
    """The environment of ./dev test's fresh-machine pass (pass 2), under CI=true: no
    shared data, ``data_root`` (an empty folder) as the data root, offline."""
    return {
        **os.environ,
        "CI": "true",
        "CONVAE_SHARED": "/nonexistent",
        "CONVAE_DATA": data_root,
        "CONVAE_OFFLINE": "1",
        "CONVAE_FRESH_PASS": "1",
    }


# ./dev test's passes as pytest arguments (two workers each; see ./dev)
MAIN_PASS = ["-m", "not machine_data", "-n", "2", "--dist", "loadfile"]
FRESH_PASS = ["-m", "machine_data", "tests/e2e", "-n", "2", "--dist", "loadfile"]


def run_pytest(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """One quiet pytest process in this checkout (no cache folder), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def repeat_runs(runs: int, out: Path, note: str, tests: list[str]) -> int:
    """Run ``tests`` ``runs`` times in a row as pass 2 of ./dev test runs them (a fresh
    machine: no shared data, an empty data root, offline, CI=true), one pytest process
    each; every run's exit status, counts, wall seconds and failures."""
    doc = {
        "what": "the same tests run after run, as ./dev test's fresh-machine pass runs them",
        "tests": tests,
        "note": note,
        "commit": _git("rev-parse", "HEAD"),
        "runs": [],
    }
    worst = 0
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="repeat-data-") as root:
            env = fresh_pass_env(root)
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            load_before = [round(x, 2) for x in os.getloadavg()]
            t0 = time.monotonic()
            proc = run_pytest(tests, env)
        lines = proc.stdout.splitlines()
        run = {
            "started": started,
            "exit_status": proc.returncode,
            "wall": round(time.monotonic() - t0),
            "counts": next((m[1] for ln in lines if (m := COUNT_LINE.match(ln))), ""),
            "load_before": load_before,
            "failures": [ln for ln in lines if ln.startswith("FAILED")],
        }
        if proc.returncode:
            run["output_tail"] = (proc.stdout + proc.stderr)[-30000:]
        doc["runs"].append(run)
        worst = max(worst, proc.returncode)
        print(
            f"run {i + 1}: exit status {proc.returncode}, {run['wall']} s, {run['counts']}",
            flush=True,
        )
        out.write_text(json.dumps(doc, indent=1) + "\n")
    green = sum(r["exit_status"] == 0 for r in doc["runs"])
    print(f"{green} of {runs} runs green; wrote {out}")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["run", "summarize", "ci", "repeat"])
    ap.add_argument("--runs", type=int, default=3, help="ci: runs in a row (default: 3)")
    ap.add_argument("folder", nargs="?", type=Path, help="summarize: the CONVAE_TEST_CPU folder")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default: bench/results/test_times.json, test_times-ci.json for ci)",
    )
    ap.add_argument("--reference", type=Path, help="a results file with quiet_wall per pass")
    ap.add_argument("--note", default="", help="a line saying what was measured")
    ap.add_argument("--before", type=Path, help="the CONVAE_TEST_CPU folder of a run before")
    ap.add_argument("--before-note", default="", help="a line saying what that run was")
    ap.add_argument(
        "--before-durations", type=Path, help="a pytest --durations listing of a run before"
    )
    ap.add_argument("tests", nargs="*", help="repeat: the tests to run (pytest node ids)")
    args = ap.parse_intermixed_args()
    if args.what == "repeat":
        tests = [str(args.folder), *args.tests] if args.folder else args.tests
        if not tests or args.out is None:
            ap.error("repeat needs --out FILE and the tests to run")
        return repeat_runs(args.runs, args.out, args.note, tests)
    if args.what == "ci":
        return ci_runs(args.runs, args.out or ROOT / "bench/results/test_times-ci.json", args.note)
    args.out = args.out or ROOT / "bench/results/test_times.json"
    if args.what == "run":
        folder = Path(tempfile.mkdtemp(prefix="test_times-"))
        t0 = time.monotonic()
        rc = run_suite(folder)
        print(f"./dev test exit status {rc} in {time.monotonic() - t0:.0f} s; records in {folder}")
    else:
        folder = args.folder
        if folder is None:
            ap.error("summarize needs the folder CONVAE_TEST_CPU pointed at")
    doc = summarize(folder, args.reference, args.note)
    if args.before or args.before_durations:
        doc = {"after": doc, "before": {}}
        if args.before:
            doc["before"] = summarize(args.before, None, args.before_note)
            doc["compare"] = compare(doc["before"], doc["after"])
        if args.before_durations:
            doc["before"]["durations_listing"] = durations_listing(args.before_durations)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    for name, s in doc.get("after", doc)["passes"].items():
        est = s.get("quiet_wall_estimate")
        print(
            f"{name}: {s['counts']} wall {s['wall']} s, CPU {s['cpu']} s, load "
            f"{s['load_mean_1min']}" + (f", quiet estimate {est:.0f} s" if est else "")
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
