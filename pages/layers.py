"""Layers: follow one picture through every step of the model, channel by channel.

The step controls and the maps are one ``st.fragment``: a Next click reruns only them,
not the sidebar or the picture choice. Traces, maps and thumbnails are cached per
(weights digest, picture, step, colour mode), shared by every session looking at the
same model and picture, so a step costs the server a cache lookup and a few kB of HTML.
"""

from __future__ import annotations

import hashlib

import streamlit as st
import torch

from convae.figures import step_thumbnail
from convae.figures.compare import matching_step
from convae.figures.html import PictureRow, picture_rows_html
from convae.figures.maps import (
    COLOUR_MODE_LABELS,
    COLOUR_MODES,
    channel_heatmap,
    legend_html,
    step_maps,
)
from convae.images import ImageDecodeError, image_to_input
from convae.models import CODE_STEP, trace
from convae.recon import reconstruct_scored
from convae.summary import channel_stats, value_range
from pages import ui
from pages.common import current_data, require_model, selected_classes, selected_models
from pages.links import show_copy_link, sync_link

st.title("Layers")
ui.takeaway(
    "Follow one picture through the model: the encoder squeezes it into a 4x8x8 code, the "
    "decoder rebuilds it. Each small map is one channel; step through with <b>Next</b>."
)


# ------------------------------------------------------------- shared caches


