"""Layers: follow one picture through every step of the model, channel by channel.

The step controls and the maps are one ``st.fragment``: a Next click reruns only them,
not the sidebar or the picture choice. Traces, maps and thumbnails are cached per
(weights digest, picture, step, colour mode) in pages/glue/caches.py, shared by every
session looking at the same model and picture, so a step costs the server a cache lookup
and a few kB of HTML.
"""

from __future__ import annotations

import streamlit as st

from convae.figures.compare import matching_step
from convae.figures.maps import (
    COLOUR_MODE_LABELS,
    COLOUR_MODES,
    channel_heatmap,
    step_maps,
)
from convae.summary import channel_stats, joint_range, step_role, value_range
from pages.glue import caches, choose, classroom, draw
from pages.glue.links import show_copy_link
from pages.glue.state import current_data, require_model, selected_classes, selected_models

st.title("Layers")
draw.takeaway(
    "Follow one picture through the model: the encoder squeezes it into a 4x8x8 code, the "
    "decoder rebuilds it. Each small map is one channel; step through with <b>Next</b>."
)


# ------------------------------------------------------------- picture choice

left, right = st.columns([1, 2.6], gap="large")
with left:
    pics = st.container()  # filled below, once the choice below is known: pictures first
    choice = require_model("layers")
    cfg = choice.config
    data = current_data()
    usable = data if data is not None and choice.fits(data) else None
    x, caption = choose.test_picture_or_photo("layers", cfg, usable, selected_classes())

picture = caches.picture_key(x)
acts = caches.trace(choice, x, picture)
names = [n for n, _ in acts]
rebuilt = caches.reconstruction(choice.digest, choice.model, x, picture)
with pics:
    draw.pictures(
        [
            draw.joined(
                draw.row("", x, ["input"], [f"input: {caption}"]),
                draw.recon_row("", rebuilt, [caption], by=choice.name),
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


@draw.fragment
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
    part = step_role([n for n, _ in acts], step)
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
        acts_b = caches.trace(other, x, picture)
        step_b = matching_step(step, [n for n, _ in acts_b])
        joint = joint_range(mode, acts, step, acts_b, step_b)
        ca, cb = st.columns(2, gap="medium")
        for col, m, s, a in ((ca, choice, step, acts), (cb, other, step_b, acts_b)):
            col.markdown(f"**{m.name}** at {s}")
            draw.html(caches.maps_html(m, picture, a, s, mode, columns, joint), col)
        if joint is not None:
            st.caption(
                f"Both models' maps on one colour scale ({joint[0]:.3g} to {joint[1]:.3g}, "
                "their joint range), so equal colours mean equal values."
            )
    else:
        draw.html(caches.maps_html(choice, picture, acts, step, mode, columns))

    st.markdown("**The whole path** (each map over its own range; ▶ marks this step)")
    draw.html(caches.path_strip_html(choice, picture, acts, step))

    if not draw.presenting() and st.toggle(
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
        draw.chart(
            channel_heatmap(act, ch, lg, step),
            key="layers_heatmap",
            summary=f"Channel {ch} of {step}: {act.shape[2]}x{act.shape[3]} values "
            "from {:.3f} to {:.3f}.".format(float(act[0, ch].min()), float(act[0, ch].max())),
        )
        stats = channel_stats(act, step)
        after_relu = stats[0]["zeros"] is not None
        draw.table(
            stats,
            {"min": "%.3f", "max": "%.3f", "mean": "%.3f", "channel": "%d"},
            column_order=["channel", "min", "max", "mean"] + ["zeros"] * after_relu,
            column_config={
                "zeros": st.column_config.ProgressColumn(
                    "zeros after ReLU",
                    min_value=0.0,
                    max_value=1.0,
                    format="percent",
                    help="Share of exactly-zero values: units the ReLU switched off.",
                ),
            },
        )
    # The address bar (and a class following this screen) follows the step, also on a
    # fragment-only rerun.
    classroom.view_changed()
    if not draw.presenting():
        show_copy_link(st.container())  # here, not in the sidebar: it follows the step


with right:
    stepper()
