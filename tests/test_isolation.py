"""Many students on one server: what one session trains or uploads is invisible to the
others, and caches shared between sessions are keyed by a digest of the weights, so two
sessions' "trained:1" (different models under the same picker key) never mix."""

from __future__ import annotations

import ast
from pathlib import Path

from convae.data import load_dataset
from convae.recon import reconstruct_scored

from .apptools import open_page, pictures, start
from .test_app import app_env  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]


def _train(at, seed: int) -> None:
    open_page(at, "train")
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_limit").set_value(24)
    at.number_input(key="train_seed").set_value(seed)
    at.button(key="train_start").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_two_sessions_with_the_same_model_key_see_their_own_numbers(app_env, monkeypatch):  # noqa: F811
    a = start(app_env, monkeypatch)
    b = start(app_env, monkeypatch)
    _train(a, seed=1)
    _train(b, seed=2)
    shown = {}
    for name, at in (("a", a), ("b", b)):
        entry = at.session_state["trained_models"]["trained:1"]
        at.sidebar.multiselect(key="sidebar_models").set_value(["trained:1"]).run()
        open_page(at, "reconstructions")
        at.slider(key="recon_n").set_value(6).run()
        pics = pictures(at)
        rebuilt = [p.caption for p in pics if "rebuilt by" in p.alt]
        # What this session's own model gives on the same pictures:
        ds = load_dataset(app_env["CONVAE_SOURCE"], root=app_env["CONVAE_DATA"])
        own = reconstruct_scored(entry.model, ds.test.floats(slice(0, 6))).psnr
        assert rebuilt == [f"{v:.1f} dB" for v in own.tolist()], name
        shown[name] = rebuilt
        # The other session's model is not offered here.
        options = at.sidebar.multiselect(key="sidebar_models").options
        assert len([o for o in options if "(yours)" in o]) == 1
    assert shown["a"] != shown["b"]  # same key, different models, different numbers


def test_no_shared_cache_is_keyed_by_id():
    """id() of a model is reused after garbage collection: never a cache key."""
    for page in sorted((ROOT / "pages").rglob("*.py")):
        calls = [
            n
            for n in ast.walk(ast.parse(page.read_text()))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "id"
        ]
        assert not calls, f"{page.name} calls id() at line {calls[0].lineno}"
