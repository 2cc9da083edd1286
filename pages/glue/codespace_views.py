"""The Code space page's parts (pages/codespace.py draws the page and calls one of these
for the open tab), and how they get their results.

Every result comes from convae.codespace through the shared caches (pages/glue/caches.py):
on disk once per (weights digest, data set), in memory once per server process. What is
missing is computed in one of two ways:

* cheap results (the PCA maps, the per-picture scores: seconds) at once, with a progress
  bar fed by the library's ``progress(done, total, what)``;
* expensive ones (the t-SNE map, the whole split's neighbours, the probes, the channel
  report: up to minutes) only on a click, inside the server's training queue
  (pages/glue/training.py's ``training_slot``: one at a time, lower priority, a place in
  line while waiting), with the same progress bar. Any click stops the work, and nothing
  is kept; once done, every session reads the result.

Without them the page stays useful: the PCA maps, a click or lasso on them, and the
chosen picture's nearest neighbours in the code and the pixels need only the codes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import streamlit as st
import torch

from convae.catalog import ModelEntry
from convae.codespace import CodeSpace, TooSmallError
from convae.data import DataSet
from convae.figures.codespace import (
    class_legend_words,
    correlation_rows,
    map_summary,
    probe_figure,
    probe_rows,
    probe_summary,
    selected_indices,
    switch_off_rows,
)
from convae.training_queue import training_queue, usable_cores
from pages.glue import caches, classroom, draw, training

MAX_SHOWN = 24  # pictures of a selection drawn (a lasso may hold thousands)
UI_EVERY_S = 0.2  # progress redraws; also how soon a click stops the work
COLOURINGS = {
    "class": "class",
    "psnr-A": "PSNR of A",
    "psnr-B": "PSNR of B",
    "tiles-A": "4x4 tiles of A",
    "tiles-B": "4x4 tiles of B",
}
METHODS = {"pca": "PCA", "tsne": "t-SNE"}


@dataclass
class View:
    """What every part of one Code space run looks at.

    Attributes:
        data: the data set; the maps show its test split.
        models: "A" (and "B") -> the sidebar's first two picked models for it.
        spaces: the same keys -> each model's code space.
        root: the data root (the code-space cache lives there).
        shown: indices of the test pictures of the sidebar's classes.
        picked: those classes' names.
    """

    data: DataSet
    models: dict[str, ModelEntry]
    spaces: dict[str, CodeSpace]
    root: str
    shown: torch.Tensor
    picked: list[str]

    def label(self, tag: str) -> str:
        return f"{tag}: {self.models[tag].name}"

    @property
    def tag(self) -> str:
        """Whose code the map, the neighbours and the probe show ("A" or "B")."""
        tag = st.session_state.get("codespace_model", "A")
        return tag if tag in self.models else "A"

    @property
    def n_test(self) -> int:
        return len(self.data.test)

    def numbers(self, tag: str) -> int:
        c, h, w = self.spaces[tag].code_shape
        return c * h * w


# ------------------------------------------------------------ computing results


class Bar:
    """``progress(done, total, what)`` drawn as an ``st.progress`` bar (redrawn at most every
    :data:`UI_EVERY_S`); a click raises Streamlit's rerun exception at a redraw, which
    stops the work."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.bar = st.progress(0.0, text=f"{title}: starting")
        self.last = 0.0

    def __call__(self, done: int, total: int, what: str) -> None:
        now = time.perf_counter()
        if now - self.last < UI_EVERY_S and done < total:
            return
        self.last = now
        share = min(max(done / total, 0.0), 1.0) if total else 0.0
        self.bar.progress(share, text=f"{self.title}: {what} ({done:,} of {total:,})")

    def empty(self) -> None:
        self.bar.empty()


def cheap(space: CodeSpace, product: str, title: str):
    """A quick result ("pca", "pixel-map", "scores"): read it, or compute it now with a
    progress bar (seconds). None, with one sentence on the page, when the model's code or
    the split is too small for it."""
    try:
        if space.is_cached(product):
            return caches.code_space_result(space, product)
        bar = Bar(title)
        if product == "pca":
            result = space.map("pca", progress=bar)
        elif product == "pixel-map":
            result = space.pixel_map(progress=bar)
        else:
            result = space.scores(progress=bar)
        bar.empty()
    except TooSmallError as exc:
        st.info(str(exc), icon=":material/info:")
        return None
    for notice in space.notices:
        st.caption(notice)
    return result


