"""What the Code space page costs the server: its open with a warm cache, a click on one
point of the map and a lasso around a group, as CPU time of a real ``serve.py`` process.

The app runs as ``./dev app`` runs it (serve.py, one process, bench.classroom.Server) on a
free loopback port. Sessions are simulated browsers that speak Streamlit's websocket
protocol (bench/students/protocol.py): they open the page, and click or lasso by sending
the map's selection state exactly as the browser's plotly chart sends it (JSON: the
selected points with their ``customdata``, and the lasso's path), which reruns the map's
fragment. The server's CPU time (all threads, user + system) is read from
``/proc/<pid>/stat`` before and after each request; the clock ticks at 10 ms, so each
figure is also given as the total over all repeats divided by their number. The students'
own decoding runs in this process and is not counted.

Measured:

* ``first_open``: the first session of a fresh server process (its caches empty); whether
  the data root's code-space cache already held the maps is recorded (``disk_cache``);
* ``open``: ``--repeats`` more sessions, each a new one opening the page (the process's
  caches warm: what every student after the first pays);
* ``click``: one point each time, a different picture each time (its reconstructions are
  not in the cache yet: the dearer case), on one session;
* ``lasso``: a rectangle around a random centre holding about ``--lasso`` pictures, a new
  one each time; the page draws the first 24 of them.

With ``--browser`` it also times the open in headless Chromium (Playwright): from
``goto`` until both maps are drawn, a new browser context each time (the browser shares the
2 cores with the server, so this wall time is an upper bound).

The machine is shared with other jobs: the load average is recorded before and after;
read CPU times, not wall times.

Usage::

    python bench/codespace_page.py                      # data root's CIFAR-10, or the sample
    python bench/codespace_page.py --repeats 15 --lasso 500 --browser

Writes bench/results/codespace-page.json. Targets: the open <= 300 ms of server CPU (and
<= 2 s in a browser), a click or a lasso <= 50 ms of server CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402

from bench.capacity import server_env  # noqa: E402
from bench.classroom import Server  # noqa: E402
from bench.students.protocol import StreamlitSession  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PAGE = "code-space"
CHART = "codespace_map_code"
TARGETS = {"open_cpu_ms": 300, "open_browser_s": 2.0, "click_cpu_ms": 50, "lasso_cpu_ms": 50}


def _settle(server: Server, quiet_s: float = 1.0, limit_s: float = 30.0) -> None:
    """Wait until the server has used no CPU for ``quiet_s`` (background work after a run:
    websocket writes, session bookkeeping), so a measurement starts from rest."""
    deadline = time.monotonic() + limit_s
    last = server.cpu_s()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = server.cpu_s()
        if now == last:
            return
        last = now


def _measured(server: Server, request, timeout: float = 300.0) -> dict:
    """Server CPU (ms) and the run's latency (s) of one request; ``request()`` sends it
    and returns its Request."""
    _settle(server)
    cpu0 = server.cpu_s()
    req = request()
    latency = req.wait(timeout)
    _settle(server, 0.5)
    return {"cpu_ms": 1000 * (server.cpu_s() - cpu0), "latency_s": latency}


def _summary(rows: list[dict]) -> dict:
    cpu = [r["cpu_ms"] for r in rows]
    return {
        "n": len(rows),
        "median_cpu_ms": statistics.median(cpu),
        "mean_cpu_ms": sum(cpu) / len(cpu),  # total / n: finer than the 10 ms tick
        "max_cpu_ms": max(cpu),
        "median_latency_s": statistics.median(r["latency_s"] for r in rows),
        "rows": rows,
    }


def _map_points(source: str, root: str) -> list[tuple[int, float, float]]:
    """The code map's points as the page draws them (A = cifar10-transpose's PCA map, read
    from the data root's cache the server filled): (picture, x, y)."""
    from convae.catalog import weights_digest
    from convae.checkpoints import load_checkpoint
    from convae.codespace import CodeSpace
    from convae.data import load_dataset

    data = load_dataset(source, root=root)
    ck = load_checkpoint(ROOT / "checkpoints" / "cifar10-transpose.pt")
    space = CodeSpace(ck.model, data, root=root, digest=weights_digest(ck.model))
    coords = space.map("pca").coords.tolist()
    return [(i, x, y) for i, (x, y) in enumerate(coords)]


def _selection(points: list[tuple[int, float, float]], lasso: list | None = None) -> str:
    """The chart's widget value for these selected points, as the browser sends it."""
    return json.dumps(
        {
            "selection": {
                "points": [
                    {
                        "curve_number": 0,
                        "point_number": k,
                        "point_index": k,
                        "x": x,
                        "y": y,
                        "customdata": i,
                        "legendgroup": None,
                    }
                    for k, (i, x, y) in enumerate(points)
                ],  # fmt: skip
                "point_indices": list(range(len(points))),
                "box": [],
                "lasso": [{"xref": "x", "yref": "y", "x": lasso[0], "y": lasso[1]}]
                if lasso
                else [],
            }
        }
    )


