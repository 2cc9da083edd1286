"""What a browser test's page costs the browser: Chromium CPU seconds to open a page of
the app in a new browser context (what every browser test opens, tests/e2e/conftest.py)
against a new page in a warm one (tried on 2026-12-06 to shorten the browser tests: no
gain, so each test keeps a fresh context).

    .venv/bin/python bench/browser_contexts.py [--rounds 2] [--out ...]

Starts the app as ``./dev app`` does on the embedded sample (an empty data root, as the
fresh-machine pass runs it), warms the server's caches, then alternates the two ways
round by round, each round opening Reconstructions and Layers twice; a page's cost is the
CPU time of every Chromium process from ``goto`` until 7 s later (the page drawn and
idle). Writes bench/results/browser_contexts.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from bench.common import (  # noqa: E402
    ROOT,
    add_out_argument,
    free_port,
    run_stamp,
    serve_command,
    wait_healthy,
    write_results,
)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGES = ("recon", "layer-by-layer", "recon", "layer-by-layer")
VIEWPORT = {"width": 1400, "height": 1000}
SETTLE_S = 7.0


def chromium_cpu() -> dict[int, float]:
    """CPU seconds of every running Chromium process, by pid."""
    out = {}
    for p in psutil.process_iter(["name"]):
        try:
            if "chrom" in (p.info["name"] or ""):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the Chromium processes spent between two samples: a process's growth,
    or all of it when it started in between (one that ended in between is not counted,
    hence the pause after closing a page before the next is measured)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def one_round(browser, url: str, warm: bool) -> list[float]:
    """Open PAGES, each in a new context or as a new page of one warm context; the
    Chromium CPU of each."""
    shared = None
    if warm:
        shared = browser.new_context(viewport=VIEWPORT)
        page = shared.new_page()
        page.goto(f"{url}/code-cells")  # warm it on another page
        time.sleep(SETTLE_S)
        page.close()
    costs = []
    for path in PAGES:
        context = shared or browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        before = chromium_cpu()
        page.goto(f"{url}/{path}")
        time.sleep(SETTLE_S)
        costs.append(spent(before, chromium_cpu()))
        page.close()
        if shared is None:
            context.close()
        time.sleep(1.0)  # the closed page's renderer exits before the next sample
    if shared is not None:
        shared.close()
    return costs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2, help="rounds of each way (default: 2)")
    add_out_argument(p, "browser_contexts.json")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {
        **os.environ,
        "CONVAE_DATA": tempfile.mkdtemp(prefix="bench-empty-root-"),
        "CONVAE_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    server = subprocess.Popen(
        serve_command(port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    result = run_stamp(command="python bench/browser_contexts.py", rounds=args.rounds)
    ways = {"new context": [], "new page in a warm context": []}
    try:
        wait_healthy(url, server, timeout_s=120)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            one_round(browser, url, warm=False)  # the server's caches, not measured
            for r in range(args.rounds):
                for name, warm in (("new context", False), ("new page in a warm context", True)):
                    costs = one_round(browser, url, warm)
                    ways[name].extend(costs)
                    print(f"round {r + 1}, {name}: " + ", ".join(f"{c:.2f}" for c in costs))
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    result["chromium_cpu_s_per_page"] = {
        name: {"median": statistics.median(c), "min": min(c), "max": max(c), "all": c}
        for name, c in ways.items()
    }
    result["load_average_end"] = os.getloadavg()
    for name, s in result["chromium_cpu_s_per_page"].items():
        print(
            f"{name}: median {s['median']:.2f} s of Chromium CPU a page "
            f"({s['min']:.2f}-{s['max']:.2f})"
        )
    write_results(args.out, result)


if __name__ == "__main__":
    main()