@st.cache_resource(show_spinner=False, max_entries=256)
def _trace(digest: str, picture: str, _model, _x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Every step's activation for one model and picture (read only, shared)."""
    return trace(_model, _x)


@st.cache_data(show_spinner=False, max_entries=1024)
def _maps_html(
    digest: str,
    picture: str,
    step: str,
    mode: str,
    _acts,
    in_channels: int,
    columns: int,
    joint: tuple[float, float] | None = None,
) -> tuple[str, str]:
    """The step's maps and its colour legend as HTML, per model, picture, step and mode;
    ``joint`` is one value range shared with another model's maps (compare mode)."""
    acts = dict(_acts)
    if joint is not None:
        maps = step_maps(acts[step], step, "model", joint, in_channels)
    else:
        rng = value_range(_acts) if mode == "model" else None
        maps = step_maps(acts[step], step, mode, rng, in_channels)
    rows = [PictureRow("", maps.pictures, maps.captions, [f"{step}, {c}" for c in maps.captions])]
    return (
        picture_rows_html(rows, columns=columns, title=f"{step}: channel maps"),
        legend_html(maps.legend, mode),
    )


def _joint_range(mode: str, acts, step: str, acts_b, step_b: str) -> tuple[float, float] | None:
    """One value range for two models' maps: this step's (per layer) or every step's
    (whole model) over both; None per channel, where every map has its own range."""
    if mode == "channel":
        return None
    if mode == "layer":
        a, b = dict(acts)[step], dict(acts_b)[step_b]
        return float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    (la, ha), (lb, hb) = value_range(acts), value_range(acts_b)
    return float(min(la, lb)), float(max(ha, hb))


@st.cache_data(show_spinner=False, max_entries=256)
def _thumbnails(digest: str, picture: str, _acts, in_channels: int) -> list:
    """A small picture of every step (the path strip), per model and picture."""
    return [step_thumbnail(a, n, in_channels, target_px=1) for n, a in _acts]


@st.cache_data(show_spinner=False, max_entries=1024)
def _strip_html(digest: str, picture: str, step: str, _acts, in_channels: int) -> str:
    """The whole path as HTML, ``step`` marked, per model, picture and step (encoding its
    thumbnails as PNG again at every click was 15 % of a Layers step's server CPU)."""
    names = [n for n, _ in _acts]
    thumbs = _thumbnails(digest, picture, _acts, in_channels)
    split = names.index(CODE_STEP) + 1
    strip = [
        PictureRow(
            title,
            thumbs[a:b],
            [("▶ " if names[j] == step else "") + names[j] for j in range(a, b)],
            [f"{names[j]}{' (shown above)' if names[j] == step else ''}" for j in range(a, b)],
            marked=[j - a for j in range(a, b) if names[j] == step],
        )
        for title, a, b in (("Encoder", 0, split), ("Decoder", split, len(names)))
    ]
    return picture_rows_html(
        strip, columns=max(split, len(names) - split), label_width="5rem", max_px=110
    )


def _picture_key(x: torch.Tensor) -> str:
    return hashlib.sha1(x.numpy().tobytes()).hexdigest()[:16]


# ------------------------------------------------------------- picture choice

left, right = st.columns([1, 2.6], gap="large")
with left:
    pics = st.container()  # filled below, once the choice below is known: pictures first
    choice = require_model("layers")
    cfg = choice.config
    data = current_data()
    usable = data if data is not None and choice.fits(data) else None
    sources = ["test picture", "your photo"] if usable is not None else ["your photo"]
    src = st.radio(
        "Picture", sources, key="layers_source", horizontal=True, persist_state="session"
    )
    x, caption = None, ""
    if src == "your photo":
        up = st.file_uploader(
            "Upload a photo",
            type=["png", "jpg", "jpeg", "gif", "bmp", "webp"],
            key="layers_upload",
            help=f"Centre-cropped to a square and shrunk to {cfg.image_size}x{cfg.image_size}.",
        )
        if up is not None:
            try:
                x = image_to_input(up.getvalue(), cfg.in_channels, cfg.image_size, up.name)
                caption = f"{up.name}, cropped and resized to {cfg.image_size}px"
            except ImageDecodeError as exc:
                st.error(str(exc))
        if x is None and usable is not None:
            st.caption("Showing a test picture until a photo is uploaded.")
    if x is None and usable is not None:
        classes = selected_classes()
        # The first class that has test pictures (an empty class folder has none).
        default_cls = (
            "airplane"
            if "airplane" in classes
            else next((c for c in classes if len(usable.test.filter([c]))), classes[0])
        )
        if st.session_state.get("layers_class") not in classes:
            st.session_state["layers_class"] = default_cls
        c1, c2 = st.columns(2)
        cls = c1.selectbox("Class", classes, key="layers_class", persist_state="session")
        subset = usable.test.filter([cls])
        if len(subset) == 0:  # an empty class folder: nothing to trace, say so
            st.warning(
                f"The test split has no pictures of {cls}. Pick another class in the "
                "sidebar, or upload a photo."
            )
            st.stop()
        idx = c2.number_input(
            f"Picture (0-{len(subset) - 1:,})",
            0,
            max(len(subset) - 1, 0),
            key="layers_index",
            persist_state="session",
        )
        idx = min(int(idx), len(subset) - 1)
        x = subset.floats(slice(idx, idx + 1))
        caption = f"test {cls} #{idx}"
    if x is None:
        st.info("Upload a photo (JPEG, PNG, ...) to trace it through the model.")
        st.stop()

picture = _picture_key(x)
acts = _trace(choice.digest, picture, choice.model, x)
names = [n for n, _ in acts]
rebuilt = reconstruct_scored(choice.model, x)
with pics:
    ui.pictures(
        [
            ui.row(
                "",
                torch.cat([x, rebuilt.images]),
                ["input", f"rebuilt, {float(rebuilt.psnr[0]):.1f} dB"],
                [
                    f"input: {caption}",
                    f"{caption} rebuilt by {choice.name}, {float(rebuilt.psnr[0]):.1f} dB",
                ],
            )
        ],
        columns=2,
    )
    st.caption(f"{caption}: what goes in, and what {choice.name} rebuilds from its code.")


# ------------------------------------------------------------ stepping (fragment)


def _move(delta: int) -> None:
    i = names.index(st.session_state.get("layers_step", names[1]))
    st.session_state["layers_step"] = names[max(0, min(len(names) - 1, i + delta))]


def _compare_partner():
    """Another picked model that takes the same pictures (Layers' compare mode)."""
    for m in selected_models():
        if m.key != choice.key and (m.config.in_channels, m.config.image_size) == (
            cfg.in_channels,
            cfg.image_size,
        ):
            return m
    return None


@st.fragment
def stepper() -> None:
    if st.session_state.get("layers_step") not in names:  # the other decoder's steps
        st.session_state["layers_step"] = names[1]
    b1, b2, mid = st.columns([1, 1, 3], vertical_alignment="bottom")
    # Never disabled at the ends: a disabled button drops the keyboard focus (issue 16);
    # at the last step Next simply stays there.
    b1.button("◀ Prev", key="layers_prev", on_click=_move, args=(-1,), width="stretch")
    b2.button(
        "Next ▶", key="layers_next", on_click=_move, args=(1,), width="stretch", type="primary"
    )
    mode = mid.segmented_control(
        "Colour scale",
        COLOUR_MODES,
        key="layers_colour",
        default="layer",
        required=True,
        format_func=COLOUR_MODE_LABELS.get,
        persist_state="session",
        help="Per channel: every map over its own range (shows structure). Per layer: one "
        "range for this step (compare channels). Whole model: one range for every step "
        "(compare steps).",
    )
    step = st.select_slider("Step", names, key="layers_step", persist_state="session")
    i = names.index(step)
    act = dict(acts)[step]
    part = (
        "the input picture"
        if step == "input"
        else "the code"
        if step == CODE_STEP
        else "encoder"
        if i < names.index(CODE_STEP)
        else "decoder"
    )
    shape = " x ".join(map(str, act.shape[1:]))
    st.markdown(
        f"**{step}** ({part}, step {i} of {len(names) - 1}): {shape} = {act[0].numel():,} numbers"
    )

    other = _compare_partner()
    paired = other is not None and st.toggle(
        f"Compare with {other.name}",
        key="layers_compare",
        persist_state="session",
        help="Both models' maps for this picture side by side. Decoder steps are matched by "
        "their job (t_conv1 / conv4, t_conv2 / conv5).",
    )
    columns = min(act.shape[1], 8)
    if paired:
        acts_b = _trace(other.digest, picture, other.model, x)
        step_b = matching_step(step, [n for n, _ in acts_b])
        joint = _joint_range(mode, acts, step, acts_b, step_b)
        maps, legend = _maps_html(
            choice.digest, picture, step, mode, acts, cfg.in_channels, columns, joint
        )
        maps_b, legend_b = _maps_html(
            other.digest, picture, step_b, mode, acts_b, cfg.in_channels, columns, joint
        )
        ca, cb = st.columns(2, gap="medium")
        ca.markdown(f"**{choice.name}** at {step}")
        ui.html(maps + legend, ca)
        cb.markdown(f"**{other.name}** at {step_b}")
        ui.html(maps_b + legend_b, cb)
        if joint is not None:
            st.caption(
                f"Both models' maps on one colour scale ({joint[0]:.3g} to {joint[1]:.3g}, "
                "their joint range), so equal colours mean equal values."
            )
    else:
        maps, legend = _maps_html(
            choice.digest, picture, step, mode, acts, cfg.in_channels, columns
        )
        ui.html(maps + legend)

    st.markdown("**The whole path** (each map over its own range; ▶ marks this step)")
    ui.html(_strip_html(choice.digest, picture, step, acts, cfg.in_channels))

    if not ui.presenting() and st.toggle(
        "Read the exact values of one channel", key="layers_values"
    ):
        ch = st.selectbox(
            "Channel",
            list(range(act.shape[1])),
            key="layers_value_channel",
            format_func=lambda c: f"channel {c}",
        )
        ch = min(int(ch), act.shape[1] - 1)
        rng = value_range(acts) if mode == "model" else None
        lg = step_maps(act, step, mode, rng, cfg.in_channels).legend
        ui.chart(
            channel_heatmap(act, ch, lg, step),
            key="layers_heatmap",
            summary=f"Channel {ch} of {step}: {act.shape[2]}x{act.shape[3]} values "
            "from {:.3f} to {:.3f}.".format(float(act[0, ch].min()), float(act[0, ch].max())),
        )
        stats = channel_stats(act, step)
        after_relu = stats[0]["zeros"] is not None
        st.dataframe(
            stats,
            hide_index=True,
            column_order=["channel", "min", "max", "mean"] + ["zeros"] * after_relu,
            column_config={
                "channel": st.column_config.NumberColumn("channel", format="%d"),
                "min": st.column_config.NumberColumn(format="%.3f"),
                "max": st.column_config.NumberColumn(format="%.3f"),
                "mean": st.column_config.NumberColumn(format="%.3f"),
                "zeros": st.column_config.ProgressColumn(
                    "zeros after ReLU",
                    min_value=0.0,
                    max_value=1.0,
                    format="percent",
                    help="Share of exactly-zero values: units the ReLU switched off.",
                ),
            },
        )
    sync_link()  # the address bar follows the step, also on a fragment-only rerun
    if not ui.presenting():
        show_copy_link(st.container())  # here, not in the sidebar: it follows the step


with right:
    stepper()
