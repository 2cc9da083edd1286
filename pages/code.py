"""Code: the 4x8x8 code of a picture, edited live, walked from one picture to another,
and priced in bytes.

The editor is an ``st.fragment``: moving a slider reruns only the editor (a decode of one
code and a few tiny pictures), not the page.
"""

from __future__ import annotations

import streamlit as st
import torch

from convae.codec import decode, edit_code, encode, ledger, walk
from convae.figures.maps import legend_html, step_maps
from convae.figures.uses import rate_distortion_figure
from convae.recon import score
from pages.glue import caches, draw
from pages.glue.choose import pick_image, test_images
from pages.glue.state import require_data, require_model, selected_classes

RD_IMAGES = 200

st.title("Code")
data = require_data()
choice = require_model("code", data=data)
model = choice.model
images = test_images(data, selected_classes())
code_c, code_h, code_w = choice.config.code_shape
draw.takeaway(
    f"The encoder squeezes a picture into {code_c} small maps of {code_h}x{code_w} numbers; "
    "the decoder rebuilds the picture from them alone. Change the numbers and watch the "
    "picture change."
)

# ---------------------------------------------------------------- editing
st.subheader("Edit the code")
p1, _ = st.columns([1, 3], gap="large")
with p1:
    x, cls = pick_image("code", images)
z = encode(model, x)


@draw.fragment
def editor() -> None:
    left, right = st.columns([1, 3], gap="large")
    c, h, w = z.shape[1:]
    with left:
        channel = st.selectbox(
            "Channel to change",
            list(range(c)),
            key="code_channel",
            format_func=lambda i: f"channel {i}",
            persist_state="session",
        )
        scale = st.slider(
            "Multiply the channel by (0 switches it off)",
            0.0,
            3.0,
            1.0,
            0.05,
            key="code_scale",
            persist_state="session",
        )
        paint = st.toggle("Paint a value into a block", key="code_paint", persist_state="session")
        rect, value = None, 0.0
        if paint:
            zmax = float(z.max())
            value = st.slider(
                "Value",
                0.0,
                round(max(2 * zmax, 1.0), 1),
                round(zmax, 1),
                key="code_value",
                persist_state="session",
            )
            rows = st.slider("Rows", 0, h, (2, 4), key="code_rows", persist_state="session")
            cols = st.slider("Columns", 0, w, (2, 4), key="code_cols", persist_state="session")
            rect = (rows[0], cols[0], rows[1] - rows[0], cols[1] - cols[0])
    edited = edit_code(z, channel, scale, rect, value)
    before, after = decode(model, z), decode(model, edited)
    db = score(before, x).mean_psnr
    edit_row = draw.row(
        "",
        torch.cat([x, before, after]),
        [cls, f"decoded, {db:.1f} dB", "decoded from your edit"],
        [
            f"test picture: {cls}",
            f"{cls} rebuilt from its code, {db:.1f} dB",
            f"{cls} rebuilt from the edited code (channel {channel} times "
            f"{scale:g}{', with a painted block' if rect else ''})",
        ],
    )
    with right:
        draw.pictures(
            [edit_row],
            columns=3,
            max_px=220,
            title="The picture, its decoding, and the decoding of the edited code",
        )
        maps = step_maps(edited, "pool2", "layer")
        changed = int((edited != z).sum())
        caps = [f"channel {i}" for i in range(c)]
        alts = [f"edited code, {cap}" for cap in caps]
        row = draw.PictureRow("", maps.pictures, caps, alts)
        draw.pictures([row], columns=c, max_px=160, title="The edited code")
        draw.html(legend_html(maps.legend, "layer"))
        st.caption(f"The code after your edit: {changed} of {z.numel()} numbers changed.")
    with left:
        draw.download_png([edit_row], "code-edit.png", "code_edit_download")


editor()

# ------------------------------------------------------------ interpolation
st.subheader("Walk from one code to another")
i1, i2, i3 = st.columns([1, 1, 2])
with i1:
    xa, cls_a = pick_image("code", images, "From picture", suffix="_a")
with i2:
    if "code_index_b" not in st.session_state:
        st.session_state["code_index_b"] = min(1, len(images) - 1)
    xb, cls_b = pick_image("code", images, "To picture", suffix="_b")
with i3:
    frames = st.slider("Frames", 3, 12, 8, key="code_frames", persist_state="session")
strip, fade, ts = walk(model, xa, xb, frames)
t_caps = [f"{v:.2f}" for v in ts]
walk = [
    draw.row(
        "code path",
        strip,
        t_caps,
        [f"decoded from the code {v:.0%} of the way from {cls_a} to {cls_b}" for v in ts],
    ),
    draw.row(
        "cross-fade",
        fade,
        t_caps,
        [f"pixel mix: {1 - v:.0%} {cls_a}, {v:.0%} {cls_b}" for v in ts],
    ),
]
draw.pictures(walk, columns=frames, title=f"From {cls_a} to {cls_b}")
st.caption(
    "Top: the code walks from one picture's code to the other's and the decoder draws "
    "each step, moving shapes and colours through what it can draw. Bottom: a plain "
    "pixel mix only overlays the two pictures."
)
draw.download_png(walk, f"code-walk-{cls_a}-{cls_b}.png", "code_walk_download")

# ------------------------------------------------------------------ ledger
st.subheader("What the code costs")
rows = ledger(model, x)
raw = rows[0]["bytes"]  # this data set's own pixels: 3,072 for CIFAR-10, 784 for 28x28 grey
code8 = next(r for r in rows if r["form"] == "code 8-bit")
draw.note(
    f"Stored as 8-bit numbers the code of the picture above takes {code8['bytes']} bytes "
    f"instead of its {raw:,} raw bytes ({raw / code8['bytes']:.1f}x smaller), and "
    f"rebuilds it at {code8['psnr']:.1f} dB. A JPEG of the same size, for comparison:"
)
draw.table(
    [
        {
            "stored as": r["form"],
            "bytes": r["bytes"],
            "PSNR (dB)": r["psnr"],
            "vs raw": f"{raw / r['bytes']:.1f}x smaller" if r["bytes"] < raw else "-",
        }
        for r in rows
    ],
    {"PSNR": "%.1f"},
    key="code_ledger",
)


def _rd_chart() -> None:
    st.caption(
        "How the table is made: quantised codes store their min and max too (8 bytes). "
        "JPEG is matched to the 8-bit code's size on its compressed picture data alone "
        "(its headers and tables, like the decoder's weights, are shared by every "
        "picture); the whole file is larger. The data set is itself a JPEG (quality 75) "
        "copy, and re-encoding near quality 75 would replay its own artifacts, so JPEG "
        "qualities stop at 70."
    )
    xs = images.floats(slice(0, RD_IMAGES))
    rd = caches.rate_distortion(
        choice, xs, caches.split_key(data, "test", selected_classes(), RD_IMAGES)
    )
    draw.chart(
        rate_distortion_figure(rd, rows[1:]),
        key="code_rd",
        summary=f"Means over the first {RD_IMAGES} test pictures of the chosen "
        "classes; the crosses are the picture above. The code cannot get better than "
        "the model's own reconstruction however many bits it gets; JPEG keeps "
        "improving with more bytes.",
    )


draw.details("Bytes against quality: the code and JPEG", _rd_chart)
