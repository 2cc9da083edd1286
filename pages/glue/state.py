"""What the sidebar chose, as every page reads it::

    data = require_data()          # the DataSet, or the page stops saying why there is none
    models = picked_models(data)   # the picked models that take these pictures (or stop)
    classes = selected_classes()   # picked class names, or every class when none is picked
    device_name()                  # "cpu" | "cuda", for training
    available_models()             # key -> ModelEntry: everything pickable

A :class:`convae.catalog.ModelEntry` wraps a checkpoint with a key, a name and a digest of
its weights. Shipped checkpoints and data sets are loaded once per process and shared by
every session (read only, pages/glue/caches.py); models a user trains or uploads live in
that user's ``st.session_state`` alone (``trained_models``, ``uploaded_models``: key ->
ModelEntry). The sidebar's own widgets are drawn by pages/glue/sidebar.py; their
session-state keys start with ``sidebar_``.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from convae.catalog import ModelEntry
from convae.checkpoints import Checkpoint
from convae.data import SAMPLE_FOR, DataSet, available_full_source, data_root
from convae.train import resolve_device
from pages.glue import caches

SOURCE_LABELS = {
    "cifar10": "CIFAR-10",
    "cifar10-sample": "CIFAR-10 sample (built in)",
    "fashion-mnist": "Fashion-MNIST",
    "fashion-mnist-sample": "Fashion-MNIST sample (built in)",
    "mnist": "MNIST",
}
MAX_PICKED = 4


# ------------------------------------------------------------------ data sets


def default_source() -> str:
    """``$CONVAE_SOURCE`` (tests point it at a fixture tree), else CIFAR-10 when it is on
    this machine, else the sample built into the repo (so a fresh machine with no data
    set and no network still opens on real pictures)."""
    env = os.environ.get("CONVAE_SOURCE")
    if env:
        return env
    return "cifar10" if available_full_source("cifar10", data_root()) else SAMPLE_FOR["cifar10"]


def source_label(source: str) -> str:
    if source.startswith("folder:"):
        return f"folder {Path(source[7:]).name}"
    return SOURCE_LABELS.get(source, source)


def current_source() -> str:
    return st.session_state.get("sidebar_source") or default_source()


def current_data() -> DataSet | None:
    """The data set picked in the sidebar, or None when it is missing (see data_problem)."""
    source, root = current_source(), str(data_root())
    if not caches.prepared_sources().ready(source, root):
        return None
    return caches.dataset(source, root)


def data_problem() -> str | None:
    """Why there is no data set (the loader's full message), or None."""
    return caches.prepared_sources().problem(current_source(), str(data_root()))


def require_data() -> DataSet:
    """The sidebar's data set, or stop the page saying why there is none."""
    data = current_data()
    if data is None:
        st.info(
            "No pictures to show: the data set is missing (the sidebar says what was "
            "looked for). Shipped models still work, and the Layers page takes your own photo.",
            icon=":material/image_not_supported:",
        )
        st.stop()
    return data


def baselines(data: DataSet) -> dict:
    """PCA and downsampling with as many numbers as the code (convae.baselines), fitted
    once per server and data set, shared by every session."""
    n = len(data.train)
    with st.spinner(
        f"Fitting PCA to the {n:,} training pictures, once per data set (about "
        f"{max(1, round(n / 25_000))} minute{'s' * (n > 37_500)} on 2 cores)..."
    ):
        return caches.baselines(data, str(data_root()))


# --------------------------------------------------------------------- models


def checkpoints_dir() -> Path:
    """``$CONVAE_CHECKPOINTS`` if set, else ./checkpoints."""
    return Path(os.environ.get("CONVAE_CHECKPOINTS") or "checkpoints")


def shipped_models() -> tuple[dict[str, ModelEntry], list[str]]:
    """Every readable ``*.pt`` in the checkpoints folder, and messages for broken ones."""
    folder = checkpoints_dir()
    out, problems = {}, []
    for p in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        got = caches.shipped_entry(str(p), p.stat().st_mtime_ns)
        if isinstance(got, str):
            problems.append(got)
        else:
            out[got.key] = got
    return out, problems


def available_models() -> dict[str, ModelEntry]:
    """Shipped, then trained in this session, then uploaded: everything pickable."""
    models = dict(shipped_models()[0])
    models.update(st.session_state.get("trained_models", {}))
    models.update(st.session_state.get("uploaded_models", {}))
    return models


def models_for(data: DataSet) -> dict[str, ModelEntry]:
    """Every pickable model that takes this data set's pictures (key -> entry)."""
    return {k: m for k, m in available_models().items() if m.fits(data)}


def selected_models() -> list[ModelEntry]:
    """The models picked in the sidebar, in picking order (may be empty)."""
    models = available_models()
    return [models[k] for k in st.session_state.get("sidebar_models", []) if k in models]


def picked_models(data: DataSet) -> list[ModelEntry]:
    """The picked models that take this data set's pictures; stops the page with a hint
    when there are none."""
    models = [m for m in selected_models() if m.fits(data)]
    if not models:
        st.info(
            f"Pick a model for {source_label(data.source)} in the sidebar (or train one on "
            "the Train page).",
            icon=":material/model_training:",
        )
        st.stop()
    return models


def require_model(page: str, where=None, data: DataSet | None = None) -> ModelEntry:
    """The model a single-model page shows: a selectbox among the picked models (in
    ``where``, e.g. a column), or the only one. Stops the page when none is picked, or,
    given ``data``, when the chosen one takes other pictures."""
    models = selected_models()
    if not models:
        st.info(
            "Pick a model in the sidebar (or train one on the Train page) to see this page.",
            icon=":material/model_training:",
        )
        st.stop()
    by_key = {m.key: m for m in models}
    chosen = models[0]
    if len(models) > 1:
        state_key = f"{page}_model"
        if st.session_state.get(state_key) not in by_key:
            st.session_state[state_key] = models[0].key
        chosen = by_key[
            (where or st).selectbox(
                "Model",
                list(by_key),
                key=state_key,
                persist_state="session",
                format_func=lambda k: by_key[k].name,
                help="The sidebar has several models picked; this page shows one.",
            )
        ]
    if data is not None and not chosen.fits(data):
        st.info(f"{chosen.name} takes other pictures than this data set; pick a model for it.")
        st.stop()
    return chosen


def add_trained_model(checkpoint: Checkpoint, name: str, first: bool = False) -> ModelEntry:
    """Register a model trained in this session (kept in st.session_state only).

    It joins the sidebar's picks after the ones already there, so the models a page
    shows first do not change behind the user's back; when the picker is full it is
    listed but not picked, and the caller says so. ``first=True`` puts it before the picks
    instead, for a page whose button says it trains what it then shows (Compare's "Train
    a small pair": the pair becomes A and B).
    """
    trained = st.session_state.setdefault("trained_models", {})
    key = f"trained:{len(trained) + 1}"
    entry = ModelEntry(key, name, "trained", checkpoint)
    trained[key] = entry
    # Applied by the sidebar before its widget exists (a widget's value cannot be set
    # after it is drawn in the same run).
    st.session_state.setdefault(
        "sidebar_pending_front" if first else "sidebar_pending_select", []
    ).append(key)
    return entry


def will_be_picked() -> bool:
    """Whether a model added now still fits among the sidebar's picks."""
    return len(st.session_state.get("sidebar_models", [])) < MAX_PICKED


def selected_classes() -> list[str]:
    """The class names picked in the sidebar; every class when none is picked."""
    data = current_data()
    if data is None:
        return []
    picked = [c for c in st.session_state.get("sidebar_classes", []) if c in data.classes]
    return picked or list(data.classes)


def device_name() -> str:
    return st.session_state.get("sidebar_device") or resolve_device("auto").type
