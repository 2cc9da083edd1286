"""Style: style transfer with Gram matrices of the encoder's layers (Gatys et al. 2016, as
in the course notes), and the Gram matrices themselves."""

from __future__ import annotations

import streamlit as st
import torch

from convae.figures.uses import gram_figure, loss_curve_figure
from convae.style import layer_grams, style_transfer
from pages.glue import caches, draw, style_panel
from pages.glue.choose import test_images
from pages.glue.state import require_data, require_model, selected_classes, selected_models

st.title("Style")
draw.takeaway(
    "Style transfer paints a new picture that keeps the layout of one picture (the "
    "<b>content</b>) and takes the colours and textures of another (the <b>style</b>), as "
    "this model's encoder sees them."
)
data = require_data()
choice = require_model("style", data=data)
images = test_images(data, selected_classes())
encoder = caches.encoder_features(choice)


# --------------------------------------------------------------- the transfer
size = style_panel.size()
content, content_name = style_panel.picture("content", images, size)
style, style_name = style_panel.picture("style", images, size)
result = st.session_state.get("style_result")
p1, p2, p3, p4 = st.columns([1, 1, 1, 1.1], gap="medium", vertical_alignment="top")
for col, img, name in ((p1, content, content_name), (p2, style, style_name)):
    with col:
        if img is not None:
            draw.pictures([draw.row("", img, [name], [f"{name} picture"])], columns=1)
live = p3.empty()
if result is not None:
    with p3:
        draw.pictures(
            [
                draw.row(
                    "", result["image"], ["result"], [f"style transfer result: {result['what']}"]
                )
            ],
            columns=1,
        )
else:
    p3.info("The result appears here.")
with p4:
    run = st.button(
        "Run style transfer",
        key="style_run",
        type="primary",
        width="stretch",
        disabled=content is None or style is None,
        icon=":material/brush:",
    )
    n1, n2 = st.columns(2)
    n1.number_input(
        "Content picture", 0, len(images) - 1, key="style_index_content", persist_state="session"
    )
    n2.number_input(
        "Style picture", 0, len(images) - 1, key="style_index_style", persist_state="session"
    )
    bar = st.empty()


ex_name, extractor = style_panel.features(encoder)
draw.details(
    "Settings: pictures, weights, layers, steps",
    lambda: style_panel.settings(choice.name, ex_name, extractor.layers, data.test.channels == 3),
)

if run and content is not None and style is not None:
    state = st.session_state
    cfg = style_panel.recipe(ex_name, extractor.layers)
    progress = bar.progress(0.0, text="Painting...")

    def on_step(ev) -> None:
        if ev.step % 10 == 0 or ev.step == ev.steps:
            progress.progress(ev.step / ev.steps, text=f"step {ev.step} of {ev.steps}")
            alt = f"style transfer in progress, step {ev.step}"
            draw.pictures(
                [draw.row("", ev.image, [f"step {ev.step}"], [alt])], columns=1, where=live
            )

    try:
        with torch.enable_grad():
            res = style_transfer(extractor, content, style, cfg, on_step)
    except ValueError as exc:
        st.error(str(exc))
    else:
        state["style_result"] = {
            "image": res.image,
            "history": res.history,
            "content": content,
            "style": style,
            "alpha": cfg.alpha,
            "beta": cfg.beta,
            "seconds": res.seconds,
            "extractor": ex_name,
            "what": f"{content_name} painted in the style of {style_name}",
        }
    st.rerun()

if result is not None:
    draw.download_png(
        [
            draw.row(
                "",
                torch.cat([result["content"], result["style"], result["image"]]),
                ["content", "style", "result"],
            )
        ],
        "style-transfer.png",
        "style_download",
        label="Download (PNG)",
    )

    def _loss() -> None:
        h = result["history"]
        draw.chart(
            loss_curve_figure(h, result["alpha"], result["beta"]),
            key="style_loss",
            summary=f"{len(h)} steps in {result['seconds']:.1f} s with the "
            f"{result['extractor']} features; total loss {h[0]['total']:.4g} -> "
            f"{h[-1]['total']:.4g}.",
        )

    draw.details("How the loss fell", _loss)

# --------------------------------------------------------------- Gram matrices


def _grams() -> None:
    st.caption(
        "A layer's Gram matrix G = F F^T (F: channels x positions) says which channels "
        "fire together, wherever in the picture: texture and colour, not layout. Style "
        "transfer makes the result's Gram matrices match the style picture's."
    )
    g1, g2 = st.columns([1, 3], gap="large")
    x = images.floats(slice(0, 1))
    cls = images.classes[int(images.labels[0])]
    with g1:
        layer = st.selectbox(
            "Layer",
            encoder.layers,
            index=encoder.layers.index("relu1"),
            key="style_gram_layer",
            persist_state="session",
        )
        models = [m for m in selected_models() if m.fits(data)][:3] or [choice]
        shown = {f"original ({cls})": x}
        for m in models:
            shown[f"{m.name} output"] = caches.reconstruction(m.digest, m.model, x).images
        draw.pictures(
            [draw.row("", torch.cat(list(shown.values())), list(shown), list(shown))],
            columns=len(shown),
        )
    grams = {name: layer_grams(encoder, img, [layer])[layer] for name, img in shown.items()}
    with g2:
        draw.chart(
            gram_figure(grams, layer),
            key="style_gram",
            summary=f"All measured with {choice.name}'s encoder. A blurry reconstruction "
            "keeps the diagonal (how strongly each channel fires) but loses "
            "off-diagonal detail in edge-sensitive layers.",
        )


draw.details("Gram matrices: what 'style' means here", _grams)
