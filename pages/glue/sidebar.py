"""The sidebar every page shares: data set, models, classes, device, presentation mode.

app.py draws it before the page (:func:`render_sidebar`); pages read its choices through
pages/glue/state.py. It also applies a shared link's or a lesson step's settings once,
before its widgets exist (a widget's value cannot be changed after it is drawn in a run).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from convae.catalog import ModelEntry, default_selection, describe, merge_new
from convae.checkpoints import CheckpointError, load_checkpoint
from convae.data import SAMPLE_FOR, SAMPLE_SOURCES, SOURCES, DataSet, data_root
from convae.download import DownloadError, download_source, is_online, source_host
from convae.train import resolve_device
from pages.glue import caches, draw
from pages.glue.links import (
    PRESENT_KEY,
    apply_link,
    apply_params,
    apply_view,
    show_copy_link,
    show_link_notice,
    sync_link,
)
from pages.glue.state import (
    MAX_PICKED,
    checkpoints_dir,
    current_data,
    current_source,
    data_problem,
    default_source,
    shipped_models,
    source_label,
)

FULL_OF = {sample: full for full, sample in SAMPLE_FOR.items()}
DOWNLOAD_SIZE = {"cifar10": "170 MB", "fashion-mnist": "30 MB", "mnist": "12 MB"}


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

    caches.prepared_sources().prepare(current_source(), str(data_root()), progress)
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
            caches.prepared_sources().forget(current_source(), str(data_root()))
            st.rerun()
        return
    if data is None:
        return
    if current_source() in SAMPLE_SOURCES and not draw.presenting():
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
            caches.prepared_sources().forget(full, str(root))
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
    if draw.presenting():
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
    elif not draw.presenting():
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
    follow = st.session_state.pop("links_follow", None)  # a class teacher's view, exactly
    if follow is not None:
        apply_view(follow, models, data)
    sb.toggle(
        "Presentation mode",
        key=PRESENT_KEY,
        help="Large text and pictures for a projector; advanced controls hidden. "
        "Add ?present=1 to a link to open it this way.",
    )
    # Presenting, the data set, model and class pickers fold into one expander: the
    # projected page keeps its room, and the sidebar stays short enough not to scroll.
    box = sb
    if draw.presenting() and data_problem() is None:
        box = sb.expander("Data set, models, classes", icon=":material/tune:")
    _sidebar_data(box, data)
    for p in problems:
        sb.warning(p)
    _sidebar_models(box, data, models)
    _sidebar_classes(box, data)
    _sidebar_device(box)
    show_link_notice()
    sync_link()
    if copy_link and not draw.presenting():
        show_copy_link()
