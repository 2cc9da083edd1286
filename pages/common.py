"""Shared state and the sidebar of ConvAE Explorer (not a page; app.py imports it).

State API: what every page reads, a later Compare page included
-----------------------------------------------------------------
The sidebar (``render_sidebar()``, called by app.py before the page runs) owns the
choices; pages only read them through these functions::

    from pages.common import current_data, selected_models, selected_classes

    data = current_data()           # DataSet | None (None: no data set; say why with
                                    #   data_problem() -> str | None)
    models = selected_models()      # list[ModelChoice], in the order picked in the
                                    #   sidebar (Compare takes models[:2])
    classes = selected_classes()    # list[str]: the picked class names, or every
                                    #   class of the data set when none is picked
    device_name()                   # "cpu" | "cuda", for training
    available_models()              # dict key -> ModelChoice, everything pickable

A :class:`ModelChoice` wraps a :class:`convae.checkpoints.Checkpoint` (``.model``,
``.config``, ``.history``, ``.test_metrics``, ...) with a stable ``key`` and a
``label``. Its ``model`` may be cached and shared by every session: read it, trace
it, never train or modify it in place (``fit(model=...)`` copies it first).

Models a user trains are added with :func:`add_trained_model` and live only in that
user's ``st.session_state``; shipped checkpoints and data sets are loaded once per
process with ``st.cache_resource``.

Session-state keys (all prefixed ``sidebar_``): ``sidebar_source``, ``sidebar_models``
(list of model keys), ``sidebar_classes``, ``sidebar_device``, ``sidebar_upload``;
plus ``trained_models`` and ``uploaded_models`` (dict key -> ModelChoice).
"""

from __future__ import annotations

import csv
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from convae.checkpoints import Checkpoint, CheckpointError, load_checkpoint
from convae.data import SOURCES, DataNotFoundError, DataSet, data_root, load_dataset
from convae.figures import rows_png
from convae.models import AEConfig, ConvAutoencoder
from convae.train import resolve_device
from pages.links import apply_link, show_copy_link, show_link_notice, sync_link

