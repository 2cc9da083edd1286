"""What holds the server's memory per open session, measured inside the real server.

Starts the app as ``./dev app`` does (serve.py) but through this file, which adds a
census thread to the server process (and ``tracemalloc``, from the first census on);
then drives real browser sessions (Playwright + Chromium, as bench/classroom.py) through
Layers, Compare and Code with a few clicks each. At three moments the server takes a
census: after one warm-up session, with ``--sessions`` more sessions open, and ``--wait``
seconds after they closed (Streamlit keeps a closed session
``server.disconnectedSessionTTL`` = 120 s).

A census: RSS/USS; live sessions; per session, the bytes of torch tensors and numpy
arrays reachable from its ``session_state`` (widget callbacks and format functions
included, and through them the page's last-run globals) that no other session reaches,
by global name, and of its pictures in Streamlit's in-memory media store (/media/...);
every tensor in the process (unique storages); the Python allocations (tracemalloc, which sees numpy
but not torch's own allocator) grouped by the first line of this project's code on
their stack, else the first frame; and a list of every ``st.cache_*`` in pages/ and
app.py with its ``max_entries`` / ``ttl`` (read from the source).

Usage: python bench/session_memory.py [--sessions 5] [--wait 150]
Writes bench/results/session_memory.json and prints a summary.
"""

from __future__ import annotations

import argparse
import ast
import ctypes
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench.common import add_out_argument, app_env, write_results  # noqa: E402

FRAMES = 8  # tracemalloc stack depth: enough to reach our code from torch/plotly


# ------------------------------------------------------------------ static: the caches
def cache_decorators() -> list[dict]:
    """Every ``st.cache_data`` / ``st.cache_resource`` in app.py and pages/, with its
    max_entries and ttl as written (None: unbounded / no expiry)."""
    rows = []
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for dec in node.decorator_list:
                call = dec if isinstance(dec, ast.Call) else None
                target = call.func if call else dec
                name = ast.unparse(target)
                if not name.startswith("st.cache_"):
                    continue
                kw = {k.arg: ast.unparse(k.value) for k in (call.keywords if call else [])}
                rows.append(
                    {
                        "where": f"{path.relative_to(ROOT)}:{node.lineno}",
                        "function": node.name,
                        "kind": name,
                        "max_entries": kw.get("max_entries"),
                        "ttl": kw.get("ttl"),
                    }
                )
    return rows


# ------------------------------------------------------------------ inside the server
def _rss_uss_mb() -> dict[str, float]:
    kb = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        kb[key] = int(value.split()[0])
    return {"rss": kb["Rss"] / 1024, "uss": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024}


_NOT_SESSION = ("asyncio", "threading", "uvicorn", "starlette", "concurrent")


def _array_key(obj) -> tuple[object, int] | None:
    """(identity, bytes) of a tensor's storage or a numpy array's base, else None."""
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        st = obj.untyped_storage()
        return (("t", st.data_ptr()), st.nbytes()) if st.data_ptr() else None
    if isinstance(obj, np.ndarray):
        base = obj if not isinstance(obj.base, np.ndarray) else obj.base
        return ("n", id(base)), base.nbytes
    return None


def _reach(root, module_dicts: set[int], pages: list | None = None) -> dict:
    """Every tensor storage / numpy array reachable from ``root``: {identity: bytes}.

    Follows functions into their globals and closures (a widget's callback or
    format_func defined in a page keeps that page's last-run globals alive), but not into
    real modules' namespaces (shared code and caches) nor into Streamlit's runtime, the
    event loop or threads (they lead to every session). Page namespaces met on the way
    (Streamlit runs a page as a fresh ``__main__`` module) are appended to ``pages``.
    """
    skip = (type, type(os), type(len))  # classes, modules, builtins
    found: dict = {}
    stack, visited, walked = [root], set(), 0
    while stack and walked < 3_000_000:
        obj = stack.pop()
        if id(obj) in visited or id(obj) in module_dicts or isinstance(obj, skip):
            continue
        visited.add(id(obj))
        walked += 1
        key = _array_key(obj)
        if key is not None:
            found[key[0]] = key[1]
            continue
        if isinstance(obj, str | bytes | int | float):
            continue
        mod = type(obj).__module__ or ""
        if mod.startswith(_NOT_SESSION) or (
            mod.startswith("streamlit.runtime") and not mod.startswith("streamlit.runtime.state")
        ):
            continue
        if pages is not None and isinstance(obj, dict) and obj.get("__name__") == "__main__":
            pages.append(obj)
        stack.extend(gc.get_referents(obj))
    return found


