"""The shared sidebar and the state every page reads (not a page; app.py imports it).

The sidebar (:func:`render_sidebar`, drawn by app.py before the page) owns the choices;
pages read them through these functions::

    data = current_data()          # DataSet | None (None: data_problem() says why)
    models = selected_models()     # list[ModelEntry] in picking order
    classes = selected_classes()   # picked class names, or every class when none is
    device_name()                  # "cpu" | "cuda", for training
    available_models()             # key -> ModelEntry: everything pickable

A :class:`convae.catalog.ModelEntry` wraps a checkpoint with a key, a name and a digest of
its weights. Shipped checkpoints and data sets are loaded once per process and shared by
every session (read only); models a user trains or uploads live in that user's
``st.session_state`` alone. Caches shared between sessions are keyed by ``entry.digest``.

Session-state keys are prefixed ``sidebar_``; ``trained_models`` and ``uploaded_models``
hold a session's own models (key -> ModelEntry).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import streamlit as st

from convae.baselines import baselines_for
from convae.catalog import ModelEntry, default_selection, describe, merge_new
from convae.checkpoints import Checkpoint, CheckpointError, load_checkpoint
from convae.data import (
    SAMPLE_FOR,
    SAMPLE_SOURCES,
    SOURCES,
    DataSet,
    available_full_source,
    data_root,
)
from convae.download import DownloadError, download_source, is_online, source_host
from convae.prepared import PreparedSources
from convae.train import resolve_device
from convae.training_queue import env_nice, ordinal, training_queue, training_resources
from pages import ui
from pages.links import apply_link, apply_params, show_copy_link, show_link_notice, sync_link

SOURCE_LABELS = {
    "cifar10": "CIFAR-10",
    "cifar10-sample": "CIFAR-10 sample (built in)",
    "fashion-mnist": "Fashion-MNIST",
    "fashion-mnist-sample": "Fashion-MNIST sample (built in)",
    "mnist": "MNIST",
}
FULL_OF = {sample: full for full, sample in SAMPLE_FOR.items()}
DOWNLOAD_SIZE = {"cifar10": "170 MB", "fashion-mnist": "30 MB", "mnist": "12 MB"}
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


@st.cache_resource(show_spinner=False)
def _sources() -> PreparedSources:
    return PreparedSources()  # one per process, shared by every session


@st.cache_resource(show_spinner=False, max_entries=4)
def _cached_dataset(source: str, root: str) -> DataSet:
    # Only called once _sources() has prepared it: a ~10 ms memory map, then the uint8
    # tensors are shared by every session (read only).
    return _sources().load(source, root)


def current_source() -> str:
    return st.session_state.get("sidebar_source") or default_source()


def current_data() -> DataSet | None:
    """The data set picked in the sidebar, or None when it is missing (see data_problem)."""
    source, root = current_source(), str(data_root())
    if not _sources().ready(source, root):
        return None
    return _cached_dataset(source, root)


def data_problem() -> str | None:
    """Why there is no data set (the loader's full message), or None."""
    return _sources().problem(current_source(), str(data_root()))


# --------------------------------------------------------------------- models


def checkpoints_dir() -> Path:
    """``$CONVAE_CHECKPOINTS`` if set, else ./checkpoints."""
    return Path(os.environ.get("CONVAE_CHECKPOINTS") or "checkpoints")


@st.cache_resource(show_spinner=False, max_entries=64)
def _load_shipped(path: str, mtime_ns: int) -> ModelEntry | str:
    """A shipped checkpoint as a pickable entry (cached per file version: its digest is
    computed once per process), or its error message."""
    try:
        ck = load_checkpoint(path, name=Path(path).name)
    except CheckpointError as exc:
        return str(exc)
    p = Path(path)
    return ModelEntry(f"shipped:{p.name}", p.stem, "shipped", ck)


def shipped_models() -> tuple[dict[str, ModelEntry], list[str]]:
    """Every readable ``*.pt`` in the checkpoints folder, and messages for broken ones."""
    folder = checkpoints_dir()
    out, problems = {}, []
    for p in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        got = _load_shipped(str(p), p.stat().st_mtime_ns)
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


def selected_models() -> list[ModelEntry]:
    """The models picked in the sidebar, in picking order (may be empty)."""
    models = available_models()
    return [models[k] for k in st.session_state.get("sidebar_models", []) if k in models]


def add_trained_model(checkpoint: Checkpoint, name: str, first: bool = False) -> ModelEntry:
    """Register a model trained in this session (kept in st.session_state only).

    It joins the sidebar's picks after the ones already there, so the models a page
    shows first do not change behind the user's back (issue 12); when the picker is full
    it is listed but not picked, and the caller says so. ``first=True`` puts it before
    the picks instead, for a page whose button says it trains what it then shows
    (Compare's "Train a small pair": the pair becomes A and B).
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


# -------------------------------------------------------------------- sidebar


def _on_source_change() -> None:
    # Another data set: old class names mean nothing, and the picked models may not fit.
    st.session_state["sidebar_classes"] = []
    st.session_state.pop("sidebar_models", None)


def _prepare_data(sb) -> DataSet | None:
    """Decode the current source once per process (a progress bar the first time)."""
    pending = st.session_state.pop("sidebar_pending_source", None)
    if pending:  # set before the selectbox exists (a widget's value cannot change after)
        st.session_state["sidebar_source"] = pending
        _on_source_change()
    st.session_state.setdefault("sidebar_source", default_source())
    bar = sb.empty()

    def progress(done: int, total: int, what: str) -> None:
        bar.progress(
            done / max(total, 1),
            text=f"Preparing data: {what} ({done:,}/{total:,}), only on the first start",
        )

    _sources().prepare(current_source(), str(data_root()), progress)
    bar.empty()
    return current_data()


def _sidebar_data(sb, data: DataSet | None) -> None:
    # This machine's default first: a selectbox whose browser-side state is lost falls
    # back to its first option (the proto's default index), and that must be a data set
    # that is here. With CIFAR-10 at the front, a fresh machine's session was seen twice
    # switching from the sample to "CIFAR-10 is not on this machine" (CI, fresh pass).
    first = default_source()  # a few stat calls: once, not once per option
    options = [first, *(s for s in SOURCES if s != first)]
    if current_source() not in options:
        options.insert(1, current_source())
    sb.selectbox(
        "Data set",
        options,
        key="sidebar_source",
        format_func=source_label,
        on_change=_on_source_change,
        help="Where the pictures come from. A first start decodes the data once "
        "(CIFAR-10: about 15 s); later starts read a cache.",
    )
    problem = data_problem()
    if problem:
        sample = SAMPLE_FOR.get(current_source())
        sb.error(
            f"{source_label(current_source())} is not on this machine.",
            icon=":material/image_not_supported:",
        )
        if sample and sb.button(f"Use the {source_label(sample)}", key="sidebar_use_sample"):
            st.session_state["sidebar_pending_source"] = sample
            st.rerun()
        _get_full_set(sb, current_source())
        with sb.expander("What was looked for"):
            st.write(problem)
        if sb.button("Retry", key="sidebar_retry"):
            _sources().forget(current_source(), str(data_root()))
            st.rerun()
        return
    if data is None:
        return
    if current_source() in SAMPLE_SOURCES and not ui.presenting():
        full = FULL_OF[current_source()]
        sb.info(
            f"You are looking at the built-in sample ({len(data.test):,} test pictures). "
            f"The full {source_label(full)} trains better models and gives the README's "
            "scores.",
            icon=":material/photo_library:",
        )
        _get_full_set(sb, full)
    sb.caption(
        f":material/check_circle: {len(data.train):,} training and {len(data.test):,} test "
        f"pictures, {len(data.classes)} classes, {data.train.image_size}x"
        f"{data.train.image_size}"
    )
    if data.skipped:
        n = len(data.skipped)
        shown = ", ".join(data.skipped[:3]) + (f" and {n - 3} more" if n > 3 else "")
        sb.caption(
            f":material/warning: Left out {n} file{'s' * (n > 1)} that "
            f"{'are' if n > 1 else 'is'} not a readable picture: {shown}."
        )
    if data.notice:  # e.g. the cache could not be written (a full disk): works from memory
        sb.caption(f":material/info: {data.notice}")


def _get_full_set(sb, full: str) -> None:
    """How to get the full data set: a download with a progress bar when online, else the
    two offline ways."""
    if full not in DOWNLOAD_SIZE:
        return
    root = data_root()
    if is_online(source_host(full)):
        if sb.button(
            f"Download {source_label(full)} ({DOWNLOAD_SIZE[full]})",
            key="sidebar_download",
            icon=":material/download:",
        ):
            bar = sb.progress(0.0, text="Starting the download...")

            def progress(done: int, total: int, what: str) -> None:
                bar.progress(min(done / total, 1.0) if total else 0.0, text=what)

            try:
                download_source(full, root, progress)
            except DownloadError as exc:
                sb.error(str(exc))
                return
            _sources().forget(full, str(root))
            st.session_state["sidebar_pending_source"] = full
            st.rerun()
    else:
        sb.caption(
            f"No network here to download it ({DOWNLOAD_SIZE[full]}). Start the app "
            "with `./dev app` next to the shared copy (`../shared/data`), or set "
            "`CONVAE_DATA` to a folder that holds it."
        )


def sample_notice() -> None:
    """One line at the top of the page when the built-in sample is shown (the sidebar is
    hidden on a phone, so the page says it too)."""
    if current_source() not in SAMPLE_SOURCES or st.session_state.get("sample_notice_seen"):
        return
    full = FULL_OF[current_source()]
    c1, c2 = st.columns([6, 1], vertical_alignment="center")
    c1.caption(
        f":material/photo_library: Showing the built-in sample of "
        f"{source_label(full)}; the sidebar says how to get the full set."
    )
    if c2.button("Got it", key="sample_notice_ok", type="tertiary"):
        st.session_state["sample_notice_seen"] = True
        st.rerun()


def _read_upload(uploaded) -> None:
    """Load an uploaded checkpoint once per file; remember the error or the new model."""
    done = st.session_state.setdefault("sidebar_upload_seen", {})
    if uploaded.file_id in done:
        return
    try:
        ck = load_checkpoint(uploaded.getvalue(), name=uploaded.name)
    except CheckpointError as exc:
        done[uploaded.file_id] = str(exc)
        return
    key = f"uploaded:{uploaded.name}"
    st.session_state.setdefault("uploaded_models", {})[key] = ModelEntry(
        key, Path(uploaded.name).stem, "uploaded", ck
    )
    done[uploaded.file_id] = None
    st.session_state.setdefault("sidebar_pending_select", []).append(key)


def _picker_name(m: ModelEntry) -> str:
    tag = {"trained": " (yours)", "uploaded": " (uploaded)"}.get(m.origin, "")
    return f"{m.name}{tag}"


def _sidebar_models(sb, data: DataSet | None, models: dict[str, ModelEntry]) -> None:
    state = st.session_state
    if "sidebar_models" not in state:
        state["sidebar_models"] = default_selection(models, data)
    pending = state.pop("sidebar_pending_select", [])
    state["sidebar_models"] = merge_new(state["sidebar_models"], pending, models, MAX_PICKED)
    front = state.pop("sidebar_pending_front", [])
    if front:
        state["sidebar_models"] = merge_new(front, state["sidebar_models"], models, MAX_PICKED)
    if not models:
        sb.info(
            f"No models yet: train one on the Train page, add a .pt below, or put "
            f"checkpoints in {checkpoints_dir()}/."
        )
    else:
        sb.multiselect(
            "Models",
            list(models),
            key="sidebar_models",
            format_func=lambda k: _picker_name(models[k]),
            max_selections=MAX_PICKED,
            placeholder="Pick one or more models",
            help="Pages show the first picked model (Compare: the first two). "
            + " ".join(f"{m.name}: {describe(m.checkpoint)}." for m in models.values()),
        )
        chosen = [models[k] for k in state["sidebar_models"]]
        misfit = [m.name for m in chosen if data is not None and not m.fits(data)]
        if misfit:
            sb.warning(
                f"{', '.join(misfit)} take{'s' * (len(misfit) == 1)} other pictures than "
                f"{source_label(data.source)}; pick a model for this data set, or switch the "
                "data set."
            )
    if ui.presenting():
        return
    with sb.expander("Add your own model (.pt)", icon=":material/upload_file:"):
        uploaded = st.file_uploader(
            "Add a checkpoint (.pt)",
            type=["pt", "pth"],
            key="sidebar_upload",
            help="A checkpoint saved by ConvAE Explorer, or a course notebook's "
            "torch.save(model.state_dict()). Read safely (weights only).",
        )
    if uploaded is not None:
        _read_upload(uploaded)  # a no-op when render_sidebar has read it already
        error = st.session_state["sidebar_upload_seen"][uploaded.file_id]
        if error:
            sb.error(error)


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
        help="Only pictures of these classes are shown (and trained on).",
    )


def _sidebar_device(sb) -> None:
    import torch

    options = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    st.session_state.setdefault("sidebar_device", resolve_device("auto").type)
    if len(options) > 1:
        sb.selectbox("Device", options, key="sidebar_device")
    elif not ui.presenting():
        sb.caption(f"Runs on the CPU ({torch.get_num_threads()} threads; no CUDA GPU found).")


def render_sidebar(copy_link: bool = True) -> None:
    """Draw the shared sidebar; its choices are then read with the functions above.

    Args:
        copy_link: draw the "Copy link to this view" box (False for a page that draws
            its own where its fragment can keep it current).
    """
    sb = st.sidebar
    data = _prepare_data(sb)
    upload = st.session_state.get("sidebar_upload")  # read before the picker is drawn
    if upload is not None:
        _read_upload(upload)
    models, problems = shipped_models()
    models.update(st.session_state.get("trained_models", {}))
    models.update(st.session_state.get("uploaded_models", {}))
    apply_link(models, data)  # a shared link's choices, once per session, before widgets
    pending = st.session_state.pop("links_pending", None)  # a lesson step's settings
    if pending:
        apply_params(pending, models, data)
    sb.toggle(
        "Presentation mode",
        key=ui.PRESENT_KEY,
        help="Large text and pictures for a projector; advanced controls hidden. "
        "Add ?present=1 to a link to open it this way.",
    )
    # Presenting, the data set, model and class pickers fold into one expander: the
    # projected page keeps its room, and the sidebar stays short enough not to scroll.
    box = sb
    if ui.presenting() and data_problem() is None:
        box = sb.expander("Data set, models, classes", icon=":material/tune:")
    _sidebar_data(box, data)
    for p in problems:
        sb.warning(p)
    _sidebar_models(box, data, models)
    _sidebar_classes(box, data)
    _sidebar_device(box)
    show_link_notice()
    sync_link()
    if copy_link and not ui.presenting():
        show_copy_link()


# ----------------------------------------------------------- page helpers


@st.cache_resource(show_spinner=False, max_entries=4)
def _baselines(fingerprint: str, root: str, _data: DataSet) -> dict:
    return baselines_for(_data, root)


def baselines(data: DataSet) -> dict:
    """PCA and downsampling with as many numbers as the code (convae.baselines), fitted
    once per server and data set (PCA is cached on disk too), shared by every session."""
    n = len(data.train)
    with st.spinner(
        f"Fitting PCA to the {n:,} training pictures, once per data set (about "
        f"{max(1, round(n / 25_000))} minute{'s' * (n > 37_500)} on 2 cores)..."
    ):
        return _baselines(data.fingerprint, str(data_root()), data)


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


def fitting_models(data: DataSet) -> list[ModelEntry]:
    """The picked models that take this data set's pictures; stops the page with a hint
    when there are none."""
    picked = selected_models()
    models = [m for m in picked if m.fits(data)]
    if not models:
        st.info(
            f"Pick a model for {source_label(data.source)} in the sidebar (or train one on "
            "the Train page).",
            icon=":material/model_training:",
        )
        st.stop()
    return models


def require_model(page: str, where=None) -> ModelEntry:
    """The model a single-model page shows: a selectbox among the picked models (in
    ``where``, e.g. a column), or the only one. Stops the page when none is picked."""
    models = selected_models()
    if not models:
        st.info(
            "Pick a model in the sidebar (or train one on the Train page) to see this page.",
            icon=":material/model_training:",
        )
        st.stop()
    if len(models) == 1:
        return models[0]
    keys = [m.key for m in models]
    state_key = f"{page}_model"
    if st.session_state.get(state_key) not in keys:
        st.session_state[state_key] = keys[0]
    by_key = {m.key: m for m in models}
    key = (where or st).selectbox(
        "Model",
        keys,
        key=state_key,
        persist_state="session",
        format_func=lambda k: by_key[k].name,
        help="The sidebar has several models picked; this page shows one.",
    )
    return by_key[key]


def training_settings_error() -> str | None:
    """What is wrong with the server's training settings ($CONVAE_MAX_TRAININGS,
    $CONVAE_TRAINING_NICE), as one sentence for the page, or None when they are usable.
    Train and Compare ask before a run, so a wrong value is an error on the page, not an
    exception inside the training."""
    try:
        training_queue()
        env_nice()
    except ValueError as exc:
        return f"The server's training settings are wrong: {exc}"
    return None


@contextlib.contextmanager
def training_slot(what: str, where) -> Iterator[None]:
    """Wait for a turn in the server's training queue, then train with its resources.

    While waiting, ``where`` (an ``st.empty``) says the place in line every half second;
    any click (Stop included) interrupts the wait at that redraw and gives the place up,
    so nothing is lost and no slot is held. Inside, the training runs with one OpenMP
    thread at a lower priority (convae.training_queue.training_resources), so the students who
    are only looking keep quick clicks.

    Args:
        what: who waits, for the queue's log ("run1-transpose").
        where: a placeholder for the waiting message.

    Raises:
        ValueError: $CONVAE_MAX_TRAININGS is set to something that is not a limit.
    """
    queue = training_queue()
    with queue.ticket(what) as ticket:
        while not ticket.wait(timeout=0.5):
            n = len(queue.snapshot()["running"])
            where.info(
                f"The server runs {queue.limit} training{'s' if queue.limit > 1 else ''} "
                f"at a time and {n} {'is' if n == 1 else 'are'} running: you are "
                f"{ordinal(ticket.position())} in line (waiting {ticket.waited():.0f} s). "
                "Yours starts by itself when a turn frees up; click **Stop** to leave the line.",
                icon=":material/hourglass_top:",
            )
        where.empty()
        with training_resources():
            yield
