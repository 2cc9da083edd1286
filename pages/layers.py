"""Layers: follow one image through every step of the model, channel by channel."""

from __future__ import annotations

import streamlit as st

from convae.figures import (
    COLOUR_MODE_LABELS,
    COLOUR_MODES,
    activation_grid,
    image_list,
    step_thumbnail,
)
from convae.figures.compare import matching_step, paired_activation_grids
from convae.images import ImageDecodeError, image_to_input
from convae.inspect import channel_stats, value_range
from convae.models import CODE_STEP, trace
from pages.common import (
    PNG_EXPORT,
    current_data,
    require_model,
    selected_classes,
    selected_models,
)

st.title("Layers")
st.caption(
    "Pick an image, then step from the input through the encoder to the 4-channel "
    "code and back out through the decoder. Hover a map to read its values."
)

choice = require_model("layers")
cfg = choice.config
data = current_data()
usable = data if data is not None and choice.fits(data) else None

# ------------------------------------------------------------- image choice
left, right = st.columns([1, 3], gap="large")
with left:
    sources = ["test image", "your photo"] if usable is not None else ["your photo"]
    src = st.radio("Image", sources, key="layers_source", horizontal=True, persist_state="session")
    x, caption = None, ""
    if src == "your photo":
        if usable is None:
            st.caption(
                "No matching data set is loaded, so upload a photo to look inside the model."
            )
        up = st.file_uploader(
            "Upload a photo",
            type=["png", "jpg", "jpeg", "gif", "bmp", "webp"],
            key="layers_upload",
            help="Centre-cropped to a square and shrunk to the model's "
            f"{cfg.image_size}x{cfg.image_size} input.",
        )
        if up is not None:
            try:
                x = image_to_input(up.getvalue(), cfg.in_channels, cfg.image_size, up.name)
                caption = f"{up.name}, cropped and resized to {cfg.image_size}px"
            except ImageDecodeError as exc:
                st.error(str(exc))
        if x is None and usable is not None:
            st.caption("Showing a test image until a photo is uploaded.")
    if x is None and usable is not None:
        classes = selected_classes()
        # The first class that has test images (an empty class folder has none).
        default_cls = (
            "airplane"
            if "airplane" in classes
            else next((c for c in classes if len(usable.test.filter([c]))), classes[0])
        )
        if st.session_state.get("layers_class") not in classes:
            st.session_state["layers_class"] = default_cls
        cls = st.selectbox("Class", classes, key="layers_class", persist_state="session")
        subset = usable.test.filter([cls])
        if len(subset) == 0:  # an empty class folder: nothing to trace, say so
            st.warning(
                f"The test split has no images of {cls}. Pick another class in the "
                "sidebar, or upload a photo."
            )
            st.stop()
        idx = st.number_input(
            f"Index among the {len(subset):,} test {cls} images",
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
    st.image(image_list(x, target_px=192), caption=caption)

# ------------------------------------------------------------------ tracing
acts = trace(choice.model, x)  # no hooks, no mutation: safe on a shared cached model
names = [n for n, _ in acts]
by_name = dict(acts)


def _move(delta: int) -> None:
    i = names.index(st.session_state.get("layers_step", names[1]))
    st.session_state["layers_step"] = names[max(0, min(len(names) - 1, i + delta))]


if st.session_state.get("layers_step") not in names:  # the other decoder has other steps
    st.session_state["layers_step"] = names[1]

with right:
    step = st.select_slider("Step", names, key="layers_step", persist_state="session")
    b1, b2, mid = st.columns([1, 1, 5], vertical_alignment="bottom")
    b1.button("◀ Prev", key="layers_prev", on_click=_move, args=(-1,), width="stretch")
    b2.button("Next ▶", key="layers_next", on_click=_move, args=(1,), width="stretch")
    mode = mid.segmented_control(
        "Colour scale",
        COLOUR_MODES,
        key="layers_colour",
        default="layer",
        required=True,
        format_func=COLOUR_MODE_LABELS.get,
        persist_state="session",
        help="Per channel: every map uses its own range (shows structure). Per layer: one "
        "scale for this step (compare channels). Whole model: one scale for every "
        "step (compare steps).",
    )
    act = by_name[step]
    model_range = value_range(acts) if mode == "model" else None
    where = (
        "the code"
        if step == CODE_STEP
        else (
            "the input image"
            if step == "input"
            else f"step {names.index(step)} of {len(names) - 1}"
        )
    )
    st.caption(
        f"**{step}** ({where}): output {' x '.join(map(str, act.shape[1:]))} "
        f"= {act[0].numel():,} values."
    )
    # Compare mode (issue 4): another picked model that takes the same images, traced on
    # the same image and drawn next to this one on one shared colour scale.
    others = [
        m
        for m in selected_models()
        if m.key != choice.key
        and (m.config.in_channels, m.config.image_size) == (cfg.in_channels, cfg.image_size)
    ]
    other = others[0] if others else None
    paired = other is not None and st.toggle(
        f"Compare with {other.short}",
        key="layers_compare",
        persist_state="session",
        help="Both models' maps for this image side by side, on one colour scale. Decoder "
        "steps are matched by their job (t_conv1 / conv4, t_conv2 / conv5).",
    )
    if paired:
        acts_b = trace(other.model, x)
        step_b = matching_step(step, [n for n, _ in acts_b])
        figs = paired_activation_grids(
            {choice.short: (step, act), other.short: (step_b, dict(acts_b)[step_b])}
        )
        for col, fig, k in zip(st.columns(2), figs, ("layers_maps", "layers_maps_b"), strict=True):
            col.plotly_chart(fig, key=k, config=PNG_EXPORT)
        st.caption(
            f"Left {choice.short} at {step}, right {other.short} at {step_b}: one "
            "colour scale for both (the colour-scale choice above applies to one "
            "model)."
        )
    else:
        st.plotly_chart(
            activation_grid(act, step, mode or "layer", model_range),
            key="layers_maps",
            config=PNG_EXPORT,
        )

    stats = channel_stats(act, step)
    after_relu = stats[0]["zeros"] is not None
    st.dataframe(
        stats,
        hide_index=True,
        height=35 * (len(stats) + 1) + 3,
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
                help="Share of exactly-zero values: units the ReLU switched off. Only "
                "shown after a ReLU.",
            ),
        },
    )

# -------------------------------------------------------------- overview strip
st.subheader("The whole path at a glance")
st.caption(
    "Every step, small (each map stretched over its own range). The code is "
    f"{CODE_STEP}, in the middle; ▶ marks the step shown above."
)
split = names.index(CODE_STEP) + 1  # encoder row ends with the code
for title, part in (("Encoder", acts[:split]), ("Decoder", acts[split:])):
    st.markdown(f"**{title}**")
    st.image(
        [step_thumbnail(a, n, cfg.in_channels, target_px=96) for n, a in part],
        caption=[
            f"{'▶ ' if n == step else ''}{n} {'x'.join(map(str, a.shape[1:]))}" for n, a in part
        ],
    )