def census() -> dict:
    """Everything listed in the module docstring, taken in the server process."""
    import torch
    from streamlit.runtime import Runtime

    gc.collect()
    out: dict = {"memory_mb": _rss_uss_mb(), "sessions": []}
    rt = Runtime.instance()
    media = rt.media_file_mgr
    storage = getattr(media._storage, "_files_by_id", {})
    infos = rt._session_mgr.list_sessions()
    out["active_sessions"] = sum(1 for i in infos if i.client is not None)
    module_dicts = {id(vars(m)) for m in list(sys.modules.values()) if m is not None}
    reached, pages = [], []
    for info in infos:
        found_pages: list = []
        reached.append(_reach(info.session.session_state, module_dicts, found_pages))
        pages.append(found_pages)
    for k, info in enumerate(infos):
        others = set().union(*(r for n, r in enumerate(reached) if n != k))
        own = {key: b for key, b in reached[k].items() if key not in others}
        shared = sum(b for key, b in reached[k].items() if key in others)
        # What in the page namespaces the session keeps holds its own arrays, per name.
        names: dict[str, float] = {}
        for g in pages[k]:
            where = Path(str(g.get("__file__", "?"))).name
            for name, value in list(g.items()):
                # A function defined in the page reaches the whole namespace through its
                # __globals__: it is how the namespace is kept, not what fills it.
                if name.startswith("__") or isinstance(value, type(_reach)):
                    continue
                mb = sum(own.get(key, 0) for key in _reach(value, module_dicts)) / 2**20
                if mb >= 0.01:
                    names[f"{where}: {name}"] = max(names.get(f"{where}: {name}", 0), mb)
        files = media._files_by_session_and_coord.get(info.session.id, {})
        media_b = sum(
            len(storage[f].content) for f in files.values() if f in storage and storage[f].content
        )
        out["sessions"].append(
            {
                "active": info.client is not None,
                "own_arrays_mb": sum(own.values()) / 2**20,
                "shared_arrays_mb": shared / 2**20,
                "page_namespaces": sorted({str(g.get("__file__", "?")) for g in pages[k]}),
                "media_mb": media_b / 2**20,
                "media_files": len(files),
                "by_name": dict(sorted(names.items(), key=lambda kv: -kv[1])[:12]),
            }
        )
    out["media_store_mb"] = sum(len(f.content or b"") for f in storage.values()) / 2**20
    tensors, ptrs = 0, set()
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor):
            st = obj.untyped_storage()
            if st.data_ptr() and st.data_ptr() not in ptrs:
                ptrs.add(st.data_ptr())
                tensors += st.nbytes()
    out["all_tensors_mb"] = tensors / 2**20
    out["traced_python_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
    # Memory freed by Python and torch but kept by glibc's malloc (per-thread arenas,
    # and Streamlit runs each session in its own thread): give it back and measure what
    # that releases. Done after the figures above, so they are as the server had them.
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        out["memory_mb_after_malloc_trim"] = _rss_uss_mb()
    except OSError:
        pass
    return out


def _owner(tb: tracemalloc.Traceback) -> str:
    """The first frame in this project's code (pages/, convae/, app.py), else the
    allocation's own frame."""
    for frame in tb:  # most recent call first
        f = frame.filename
        if f.startswith(str(ROOT)) and "/.venv/" not in f and "/bench/" not in f:
            return f"{Path(f).relative_to(ROOT)}:{frame.lineno}"
    top = tb[0]
    short = top.filename.split("site-packages/")[-1]
    return f"{short}:{top.lineno}"


def _top_growth(a: tracemalloc.Snapshot, b: tracemalloc.Snapshot, n: int = 15) -> list:
    grown: dict[str, int] = {}
    for stat in b.compare_to(a, "traceback"):
        if stat.size_diff:
            grown[_owner(stat.traceback)] = grown.get(_owner(stat.traceback), 0) + stat.size_diff
    top = sorted(grown.items(), key=lambda kv: -kv[1])[:n]
    return [{"where": w, "mb": s / 2**20} for w, s in top]


def child(workdir: Path, streamlit_args: list[str]) -> None:
    """The server: tracemalloc on, a census thread answering request files, serve.py."""
    snaps: dict[str, tracemalloc.Snapshot] = {}

    def answer() -> None:
        while True:
            for req in sorted(workdir.glob("request-*")):
                name = req.name.split("-", 1)[1]
                if not tracemalloc.is_tracing():
                    # From the first census on (the warm server): tracing the start-up
                    # too would slow it several-fold and only the growth is compared.
                    tracemalloc.start(FRAMES)
                try:
                    result = census()
                    snaps[name] = tracemalloc.take_snapshot()
                    if len(snaps) > 1:
                        first = next(iter(snaps))
                        result["python_growth_since_" + first] = _top_growth(
                            snaps[first], snaps[name]
                        )
                except Exception as exc:  # report it to the parent rather than hang
                    result = {"error": repr(exc)}
                (workdir / f"census-{name}.json").write_text(json.dumps(result))
                req.unlink()
            time.sleep(0.5)

    threading.Thread(target=answer, daemon=True).start()
    import serve

    sys.exit(serve.serve_one(streamlit_args))


# ------------------------------------------------------------------ the parent
def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=5, help="sessions to open (default 5)")
    ap.add_argument("--clicks", type=int, default=3, help="clicks per page (default 3)")
    ap.add_argument(
        "--wait", type=float, default=150, help="seconds after closing them (default 150)"
    )
    add_out_argument(ap, "session_memory.json")
    args = ap.parse_args()

    import tempfile

    import classroom
    from classroom import INTERACTIONS, Server, Student
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="convae-memory-"))
    env = {**app_env(), "PYTHONPATH": str(ROOT)}
    # The server is this file in child mode: serve.py's server with the census added.
    launcher = [sys.executable, str(Path(__file__).resolve()), "--child", str(workdir)]
    server = Server([], env, workdir / "server.log", launcher=launcher)

    def ask(name: str) -> dict:
        (workdir / f"request-{name}").touch()
        path = workdir / f"census-{name}.json"
        deadline = time.monotonic() + 600
        while not path.exists():
            if time.monotonic() > deadline or server.proc.poll() is not None:
                raise RuntimeError(f"no census {name}: {(workdir / 'server.log').read_text()}")
            time.sleep(0.5)
        time.sleep(0.2)
        return json.loads(path.read_text())

    its = list(INTERACTIONS.values())

    def student_visit(browser) -> Student:
        s = Student(browser, server.url, its[0].path)
        for i, it in enumerate(its):
            if i:
                s.go(it.nav)
            for _ in range(args.clicks):
                s.start(it)
                s.finish()
        return s

    result: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": vars(args),
        "caches": cache_decorators(),
    }
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=classroom.chromium_path(), args=classroom.CHROMIUM_ARGS
            )
            student_visit(browser).close()
            result["warm"] = ask("warm")
            print(f"warm: {_summary(result['warm'])}", flush=True)
            students = [student_visit(browser) for _ in range(args.sessions)]
            result["open"] = ask("open")
            print(f"{args.sessions} open: {_summary(result['open'])}", flush=True)
            for s in students:
                s.close()
            # Streamlit drops expired closed sessions only at the next disconnect (see
            # classroom.soak): wait, then open and close one probe session.
            time.sleep(args.wait)
            Student(browser, server.url, its[0].path).close()
            time.sleep(5)
            result["closed"] = ask("closed")
            print(f"closed, {args.wait:.0f} s later: {_summary(result['closed'])}", flush=True)
            browser.close()
    finally:
        server.stop()
    # Baseline: the warm server after malloc_trim. "held": what the server holds with the
    # sessions open (freed-but-kept allocator memory included, as a server would);
    # "live": the same after malloc_trim (what the sessions really keep alive).
    w = result["warm"].get("memory_mb_after_malloc_trim", result["warm"]["memory_mb"])
    o = result["open"]["memory_mb"]
    o_live = result["open"].get("memory_mb_after_malloc_trim", o)
    result["per_session_mb"] = {
        "held": {k: (o[k] - w[k]) / args.sessions for k in w},
        "live": {k: (o_live[k] - w[k]) / args.sessions for k in w},
    }
    _report(result)
    print()
    write_results(args.out, result, indent=1)