SOURCE_LABELS = {"cifar10": "CIFAR-10", "fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}
ORIGIN_TAGS = {"shipped": "shipped", "trained": "trained here", "uploaded": "uploaded"}


@dataclass(frozen=True)
class ModelChoice:
    """One pickable model: where it came from and its checkpoint."""

    key: str  # "shipped:<file>", "trained:<n>" or "uploaded:<name>"
    label: str  # what the picker shows
    origin: str  # "shipped" | "trained" | "uploaded"
    checkpoint: Checkpoint

    @property
    def model(self) -> ConvAutoencoder:
        return self.checkpoint.model

    @property
    def config(self) -> AEConfig:
        return self.checkpoint.config

    @property
    def short(self) -> str:
        """A compact name for table columns and legends."""
        return self.label.split(" · ")[0]

    def fits(self, data: DataSet | None) -> bool:
        """True when the model takes images of this data set's channels and size."""
        return data is not None and (
            self.config.in_channels == data.train.channels
            and self.config.image_size == data.train.image_size
        )


# ------------------------------------------------------------------ data sets


def default_source() -> str:
    """``$CONVAE_SOURCE`` (tests point it at a fixture tree), else cifar10."""
    return os.environ.get("CONVAE_SOURCE") or "cifar10"


def source_label(source: str) -> str:
    if source.startswith("folder:"):
        return f"folder {Path(source[7:]).name}"
    return SOURCE_LABELS.get(source, source)


@st.cache_resource(show_spinner=False, max_entries=4)
def _cached_dataset(source: str, root: str) -> DataSet:
    # Called only after _prepare() has built the on-disk cache, so this is a ~10 ms
    # memory map; the uint8 tensors are then shared by every session (read only).
    return load_dataset(source, root=root)


# Per process: sources already prepared (decoded once), and why others failed. A plain
# dict, not st.cache_resource, because a failure must be remembered too (a missing
# CIFAR-10 would otherwise retry a download on every rerun) and cleared by "Retry".
_PREPARED: set[tuple[str, str]] = set()
_FAILED: dict[tuple[str, str], str] = {}
_PREPARE_LOCK = threading.Lock()


def _prepare(source: str, root: str, where) -> str | None:
    """Make sure ``source`` is decoded, showing an ``st.progress`` on a first decode.

    Returns the user-facing problem when the source cannot be loaded, else None.
    """
    key = (source, root)
    if key in _PREPARED:
        return None
    if key in _FAILED:
        return _FAILED[key]
    with _PREPARE_LOCK:  # two sessions starting together decode once, not twice
        if key in _PREPARED:
            return None
        bar = where.empty()

        def progress(done: int, total: int, what: str) -> None:
            bar.progress(
                done / max(total, 1),
                text=f"Preparing data: {what} ({done:,}/{total:,}), only on the first start",
            )

        try:
            load_dataset(source, root=root, progress=progress)
        except (DataNotFoundError, ValueError, OSError) as exc:
            _FAILED[key] = str(exc)
            return _FAILED[key]
        finally:
            bar.empty()
        _PREPARED.add(key)
    return None


def current_source() -> str:
    return st.session_state.get("sidebar_source") or default_source()


def current_data() -> DataSet | None:
    """The data set picked in the sidebar, or None when it is missing (see data_problem)."""
    source, root = current_source(), str(data_root())
    if (source, root) not in _PREPARED:
        return None
    return _cached_dataset(source, root)


def data_problem() -> str | None:
    """Why there is no data set (the loader's full message), or None."""
    return _FAILED.get((current_source(), str(data_root())))


# --------------------------------------------------------------------- models


def checkpoints_dir() -> Path:
    """``$CONVAE_CHECKPOINTS`` if set, else ./checkpoints."""
    return Path(os.environ.get("CONVAE_CHECKPOINTS") or "checkpoints")


@st.cache_resource(show_spinner=False, max_entries=64)
def _load_shipped(path: str, mtime_ns: int) -> Checkpoint | str:
    """A shipped checkpoint (cached per file version), or its error message."""
    try:
        return load_checkpoint(path, name=Path(path).name)
    except CheckpointError as exc:
        return str(exc)


def _describe(ck: Checkpoint) -> str:
    """'transpose · 3ch 32px · 24.1 dB' for the picker."""
    cfg = ck.config
    bits = [cfg.decoder, f"{cfg.in_channels}ch {cfg.image_size}px"]
    psnr = ck.test_metrics.get("psnr") if ck.test_metrics else None
    if isinstance(psnr, int | float):
        bits.append(f"{psnr:.1f} dB")
    return " · ".join(bits)


def shipped_models() -> tuple[dict[str, ModelChoice], list[str]]:
    """Every readable ``*.pt`` in the checkpoints folder, and messages for broken ones."""
    folder = checkpoints_dir()
    out, problems = {}, []
    files = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    for p in files:
        got = _load_shipped(str(p), p.stat().st_mtime_ns)
        if isinstance(got, str):
            problems.append(got)
            continue
        key = f"shipped:{p.name}"
        out[key] = ModelChoice(key, f"{p.stem} · {_describe(got)}", "shipped", got)
    return out, problems


def available_models() -> dict[str, ModelChoice]:
    """Shipped, then trained in this session, then uploaded: everything pickable."""
    models = dict(shipped_models()[0])
    models.update(st.session_state.get("trained_models", {}))
    models.update(st.session_state.get("uploaded_models", {}))
    return models


def selected_models() -> list[ModelChoice]:
    """The models picked in the sidebar, in picking order (may be empty)."""
    models = available_models()
    return [models[k] for k in st.session_state.get("sidebar_models", []) if k in models]


def add_trained_model(checkpoint: Checkpoint, name: str, select: bool = True) -> ModelChoice:
    """Register a model trained in this session (kept in st.session_state only).

    With ``select`` it is put first in the sidebar's picker on the next rerun.
    """
    trained = st.session_state.setdefault("trained_models", {})
    n = len(trained) + 1
    key = f"trained:{n}"
    choice = ModelChoice(key, f"{name} · {_describe(checkpoint)}", "trained", checkpoint)
    trained[key] = choice
    if select:
        # Applied by the sidebar before its widget exists (a widget's value cannot be
        # set after it is drawn in the same run).
        st.session_state.setdefault("sidebar_pending_select", []).append(key)
    return choice


def selected_classes() -> list[str]:
    """The class names picked in the sidebar; every class when none is picked."""
    data = current_data()
    if data is None:
        return []
    picked = [c for c in st.session_state.get("sidebar_classes", []) if c in data.classes]
    return picked or list(data.classes)


def device_name() -> str:
    return st.session_state.get("sidebar_device") or resolve_device("auto").type


def _default_selection(models: dict[str, ModelChoice], data: DataSet | None) -> list[str]:
    """Up to two models that fit the data, one per decoder when there are both."""
    fitting = [m for m in models.values() if m.fits(data)] or list(models.values())
    # Task checkpoints (trained on corrupted inputs: denoise, inpaint, colorize) sort
    # before the plain ones by name; the plain autoencoders are the sensible default.
    plain = [m for m in fitting if not (m.checkpoint.train_config or {}).get("corruption")]
    fitting = plain + [m for m in fitting if m not in plain]
    picked: list[str] = []
    for decoder in ("transpose", "upsample"):
        for m in fitting:
            if m.config.decoder == decoder:
                picked.append(m.key)
                break
    return picked or [m.key for m in fitting[:2]]


# -------------------------------------------------------------------- sidebar


def _on_source_change() -> None:
    # Another data set: old class names mean nothing, and the picked models may not fit.
    st.session_state["sidebar_classes"] = []
    st.session_state.pop("sidebar_models", None)


def _sidebar_data(sb) -> DataSet | None:
    options = list(SOURCES)
    env = default_source()
    if env not in options:
        options.insert(0, env)
    st.session_state.setdefault("sidebar_source", env)
    sb.selectbox(
        "Data set",
        options,
        key="sidebar_source",
        format_func=source_label,
        on_change=_on_source_change,
        help="Where the images come from. A first start decodes the data once "
        "(CIFAR-10: about 15 s); later starts read a cache.",
    )
    problem = _prepare(current_source(), str(data_root()), sb)
    if problem:
        sb.error(f"**No data set.** {problem}")
        sb.caption("Shipped models and uploads still work: the Layers page takes your own photo.")
        if sb.button("Retry", key="sidebar_retry"):
            _FAILED.pop((current_source(), str(data_root())), None)
            st.rerun()
        return None
    data = current_data()
    sb.caption(
        f":material/check_circle: {source_label(data.source)}: {len(data.train):,} train / "
        f"{len(data.test):,} test images, {len(data.classes)} classes, "
        f"{data.train.image_size}x{data.train.image_size}"
    )
    if data.skipped:
        n = len(data.skipped)
        shown = ", ".join(data.skipped[:3]) + (f" and {n - 3} more" if n > 3 else "")
        sb.caption(
            f":material/warning: Left out {n} file{'s' * (n > 1)} that "
            f"{'are' if n > 1 else 'is'} not a readable picture: {shown}."
        )
    return data


def _sidebar_models(sb, data: DataSet | None) -> None:
    uploaded = sb.file_uploader(
        "Add a checkpoint (.pt)",
        type=["pt", "pth"],
        key="sidebar_upload",
        help="A checkpoint saved by ConvAE Explorer, or a course notebook's "
        "torch.save(model.state_dict()). Read safely (weights only).",
    )
    if uploaded is not None:
        done = st.session_state.setdefault("sidebar_upload_seen", {})
        if uploaded.file_id not in done:
            try:
                ck = load_checkpoint(uploaded.getvalue(), name=uploaded.name)
            except CheckpointError as exc:
                done[uploaded.file_id] = str(exc)
            else:
                key = f"uploaded:{uploaded.name}"
                st.session_state.setdefault("uploaded_models", {})[key] = ModelChoice(
                    key, f"{Path(uploaded.name).stem} · {_describe(ck)}", "uploaded", ck
                )
                done[uploaded.file_id] = None
                st.session_state.setdefault("sidebar_pending_select", []).append(key)
        if done[uploaded.file_id]:
            sb.error(done[uploaded.file_id])

    models, problems = shipped_models()
    models.update(st.session_state.get("trained_models", {}))
    models.update(st.session_state.get("uploaded_models", {}))
    for p in problems:
        sb.warning(p)
    apply_link(models, data)  # a shared link's choices, once per session
    # Put the session's own picks in the widget's state before it is drawn.
    state = st.session_state
    if "sidebar_models" not in state:
        state["sidebar_models"] = _default_selection(models, data)
    pending = state.pop("sidebar_pending_select", [])
    current = [k for k in state["sidebar_models"] if k in models and k not in pending]
    state["sidebar_models"] = (pending + current)[:4] if pending else current
    if not models:
        sb.info(
            f"No models yet: train one on the Train page, add a .pt above, or put "
            f"checkpoints in {checkpoints_dir()}/."
        )
        return
    sb.multiselect(
        "Models",
        list(models),
        key="sidebar_models",
        format_func=lambda k: f"{models[k].label} ({ORIGIN_TAGS[models[k].origin]})",
        placeholder="Pick one or more models",
        help="Pages show the first picked model; Reconstructions shows them all.",
    )
    chosen = [models[k] for k in state["sidebar_models"]]
    misfit = [m.short for m in chosen if data is not None and not m.fits(data)]
    if misfit:
        sb.warning(
            f"{', '.join(misfit)} take{'s' * (len(misfit) == 1)} other images than "
            f"{source_label(data.source)}; pick a model for this data set, or "
            "switch the data set."
        )


def _sidebar_classes(sb, data: DataSet | None) -> None:
    if data is None:
        return
    state = st.session_state
    state["sidebar_classes"] = [c for c in state.get("sidebar_classes", []) if c in data.classes]
    sb.multiselect(
        "Classes",
        data.classes,
        key="sidebar_classes",
        placeholder="All classes",
        help="Only images of these classes are shown (and trained on).",
    )


def _sidebar_device(sb) -> None:
    import torch

    options = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    st.session_state.setdefault("sidebar_device", resolve_device("auto").type)
    if len(options) > 1:
        sb.selectbox("Device", options, key="sidebar_device")
    else:
        sb.caption(f"Device: CPU, {torch.get_num_threads()} threads (no CUDA GPU found)")


def render_sidebar() -> None:
    """Draw the shared sidebar; its choices are then read with the functions above."""
    sb = st.sidebar
    data = _sidebar_data(sb)
    _sidebar_models(sb, data)
    _sidebar_classes(sb, data)
    _sidebar_device(sb)
    show_link_notice()
    sync_link()
    show_copy_link()


# ----------------------------------------------------------- page helpers


# Browsers smooth enlarged images; a 32x32 picture must stay blocky so its pixels, not
# the browser's filter, are what students see. Applied to every st.image.
PIXELATED_CSS = (
    "<style>[data-testid='stImage'] img, [data-testid='stImageContainer'] img "
    "{image-rendering: pixelated;}</style>"
)


# Plotly charts keep one toolbar button: save the figure as PNG. The browser draws it
# (plotly.js toImage), so no kaleido / server-side renderer is needed.
PNG_EXPORT = {
    "displaylogo": False,
    "modeBarButtons": [["toImage"]],
    "toImageButtonOptions": {"format": "png", "scale": 3},
}


def table_csv(rows: list[dict]) -> bytes:
    """A list of dict rows as CSV bytes (for a table drawn as Markdown or an image)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def show_images(images: list, captions: list[str] | None = None, per_row: int = 10) -> None:
    """Images side by side in equal columns (``per_row`` a row), each stretched to its
    column and drawn pixelated, so a row of ten always fits the page width."""
    for start in range(0, len(images), per_row):
        cols = st.columns(per_row, gap="small")
        for i, img in enumerate(images[start : start + per_row]):
            cap = captions[start + i] if captions else None
            cols[i].image(img, caption=cap, width="stretch")


def download_png(
    rows, file_name: str, key: str, label: str = "Download these images (PNG)"
) -> None:
    """A download button for picture rows as one PNG (convae.figures.rows_png).

    ``rows``: (row label, uint8 pictures, captions or None) as the page shows them. The
    PNG is only drawn when the button is clicked, and the click does not rerun the page.
    """
    st.download_button(
        label,
        lambda: rows_png(rows),
        file_name=file_name,
        mime="image/png",
        key=key,
        on_click="ignore",
    )


def require_model(page: str) -> ModelChoice:
    """The model a single-model page shows: a selectbox among the picked models.

    Stops the page with an explanation when no model is picked.
    """
    models = selected_models()
    if not models:
        st.info("Pick a model in the sidebar (or train one on the Train page) to see this page.")
        st.stop()
    if len(models) == 1:
        return models[0]
    keys = [m.key for m in models]
    state_key = f"{page}_model"
    if st.session_state.get(state_key) not in keys:
        st.session_state[state_key] = keys[0]
    by_key = {m.key: m for m in models}
    key = st.selectbox(
        "Model",
        keys,
        key=state_key,
        persist_state="session",
        format_func=lambda k: by_key[k].label,
        help="The sidebar has several models picked; this page shows one.",
    )
    return by_key[key]
