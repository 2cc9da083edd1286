"""A class on one server: N real browser sessions clicking at once, what the server pays.

Starts the app as ``./dev app`` does (serve.py, one server process) on a free loopback
port with the shipped checkpoints and the real CIFAR-10 copy, then drives N sessions in
one headless Chromium (N browser contexts, Playwright). For each N in ``--sessions`` and
each interaction below, every session clicks once, all at about the same moment (a
burst), and waits for its own run to finish; ``--rounds`` bursts. Measured:

- server CPU ms per click: the server process's CPU time (all its threads, from
  /proc/<pid>/stat) over the bursts, less what it spends idle with the same sessions
  open, divided by the clicks. This is the figure that carries over to another machine:
  a core gives 1000 ms of CPU a second.
- browser CPU ms per click: the Chromium processes' CPU time over the same bursts (all
  its tabs, so with trainings running also the training sessions' redraws), divided by
  the clicks: what drawing the answer costs on the students' side.
- p50 / p95 latency: from the click to the end of the run it caused, read in the page
  (the run counter of tests/e2e/conftest.py plus a timestamp of each run's end). The
  browsers run on the same cores as the server here, so latencies are inflated; the CPU
  per click is not.
- memory per open session: the server's RSS, PSS and USS (/proc/<pid>/smaps_rollup)
  with the N sessions open on the first interaction's page (Layers) after its bursts,
  less before, over N. Each later interaction gets N fresh sessions opened on its page.
- the same bursts while ``--trainings`` other sessions train (Train page; with the
  training queue their trainings may take turns, which is the point).
- a soak: open and close ``--soak`` sessions one after another; server memory with no
  session left, right after, and once Streamlit has dropped the closed sessions (it
  keeps a disconnected session ``server.disconnectedSessionTTL`` seconds, 120 by
  default, for a reconnect; see ``soak``).

The pages change; what the script clicks is in ``INTERACTIONS`` and ``TRAIN`` just
below: adapt the labels there. Results: bench/results/classroom.json and a markdown
table on stdout.

Usage::

    python bench/classroom.py --sessions 1,5,10,20
    python bench/classroom.py --sessions 1,5 --trainings 0 --soak 0      # quick check
    python bench/classroom.py --streamlit-arg=--runner.postScriptGC=false   # an experiment
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    add_out_argument,
    app_env,
    free_port,
    markdown_header,
    serve_command,
    wait_healthy,
    write_results,
)
from bench.students import meter  # noqa: E402
from tests.e2e.conftest import _RUN_COUNTER, CHROMIUM_ARGS, App, chromium_path  # noqa: E402


# --------------------------------------------------------------------- what is clicked
@dataclass(frozen=True)
class Interaction:
    """One control a student uses over and over, and where it is."""

    title: str  # the row's name in the table
    nav: str  # the page's title in the sidebar navigation
    path: str  # the page's url_path (first page a session opens)
    kind: str  # "button" (two buttons, forward/back), "radio" (two options), "slider"
    widget: str  # the widget's label (radio, slider); "" for buttons
    labels: tuple[str, ...]  # buttons / options to alternate between; slider: ()
    back_every: int = 8  # "button": go forward this many clicks, then back as many


INTERACTIONS: dict[str, Interaction] = {
    "layers": Interaction(
        "Layers: Next step", "Layers", "layer-by-layer", "button", "", ("Next ▶", "◀ Prev")
    ),
    "compare": Interaction(
        "Compare: A/B toggle",
        "Compare",
        "decoders",
        "radio",
        "Show",
        ("A: cifar10-transpose", "B: cifar10-upsample"),
    ),
    "code": Interaction(
        "Code: channel slider",
        "Code",
        "the-code",
        "slider",
        "Multiply the channel by",
        (),
    ),
}


@dataclass(frozen=True)
class TrainPage:
    """How a session starts and stops a long training on the Train page."""

    path: str = "training"
    images_label: str = "Training pictures"  # number input; set to its maximum
    epochs_label: str = "Epochs"
    epochs: int = 30  # long enough to outlast the measurement
    start: str = "Train"
    stop: str = "Stop"


TRAIN = TrainPage()

# Adds the time of each run's end to the run counter (window.__stRunEnd, page clock).
_RUN_END = """
window.__stRunEnd = 0;
new MutationObserver((records) => {
  for (const r of records) {
    if (r.target.getAttribute('data-test-script-state') === 'notRunning'
        && r.oldValue !== 'notRunning') window.__stRunEnd = performance.now();
  }
}).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                      attributeFilter: ['data-test-script-state']});
"""
# What the page shows, as text: every picture's alt text and caption in the main area.
_SHOWN = """() => Array.from(document.querySelectorAll(
  '[data-testid="stMain"] .cae-pic img, [data-testid="stMain"] figcaption'))
  .map(e => e.alt || e.textContent).join('|')"""
RUN_TIMEOUT_MS = 300_000  # 20 sessions clicking at once on 2 busy cores
GC_WAIT_S = 22  # pages/glue/server.py collects garbage every 20 s when scripts ran


# --------------------------------------------------------------------- the server
class Server:
    """serve.py in a subprocess; reads its CPU time and memory from /proc.

    Args:
        extra: more ``streamlit run`` options.
        env: environment added to ours.
        log: where the server's output goes.
        launcher: the command that starts one server and takes ``streamlit run``
            options (default serve.py; bench/session_memory.py wraps it).
    """

    def __init__(
        self,
        extra: list[str],
        env: dict[str, str],
        log: Path,
        launcher: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                serve_command(self.port, extra, launcher),
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_healthy(self.url, self.proc, 180, log)

    def cpu_s(self) -> float:
        """CPU seconds used by the server process so far (all threads)."""
        return meter.cpu_s(self.proc.pid)

    def memory_mb(self) -> dict[str, float]:
        """RSS, PSS and USS (private clean + dirty) of the server, in MB."""
        return meter.memory_mb(self.proc.pid)

    def sessions(self) -> dict[str, float]:
        """Streamlit's own session counters (/_stcore/metrics): active sessions and
        connect / disconnect events so far."""
        req = urllib.request.Request(
            f"{self.url}/_stcore/metrics", headers={"Accept": "text/plain"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("active_sessions "):
                out["active"] = float(line.split()[1])
            elif line.startswith("session_events_total{"):
                kind = line.split('type="', 1)[1].split('"', 1)[0]
                out[kind] = float(line.rsplit(" ", 1)[1])
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def browser_cpu_s() -> float:
    """CPU seconds used so far by the Chromium processes this script started (its
    descendants whose name says chrom or headless_shell; not the server's)."""
    return meter.tree_cpu_s(os.getpid(), ("chrom", "headless"))


# --------------------------------------------------------------------- sessions
class Student:
    """One browser context on the app: one Streamlit session."""

    def __init__(self, browser, base: str, path: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.add_init_script(_RUN_COUNTER)
        self.context.add_init_script(_RUN_END)
        self.page = self.context.new_page()
        self.page.set_default_timeout(RUN_TIMEOUT_MS)
        self.app = App(self.page, base)
        self.page.goto(f"{base}/{path}")
        self.app.wait_runs(0, RUN_TIMEOUT_MS)
        self.clicks = 0
        self._before = 0
        self._t0 = 0.0

    def go(self, nav: str) -> None:
        """Switch page inside the session (sidebar navigation: a rerun, same session)."""
        link = self.app.sidebar.get_by_role("link", name=nav, exact=True).first
        self.app.act(link.click, RUN_TIMEOUT_MS)

    def start(self, it: Interaction) -> None:
        """Click once (do not wait)."""
        self._before = self.app.runs()
        self._sig = self.page.evaluate(_SHOWN)
        self._t0 = self.page.evaluate("performance.now()")
        k = self.clicks
        if it.kind == "button":
            forward = (k // it.back_every) % 2 == 0
            name = it.labels[0] if forward else it.labels[1]
            self.app.main.get_by_role("button", name=name, exact=True).first.click()
        elif it.kind == "radio":
            box = self.app.widget("stButtonGroup", it.widget)
            box.get_by_role("radio", name=it.labels[k % 2], exact=True).first.click()
        elif it.kind == "slider":
            thumb = self.app.widget("stSlider", it.widget).get_by_role("slider").first
            thumb.press("ArrowRight" if (k // 4) % 2 == 0 else "ArrowLeft")
        else:
            raise ValueError(f"unknown interaction kind {it.kind!r}")
        self.clicks += 1

    def finish(self) -> float:
        """Wait for the run the click caused; return its latency in seconds.

        Done when the app is idle and either the run counter moved or the pictures shown
        changed (their alt texts and captions): Streamlit (1.67) sometimes runs a
        fragment without flipping the app's script-run state, e.g. after a page switch
        or a fresh session's first run, and then only the pictures tell."""
        end = self.page.wait_for_function(
            f"""([n, sig]) => {{
              const st = document.querySelector('[data-testid="stApp"]')
                ?.dataset.testScriptState;
              if (st !== 'notRunning') return false;
              if (window.__stRuns > n) return window.__stRunEnd || performance.now();
              return ({_SHOWN})() !== sig ? performance.now() : false;
            }}""",
            arg=[self._before, self._sig],
            timeout=RUN_TIMEOUT_MS,
        ).json_value()
        return (end - self._t0) / 1000

    def close(self) -> None:
        self.context.close()


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def bursts(server: Server, students: list[Student], it: Interaction, rounds: int) -> dict:
    """``rounds`` bursts of one click per student; CPU, latency."""
    for s in students:  # warm: this page's caches and figures for this session
        s.start(it)
    for s in students:
        s.finish()
    idle_window = 2.0
    c0 = server.cpu_s()
    time.sleep(idle_window)
    idle_rate = (server.cpu_s() - c0) / idle_window
    latencies: list[float] = []
    c0, b0, t0 = server.cpu_s(), browser_cpu_s(), time.perf_counter()
    for _ in range(rounds):
        for s in students:
            s.start(it)
        latencies += [s.finish() for s in students]
    cpu, wall = server.cpu_s() - c0, time.perf_counter() - t0
    browser = browser_cpu_s() - b0
    clicks = rounds * len(students)
    return {
        "clicks": clicks,
        "cpu_ms_per_click": 1000 * max(0.0, cpu - idle_rate * wall) / clicks,
        "cpu_ms_per_click_raw": 1000 * cpu / clicks,
        # every tab of the browser, the training sessions' included while they train
        "browser_cpu_ms_per_click": 1000 * browser / clicks,
        "idle_cpu_ms_per_s": 1000 * idle_rate,
        "p50_s": statistics.median(latencies),
        "p95_s": _percentile(latencies, 0.95),
        "max_s": max(latencies),
        "wall_s": wall,
    }


@contextmanager
def trainings(browser, base: str, n: int) -> Iterator[list[Student]]:
    """``n`` sessions training (Train page, all training images, many epochs)."""
    trainers = []
    try:
        for _ in range(n):
            s = Student(browser, base, TRAIN.path)
            field = s.app.widget("stNumberInput", TRAIN.images_label).locator("input")
            top = field.get_attribute("max") or "50000"
            s.app.set_number(TRAIN.images_label, int(float(top)))
            s.app.set_number(TRAIN.epochs_label, TRAIN.epochs)
            s.app.main.get_by_role("button", name=re.compile(rf"{TRAIN.start}$")).first.click()
            trainers.append(s)
        time.sleep(3.0)  # past the set-up, into the steps (or into the queue)
        yield trainers
    finally:
        for s in trainers:
            try:
                s.app.act(
                    s.app.main.get_by_role("button", name=re.compile(TRAIN.stop + "$")).first.click,
                    RUN_TIMEOUT_MS,
                )
            except Exception as exc:  # the measurement is done; report, close anyway
                print(f"(stopping a training: {exc})")
            s.close()


def _reopen(students: list[Student], browser, url: str, path: str) -> list[Student]:
    """As many fresh sessions, opened on ``path`` itself. Not a page switch inside each
    session: after one, Streamlit (1.67) runs a fragment without flipping the app's
    script-run state, and the run counter cannot see the click's run finish."""
    for s in students:
        s.close()
    return [Student(browser, url, path) for _ in students]


def session_ttl_s(streamlit_args: list[str] | None) -> float:
    """server.disconnectedSessionTTL as the server was started (Streamlit's default 120)."""
    ttl = 120.0
    for i, a in enumerate(streamlit_args or []):
        if a.startswith("--server.disconnectedSessionTTL"):
            ttl = float(a.split("=", 1)[1] if "=" in a else streamlit_args[i + 1])
    return ttl


def measure_n(server: Server, browser, n: int, args) -> dict:
    """Everything for one class size."""
    its = [INTERACTIONS[k] for k in args.interactions]
    # The sessions closed before (the previous size, its trainings) must be gone before
    # the baseline, or their release lands inside this size's figure (which then came out
    # negative). Streamlit keeps a closed session for server.disconnectedSessionTTL
    # seconds and drops it at the next disconnect after that; pages/glue/server.py's collector
    # then frees its garbage within 20 s of a script run. So: wait out the TTL, open and
    # close a probe session (that disconnect drops them), and let the collector run twice.
    time.sleep(session_ttl_s(args.streamlit_arg) + 2)
    for _ in range(2):
        Student(browser, server.url, its[0].path).close()
        time.sleep(GC_WAIT_S)
    mem0 = server.memory_mb()
    students = [Student(browser, server.url, its[0].path) for _ in range(n)]
    out: dict = {"sessions": n, "interactions": {}, "with_trainings": {}}
    for i, it in enumerate(its):
        if i:
            students = _reopen(students, browser, server.url, it.path)
        res = bursts(server, students, it, args.rounds)
        out["interactions"][it.title] = res
        print(f"N={n} {it.title}: {_fmt(res)}", flush=True)
        if i == 0:  # N sessions open on the first page (Layers), each having clicked
            mem1 = server.memory_mb()
            out["memory_mb_before"], out["memory_mb_after"] = mem0, mem1
            out["memory_mb_per_session"] = {k: (mem1[k] - mem0[k]) / n for k in mem0}
            print(
                f"N={n} memory per session (MB): {_mem(out['memory_mb_per_session'])}",
                flush=True,
            )
    if args.trainings:
        with trainings(browser, server.url, args.trainings):
            for i, it in enumerate(reversed(its)):  # the sessions are on the last page
                if i:
                    students = _reopen(students, browser, server.url, it.path)
                res = bursts(server, students, it, args.rounds)
                out["with_trainings"][it.title] = res
                print(f"N={n} + {args.trainings} trainings, {it.title}: {_fmt(res)}", flush=True)
    for s in students:
        s.close()
    return out


def soak(server: Server, browser, n: int, wait_s: float) -> dict:
    """Open and close ``n`` sessions one after another (each clicks once); server memory
    with no session left, right after, and once Streamlit has dropped them.

    Streamlit keeps a closed session for a reconnect in a TTL cache (up to 128 sessions,
    ``server.disconnectedSessionTTL`` seconds) that drops expired entries only when it
    is next written, i.e. at the next disconnect. So "dropped" is: wait ``wait_s``, then
    open and close one probe session, then measure.
    """
    it = INTERACTIONS["layers"]

    def settled() -> dict[str, float]:
        time.sleep(wait_s)
        probe = Student(browser, server.url, it.path)
        probe.close()
        time.sleep(5)
        return server.memory_mb()

    before = settled()  # the sessions of the measurements above are gone too
    sessions_before = server.sessions()
    for k in range(n):
        s = Student(browser, server.url, it.path)
        s.start(it)
        s.finish()
        s.close()
        if (k + 1) % 10 == 0:
            print(f"soak: {k + 1}/{n} sessions, RSS {server.memory_mb()['rss']:.0f} MB", flush=True)
    after = server.memory_mb()
    final = settled()
    return {
        "sessions": n,
        "before_mb": before,
        "after_mb": after,
        "after_wait_mb": final,
        "wait_s": wait_s,
        "streamlit_sessions_before": sessions_before,
        "streamlit_sessions_after_wait": server.sessions(),
        "rss_growth_after_wait": (final["rss"] - before["rss"]) / before["rss"],
    }


def _fmt(r: dict) -> str:
    return (
        f"{r['cpu_ms_per_click']:.0f} ms CPU/click (raw {r['cpu_ms_per_click_raw']:.0f}), "
        f"browsers {r['browser_cpu_ms_per_click']:.0f} ms CPU/click, "
        f"p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s"
    )


def _mem(m: dict) -> str:
    return ", ".join(f"{k.upper()} {v:.1f}" for k, v in m.items())


def markdown(result: dict) -> str:
    """The README's classroom table."""
    lines = markdown_header(
        "sessions",
        "interaction",
        "server CPU per click",
        "p50",
        "p95",
        "with trainings: p50 / p95",
        "memory per session (RSS / USS)",
    )
    for row in result["sizes"]:
        per = row["memory_mb_per_session"]
        for title, r in row["interactions"].items():
            t = row["with_trainings"].get(title)
            tr = f"{t['p50_s']:.2f} / {t['p95_s']:.2f} s" if t else "-"
            lines.append(
                f"| {row['sessions']} | {title} | {r['cpu_ms_per_click']:.0f} ms | "
                f"{r['p50_s']:.2f} s | {r['p95_s']:.2f} s | {tr} | "
                f"{per['rss']:.1f} / {per['uss']:.1f} MB |"
            )
    if result.get("soak"):
        s = result["soak"]
        lines.append("")
        lines.append(
            f"Soak: {s['sessions']} sessions opened and closed; server RSS "
            f"{s['before_mb']['rss']:.0f} MB with no session open, "
            f"{s['after_mb']['rss']:.0f} MB right after, {s['after_wait_mb']['rss']:.0f} MB "
            f"once Streamlit dropped them ({s['wait_s']:.0f} s + a probe session; "
            f"{100 * s['rss_growth_after_wait']:+.0f}%)."
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sessions", default="1,5,10,20", help="class sizes, comma-separated (default 1,5,10,20)"
    )
    ap.add_argument("--rounds", type=int, default=5, help="bursts per interaction (default 5)")
    ap.add_argument(
        "--interactions",
        default=",".join(INTERACTIONS),
        help=f"which of {', '.join(INTERACTIONS)} (default all)",
    )
    ap.add_argument(
        "--trainings", type=int, default=2, help="sessions training meanwhile (default 2; 0 skips)"
    )
    ap.add_argument(
        "--soak", type=int, default=50, help="sessions opened and closed (default 50; 0 skips)"
    )
    ap.add_argument(
        "--soak-wait",
        type=float,
        default=150,
        help="seconds to wait before and after the soak (default 150: Streamlit keeps a "
        "closed session server.disconnectedSessionTTL = 120 s)",
    )
    ap.add_argument(
        "--streamlit-arg",
        action="append",
        default=[],
        help="extra `streamlit run` option for the server, e.g. --streamlit-arg="
        "--runner.postScriptGC=false (repeatable)",
    )
    add_out_argument(ap, "classroom.json")
    args = ap.parse_args()
    args.interactions = [k.strip() for k in args.interactions.split(",") if k.strip()]
    unknown = set(args.interactions) - set(INTERACTIONS)
    if unknown:
        ap.error(f"unknown interaction(s) {sorted(unknown)}; choose from {list(INTERACTIONS)}")
    sizes = [int(x) for x in args.sessions.split(",")]
    if chromium_path() is None:
        ap.error("no Chromium (/usr/bin/chromium or $CONVAE_CHROMIUM): apt-get install chromium")

    from playwright.sync_api import sync_playwright

    env = app_env()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # fails now, not after the run
    log = Path(tempfile.mkdtemp(prefix="convae-classroom-")) / "server.log"
    result: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": vars(args),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_before": os.getloadavg(),
        "env": {k: os.environ[k] for k in ("CONVAE_MAX_TRAININGS",) if k in os.environ},
        "sizes": [],
    }
    server = Server(args.streamlit_arg, env, log)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            # Warm the server once (imports, data cache, shipped models, each page), so
            # that the first class size does not pay for it.
            warm = Student(browser, server.url, INTERACTIONS[args.interactions[0]].path)
            for k in args.interactions[1:]:
                warm.go(INTERACTIONS[k].nav)
            warm.close()
            result["memory_mb_warm"] = server.memory_mb()
            for n in sizes:
                result["sizes"].append(measure_n(server, browser, n, args))
            if args.soak:
                result["soak"] = soak(server, browser, args.soak, args.soak_wait)
            browser.close()
    finally:
        server.stop()
    result["load_average_after"] = os.getloadavg()
    print()
    print(markdown(result))
    write_results(args.out, result, indent=1)
    print(f"server log {log}; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