def _summary(c: dict) -> str:
    if "error" in c:
        return c["error"]
    m = c["memory_mb"]
    t = c.get("memory_mb_after_malloc_trim", m)
    return (
        f"RSS {m['rss']:.0f} MB (after malloc_trim {t['rss']:.0f}), USS {m['uss']:.0f} MB, "
        f"{c['active_sessions']} active of "
        f"{len(c['sessions'])} sessions, tensors {c['all_tensors_mb']:.0f} MB, "
        f"media {c['media_store_mb']:.1f} MB, Python (traced) {c['traced_python_mb']:.0f} MB"
    )


def _report(r: dict) -> None:
    for kind, v in r["per_session_mb"].items():
        print(f"per open session, {kind}: RSS {v['rss']:.1f} MB, USS {v['uss']:.1f} MB")
    live = [s for s in r["open"]["sessions"] if s["active"]]
    if live:
        s = max(live, key=lambda s: s["own_arrays_mb"])
        print(
            f"largest live session: own tensors/arrays {s['own_arrays_mb']:.1f} MB (shared with "
            f"other sessions {s['shared_arrays_mb']:.1f} MB), pictures {s['media_mb']:.2f} MB "
            f"in {s['media_files']} files; page namespaces it keeps: {s['page_namespaces']}"
        )
        for name, mb in s["by_name"].items():
            print(f"  {mb:8.2f} MB  {name}")
    growth = r["open"].get("python_growth_since_warm", [])
    print("\nPython allocations grown from warm to open (tracemalloc, by our code line):")
    for g in growth:
        print(f"  {g['mb']:7.2f} MB  {g['where']}")
    print("\ncaches in pages/ and app.py:")
    for c in r["caches"]:
        print(
            f"  {c['where']:28s} {c['kind']:18s} {c['function']:24s} "
            f"max_entries={c['max_entries']} ttl={c['ttl']}"
        )


if __name__ == "__main__":
    main()