def _select(session: StreamlitSession, value: str):
    w = session.widget(CHART)
    session.view.states[w.id] = WidgetState(id=w.id, string_value=value)
    return session.rerun(fragment_id=w.fragment_id)


def _lasso_around(points, centre, want: int) -> tuple[list, list]:
    """About ``want`` points nearest to ``centre`` in a square, and the square's path."""
    _, cx, cy = centre
    by_reach = sorted(max(abs(x - cx), abs(y - cy)) for _, x, y in points)
    r = by_reach[min(want, len(by_reach) - 1)]
    inside = [p for p in points if abs(p[1] - cx) <= r and abs(p[2] - cy) <= r]
    path = [[cx - r, cx + r, cx + r, cx - r, cx - r], [cy - r, cy - r, cy + r, cy + r, cy - r]]
    return inside, path


def browser_opens(url: str, repeats: int) -> dict:
    """Seconds from goto to both maps drawn, in headless Chromium (a new context each)."""
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    drawn = (
        '() => { const g = document.querySelectorAll(\'[data-testid="stPlotlyChart"] '
        ".js-plotly-plot'); return g.length >= 2 && Array.from(g).every(e => e._fullData"
        " && e._fullData.length > 0 && e.querySelector('canvas')); }"
    )
    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        for _ in range(repeats + 1):  # the first loads plotly's bundle into the disk cache
            ctx = browser.new_context(viewport={"width": 1440, "height": 900})
            page = ctx.new_page()
            t0 = time.perf_counter()
            page.goto(f"{url}/{PAGE}")
            page.wait_for_function(drawn, timeout=120_000)
            times.append(time.perf_counter() - t0)
            ctx.close()
        browser.close()
    return {"first_s": times[0], "median_s": statistics.median(times[1:]), "all_s": times}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=15, help="opens, clicks and lassos each")
    p.add_argument("--lasso", type=int, default=500, help="pictures in each lasso (about)")
    p.add_argument("--browser", action="store_true", help="also time the open in Chromium")
    p.add_argument("--seed", type=int, default=0, help="picks the clicked points")
    p.add_argument("--out", default=str(RESULTS / "codespace-page.json"))
    args = p.parse_args()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="codespace-page-"))
    env, source = server_env(tmp)
    env["OMP_NUM_THREADS"] = "1"  # as the browser tests' server: one torch thread
    root = env["CONVAE_DATA"]
    from convae.codespace.cache import FOLDER

    cache = Path(root) / "cache" / FOLDER
    disk_cache = cache.is_dir() and any(cache.iterdir())
    server = Server([], env, tmp / "server.log")
    try:
        first = StreamlitSession(server.url, PAGE)
        first_open = _measured(server, first.connect, timeout=600)
        assert not first.view.exceptions(), first.view.exceptions()
        opens = []
        for _ in range(args.repeats):
            s = StreamlitSession(server.url, PAGE)
            opens.append(_measured(server, s.connect))
            assert not s.view.exceptions(), s.view.exceptions()
            s.close()
        points = _map_points(source, root)
        rng = random.Random(args.seed)
        picks = rng.sample(points, args.repeats)
        clicks = [_measured(server, lambda q=q: _select(first, _selection([q]))) for q in picks]
        texts = " ".join(first.texts())
        assert "1 picture selected" in texts, texts[-500:]
        lassos = []
        for centre in rng.sample(points, args.repeats):
            inside, path = _lasso_around(points, centre, args.lasso)
            row = _measured(server, lambda i=inside, pa=path: _select(first, _selection(i, pa)))
            lassos.append({**row, "pictures": len(inside)})
        assert f"{len(inside):,} pictures selected" in " ".join(first.texts())
        first.close()
        browser = browser_opens(server.url, min(args.repeats, 7)) if args.browser else None
    finally:
        server.stop()
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/codespace_page.py " + " ".join(sys.argv[1:]),
        "how": "server CPU of a real serve.py process (/proc/<pid>/stat) around each "
        "request of simulated browsers speaking Streamlit's websocket protocol "
        "(bench/students/protocol.py); a click or lasso is the map's selection state as the "
        "browser sends it, rerunning the map's fragment",
        "data": source,
        "disk_cache": disk_cache,
        "first_open": first_open,
        "open": _summary(opens),
        "click": _summary(clicks),
        "lasso": _summary(lassos),
        "browser_open": browser,
        "targets": TARGETS,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"streamlit": version("streamlit"), "plotly": version("plotly")},
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    for name in ("open", "click", "lasso"):
        r = out[name]
        print(
            f"{name}: median {r['median_cpu_ms']:.0f} ms, mean {r['mean_cpu_ms']:.1f} ms "
            f"of server CPU (n={r['n']}), latency {r['median_latency_s']:.2f} s"
        )
    if browser:
        print(f"open in Chromium: median {browser['median_s']:.2f} s")
    print(
        f"first open: {first_open['cpu_ms']:.0f} ms CPU; load {load_before} -> {out['load_after']}"
    )


if __name__ == "__main__":
    main()