def _threads() -> int:
    # openTSNE's own threads: the cores the queue gives one job (they start in the niced
    # training thread, so they are niced too).
    return max(1, usable_cores() // max(training_queue().limit, 1))


def queued(v: View, tags: list[str], product: str, title: str, what: str) -> bool:
    """True when ``product`` is cached for every model in ``tags``; else says what it
    costs and offers a button that computes it in the server's training queue.

    Args:
        v: the page's view.
        tags: whose results ("A", "B").
        product: "tsne", "neighbours", "probe" or "channels".
        title: what it is, for the button and the bar ("the t-SNE map").
        what: one sentence on what it gives.
    """
    missing = [t for t in tags if not v.spaces[t].is_cached(product)]
    if not missing:
        return True
    cpu = sum(v.spaces[t].first_cpu_s(product) for t in missing)
    sample = v.data.source.endswith("-sample")
    st.info(
        f"{what} It is computed once per model and data set (about {max(cpu, 1):.0f} s of "
        f"CPU{' on the built-in sample' if sample else ''}) and then shared by everyone. It "
        "waits for a turn in the server's training queue, like a training; a click anywhere "
        "on the page stops it.",
        icon=":material/hourglass_top:",
    )
    names = " and ".join(v.models[t].name for t in missing)
    if not st.button(
        f"Compute {title}", key=f"codespace_go_{product}", icon=":material/play_arrow:"
    ):
        return False
    if problem := training.settings_problem():
        st.error(problem)
        return False
    try:
        with training.training_slot(f"code space: {title} of {names}", st.empty()):
            for t in missing:
                _compute(v, t, product, Bar(f"{title}, {v.models[t].name}"))
    except TooSmallError as exc:
        st.info(str(exc), icon=":material/info:")
        return False
    st.rerun()
    return False  # not reached


def _compute(v: View, tag: str, product: str, bar: Bar) -> None:
    shared = v.spaces[tag]
    if product == "tsne":
        shared.threads = _threads()
        shared.map("tsne", progress=bar)
    elif product == "neighbours":
        shared.neighbours(progress=bar)
    else:
        # The probe and the channel report encode the training split (50,000 codes, 51 MB
        # for CIFAR-10): a private instance, freed when done, not the shared one.
        m = v.models[tag]
        own = CodeSpace(m.model, v.data, root=v.root, digest=m.digest)
        if product == "probe":
            own.probe(progress=bar)
        else:
            own.channels(progress=bar)


# ------------------------------------------------------------------ the map


def _on_select(chart: str, where: str) -> None:
    """A click or lasso on a map: keep its pictures; one picture becomes the chosen one."""
    event = st.session_state.get(chart) or {}
    points = (event.get("selection") or {}).get("points") or []
    indices = selected_indices(points)
    st.session_state["codespace_chosen"] = indices
    st.session_state["codespace_chosen_on"] = where
    if len(indices) == 1:
        st.session_state["codespace_picture"] = indices[0]


def _colouring(v: View, key: str):
    """(values or None, title, cache key part) of a colouring; PSNR and tiles are computed
    (with a bar) the first time."""
    if key == "class" or key[-1] not in v.models:
        return None, "", ("class",)
    tag = key[-1]
    scores = cheap(v.spaces[tag], "scores", f"scoring every picture with {v.models[tag].name}")
    if scores is None:
        return None, "", ("class",)
    if key.startswith("psnr"):
        return scores.psnr, f"PSNR of {tag} (dB)", ("psnr", v.models[tag].digest)
    return scores.tiles4, f"4x4 tiles of {tag} (grey levels)", ("tiles", v.models[tag].digest)


def _draw_map(v, cmap, space_key, what, values, title, ckey, key) -> None:
    classes = v.data.classes
    fig = caches.code_map_figure(
        (space_key, v.data.source, v.data.fingerprint, cmap.method, ckey, tuple(v.picked)),
        cmap,
        classes,
        v.shown,
        values,
        title,
        460,
    )
    shown_values = None if values is None else values[v.shown]
    summary = map_summary(
        len(v.shown), v.picked, what, cmap.method, cmap.shares, shown_values, title
    )
    if values is None:
        summary += f" Legend: {class_legend_words(classes)}."
    draw.chart(
        fig,
        key=key,
        summary=summary,
        buttons=("lasso2d", "select2d", "zoom2d", "pan2d", "resetScale2d"),
        on_select=lambda: _on_select(key, "code" if key.endswith("code") else "pixel"),
        selection_mode=("points", "lasso", "box"),
        alt=f"Map of {len(v.shown):,} test pictures from {what}; the text under it describes it.",
    )


@draw.fragment
def map_part(v: View) -> None:
    """The code map beside the raw-pixel map; a click or lasso shows those pictures with
    each model's reconstruction. A fragment: a click reruns only this part."""
    c1, c2, c3 = st.columns([1, 2, 1.4])
    method = c1.segmented_control(
        "Projection", list(METHODS), format_func=METHODS.get, required=True,
        default="pca", key="codespace_method", persist_state="session",
    )  # fmt: skip
    tags = list(v.models)
    if st.session_state.get("codespace_model") not in tags:
        st.session_state["codespace_model"] = "A"
    c2.segmented_control(
        "Code of", tags, format_func=v.label, required=True, key="codespace_model",
        persist_state="session", help="Whose encoder made the codes on the map.",
    )  # fmt: skip
    colours = [k for k in COLOURINGS if k == "class" or k[-1] in v.models]
    if st.session_state.get("codespace_colour") not in colours:
        st.session_state["codespace_colour"] = "class"
    colour = c3.selectbox(
        "Colour by", colours, format_func=COLOURINGS.get, key="codespace_colour",
        persist_state="session",
        help="PSNR: how close each picture's reconstruction is (higher is closer). 4x4 "
        "tiles: how much more the reconstruction steps at 4x4 tile edges than its input.",
    )  # fmt: skip
    tag, space = v.tag, v.spaces[v.tag]
    if method == "tsne" and queued(
        v, [tag], "tsne", "the t-SNE map",
        "t-SNE places each picture near the pictures whose codes are nearest to its own, "
        "so groups the code keeps apart show as islands.",
    ):  # fmt: skip
        cmap = caches.code_space_result(space, "tsne")
    else:
        cmap = cheap(space, "pca", f"encoding the {v.n_test:,} test pictures")
    pmap = cheap(space, "pixel-map", "PCA of the raw pixels")
    values, title, ckey = _colouring(v, colour)
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.markdown(f"**The code** of {v.label(tag)}: {v.numbers(tag):,} numbers per picture")
        if cmap is not None:
            what = f"the {v.numbers(tag):,}-number codes of {v.models[tag].name}"
            _draw_map(
                v, cmap, v.models[tag].digest, what, values, title, ckey, "codespace_map_code"
            )
    with right:
        px = v.data.test.channels * v.data.test.image_size**2
        st.markdown(f"**The raw pixels**: {px:,} numbers per picture, before the encoder")
        if pmap is not None:
            what = f"the {px:,} raw pixel values"
            _draw_map(v, pmap, "pixels", what, values, title, ckey, "codespace_map_pixels")
    selection(v)
    classroom.view_changed()  # the address bar and a class follow the chosen picture


def selection(v: View) -> None:
    """The pictures of the last click or lasso, with each model's reconstruction."""
    chosen = st.session_state.get("codespace_chosen") or []
    chosen = [i for i in chosen if 0 <= i < v.n_test]
    if not chosen:
        st.caption(
            "Click a point, or draw around a group (choose the lasso in the map's toolbar, "
            "top right, then drag), to see those pictures here with each model's "
            "reconstruction and its PSNR. The toolbar also zooms, pans and resets the view."
        )
        return
    shown = chosen[:MAX_SHOWN]
    where = "pixel" if st.session_state.get("codespace_chosen_on") == "pixel" else "code"
    more = f"; the first {len(shown)} are shown" if len(chosen) > len(shown) else ""
    st.markdown(
        f"**{len(chosen):,} picture{'s' * (len(chosen) > 1)} selected** on the {where} map{more}."
    )
    x, recons = caches.code_space_selection(
        {v.label(t): m for t, m in v.models.items()}, v.data, shown
    )
    classes = [v.data.classes[k] for k in v.data.test.labels[shown].tolist()]
    draw.pictures(
        draw.recon_rows(x, "test", shown, classes, list(recons.items()), "picture"),
        columns=min(len(shown), 12),
        title="The selected pictures, and each model's reconstruction (PSNR under each)",
    )


# ------------------------------------------------------------- neighbours


def _picture(key: str, label: str, n: int, where=None, help: str | None = None) -> int:
    """A test picture's index (a number input; a link or a map click may have set it)."""
    state = st.session_state
    if not isinstance(state.get(key), int) or not 0 <= state[key] < n:
        state[key] = min(max(int(state.get(key) or 0), 0), n - 1)
    return int(
        (where or st).number_input(
            f"{label} (0-{n - 1:,})", 0, n - 1, key=key, persist_state="session", help=help
        )
    )


SPACE_NAMES = {"code": "code", "pixel": "raw pixels", "PCA 256": "PCA of the pixels"}


@draw.fragment
def neighbours_part(v: View) -> None:
    """The chosen picture's nearest neighbours in the code, the pixels and PCA of the
    pixels, with their classes; the sentence over the whole split when measured."""
    tag, space = v.tag, v.spaces[v.tag]
    c1, _ = st.columns([1, 2])
    index = _picture(
        "codespace_picture", "Picture", v.n_test, c1,
        help="Index in the test split; clicking one point on the map chooses it too.",
    )  # fmt: skip
    try:
        found = caches.neighbours_of(space, index)
    except TooSmallError as exc:
        st.info(str(exc), icon=":material/info:")
        return
    labels = v.data.test.labels
    own = int(labels[index])
    cls = v.data.classes
    x = v.data.test.floats(torch.tensor([index]))
    rows = [draw.input_row("the picture", x, [cls[own]], [f"test picture {index}: {cls[own]}"])]
    px = v.data.test.channels * v.data.test.image_size**2
    numbers = {"code": v.numbers(tag), "pixel": px, "PCA 256": v.numbers(tag)}
    for name, (idx, dist) in found.items():
        same = [i for i, j in enumerate(idx) if int(labels[j]) == own]
        words = f"{SPACE_NAMES.get(name, name)} ({numbers.get(name, 0):,} numbers)"
        rows.append(
            draw.row(
                f"{words}: {len(same)} of {len(idx)} {cls[own]}",
                v.data.test.floats(torch.tensor(idx)),
                [f"{cls[int(labels[j])]}, {d:.1f}" for j, d in zip(idx, dist, strict=True)],
                [
                    f"{SPACE_NAMES.get(name, name)} neighbour {r + 1} of test picture {index}: "
                    f"test picture {j}, {cls[int(labels[j])]}"
                    for r, j in enumerate(idx)
                ],
                marked=same,
            )
        )
    draw.pictures(
        rows,
        columns=max(len(r.pictures) for r in rows),
        label_width="11rem",
        title=f"Test picture {index} and its nearest pictures in each space",
    )
    st.caption(
        f"Under each neighbour: its class and its distance from test picture {index}; "
        f"outlined: the same class as the picture. The code is {v.label(tag)}'s."
    )
    if queued(
        v, [tag], "neighbours", "the neighbours of every test picture",
        f"Over all {v.n_test:,} test pictures: how often neighbours share the picture's "
        "class in each space, and the neighbours in PCA of the pixels.",
    ):  # fmt: skip
        draw.takeaway(caches.code_space_result(space, "neighbours").sentence)
    classroom.view_changed()


# ------------------------------------------------------------------ the probe


def probe_part(v: View) -> None:
    """Does the code know the class? Linear probes on the code, the pixels and PCA of the
    pixels, with chance; accuracy per class as a chart."""
    tag, space = v.tag, v.spaces[v.tag]
    n_train = len(v.data.train)
    st.markdown(
        f"A linear classifier is trained on the {n_train:,} training pictures' codes of "
        f"{v.label(tag)} and tested on the {v.n_test:,} test pictures; the autoencoder never "
        "saw a label. The same classifier on the raw pixels and on PCA of the pixels (as "
        "many numbers as the code) says what was there before the encoder."
    )
    if not queued(
        v, [tag], "probe", "the linear probes",
        "Three linear classifiers (on the code, the pixels and PCA of the pixels).",
    ):  # fmt: skip
        return
    try:
        report = caches.code_space_result(space, "probe")
    except TooSmallError as exc:
        st.info(str(exc), icon=":material/info:")
        return
    draw.takeaway(report.sentence)
    draw.table(probe_rows(report.results, report.chance), {"test accuracy": "%.1f"})
    draw.chart(
        probe_figure(report.results, report.chance),
        key="codespace_probe",
        summary=probe_summary(report.results, report.chance),
        alt="Accuracy per class of the three linear probes; the text under it describes it.",
    )


# ---------------------------------------------------------------- channels


@draw.fragment
def channels_part(v: View) -> None:
    """What each code channel carries: switch one off, swap one, and what it follows."""
    c = v.spaces["A"].code_shape[0]
    if st.session_state.get("codespace_channel") not in range(c):
        st.session_state["codespace_channel"] = 0
    c1, c2, c3 = st.columns([1, 1, 1])
    channel = c1.selectbox(
        "Channel", list(range(c)), key="codespace_channel", persist_state="session",
        help=f"The code has {c} channels (0-{c - 1}).",
    )  # fmt: skip
    index = _picture("codespace_picture", "Picture", v.n_test, c2)
    if st.session_state.get("codespace_other") is None:
        st.session_state["codespace_other"] = (index + 1) % v.n_test
    other = _picture("codespace_other", "Swap with picture", v.n_test, c3)
    tags = list(v.models)
    if queued(
        v, tags, "channels", "the channel report",
        "Each channel switched off (set to its mean over the training pictures) over the "
        "whole test split, and how each follows brightness, colour and edges.",
    ):  # fmt: skip
        reports = {t: caches.code_space_result(v.spaces[t], "channels") for t in tags}
        _switch_off(v, reports, channel, index)
        _correlations(v, reports)
    _swap(v, channel, index, other)
    classroom.view_changed()


def _switch_off(v: View, reports: dict, channel: int, index: int) -> None:
    st.subheader(f"Channel {channel} switched off")
    indices = [(index + i) % v.n_test for i in range(8)]
    cls = [v.data.classes[k] for k in v.data.test.labels[indices].tolist()]
    x = v.data.test.floats(torch.tensor(indices))
    recons = []
    for t, m in v.models.items():
        recons.append(
            (
                v.label(t),
                caches.code_space_selection({v.label(t): m}, v.data, indices)[1][v.label(t)],
            )
        )
        off = caches.switched_off(m, v.data, indices, channel, reports[t].means)
        recons.append((f"{t}, channel {channel} off", off))
    draw.pictures(
        draw.recon_rows(x, "test", indices, cls, recons, "picture"),
        columns=len(indices),
        label_width="11rem",
        title=f"Test pictures {indices[0]}-{indices[-1]}: each model, then the same with "
        f"channel {channel} at its training mean (PSNR under each)",
    )
    labels = {v.label(t): t for t in v.models}
    rows = switch_off_rows({t: reports[t] for t in labels.values()})
    base = "; ".join(f"{t}: {reports[t].psnr:.2f} dB" for t in v.models)
    draw.table(rows, {"A": "%.2f", "B": "%.2f"}, key="codespace_switch_table")
    st.caption(
        f"Test PSNR over all {v.n_test:,} test pictures with every channel on ({base}), and "
        "with one channel switched off: the drop says how much of the picture that channel "
        "carried for that model."
    )


def _correlations(v: View, reports: dict) -> None:
    st.subheader("What each channel follows")
    cols = st.columns(len(reports))
    for col, (t, r) in zip(cols, reports.items(), strict=True):
        with col:
            st.markdown(f"**{v.label(t)}**")
            draw.table(
                correlation_rows(r.correlations),
                {name: "%+.2f" for name in r.correlations},
                key=f"codespace_corr_{t}",
            )
            st.caption(
                f"Pearson's r over the {v.n_test:,} test pictures between each channel's mean "
                f"value and each property of the picture. {r.sentence}"
            )


def _swap(v: View, channel: int, a: int, b: int) -> None:
    st.subheader(f"Channel {channel} swapped between two pictures")
    cls = [v.data.classes[k] for k in v.data.test.labels[[a, b]].tolist()]
    x = v.data.test.floats(torch.tensor([a, b]))
    recons = [
        (f"{t}: with the other's channel {channel}", caches.swapped(m, v.data, a, b, channel))
        for t, m in v.models.items()
    ]
    draw.pictures(
        draw.recon_rows(x, "test", [a, b], cls, recons, "pictures"),
        columns=2,
        max_px=160,
        label_width="14rem",
        title=f"Test pictures {a} and {b}; below, each model's reconstruction of each with "
        f"channel {channel} taken from the other (PSNR against its own picture)",
    )
