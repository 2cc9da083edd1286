"""Compare: the same images through two decoders, measured and drawn side by side.

Tabs run lazily (``on_change="rerun"``): only the open tab's work is done, so the
per-class table (the whole test split through both models) costs nothing until asked
for, and is then cached per model pair.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from datetime import UTC, datetime

import streamlit as st

from convae.checkpoints import Checkpoint, CheckpointError, snapshot_models
from convae.compare import compare_models, overlap_map, per_class_table, score_images
from convae.figures import image_list
from convae.figures.compare import (
    CLASS_METRICS,
    LEVELS,
    error_images,
    error_maps_figure,
    error_scale_bar,
    overlap_figure,
    per_class_bars,
    per_class_rows,
    per_image_table,
    snapshot_curves,
    spectrum_figure,
    swipe_image,
)
from convae.metrics import radial_power_spectrum
from convae.models import DECODERS
from convae.train import TrainConfig, fit
from pages.common import (
    PNG_EXPORT,
    ModelChoice,
    add_trained_model,
    current_data,
    device_name,
    download_png,
    selected_classes,
    selected_models,
    source_label,
)

TABS = ["Side by side", "Per class", "Over training", "Why checkerboards?"]
MAX_IMAGES = 12
CURVE_IMAGES = 200  # images scored at every snapshot: enough for a smooth curve, ~0.5 s
# The quick snapshot pair: both decoders, same seed and data order, a few thousand images.
PAIR = dict(epochs=3, limit=4000, batch_size=64, seed=0, snapshots=8)
# fit() scores the test split after every epoch; on 1,000 test images instead of 10,000
# the pair trains in ~45 s instead of ~3 minutes on a busy 2-core CPU.
PAIR_TEST_IMAGES = 1000

st.title("Compare decoders")
data = current_data()
if data is None:
    st.info("No data set is loaded (the sidebar says why and how to get it).")
    st.stop()
picked = selected_models()
models = [m for m in picked if m.fits(data)]
if len(models) < 2:
    st.info(
        f"Pick two models for {source_label(data.source)} in the sidebar (for example "
        "the shipped transpose and upsample checkpoints), or train a pair with 'both' "
        "on the Train page. The first two picked are compared."
    )
    st.stop()
a, b = models[:2]
names = (a.short, b.short) if a.short != b.short else (f"{a.short} (A)", f"{b.short} (B)")
st.caption(
    f"**A** = {a.label} · **B** = {b.label}. The first two models picked in the "
    "sidebar; reorder them there."
)


def _identity(choice: ModelChoice) -> str:
    """A digest of the weights: the same for the same checkpoint in any session, unlike
    the picker key ("trained:1" is another model in every session)."""
    h = hashlib.sha1(choice.config.decoder.encode())
    for k, v in choice.model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@st.cache_data(show_spinner=False, max_entries=16)
def _per_class(_models: dict, _split, key: tuple) -> tuple[list[dict], float]:
    """The per-class table for one model pair and split, and the seconds it took."""
    t0 = time.perf_counter()
    rows = per_class_table(_models, _split)
    return rows, time.perf_counter() - t0


@st.cache_data(show_spinner=False, max_entries=16)
def _snapshot_scores(_snaps: dict, _x, key: tuple) -> dict[str, list[dict]]:
    """Mean PSNR and checkerboard of every snapshot of each model on the same images."""
    return {
        name: [{"step": s.step, **score_images(s.model, _x).mean()} for s in snaps]
        for name, snaps in _snaps.items()
    }


# ----------------------------------------------------------------- image choice
classes = selected_classes()
c1, c2, c3, c4 = st.columns([1, 2, 1, 1])
split = c1.radio(
    "Split", ["test", "train"], key="compare_split", horizontal=True, persist_state="session"
)
images = (data.test if split == "test" else data.train).filter(classes)
if len(images) == 0:
    st.warning(f"The {split} split has no images of {', '.join(classes)}.")
    st.stop()
n = c2.slider(
    "Images",
    1,
    MAX_IMAGES,
    8,
    key="compare_n",
    persist_state="session",
    help="How many images to compare; 1 to look at a single image.",
)
start = c3.number_input(
    f"First image (of {len(images):,})",
    0,
    max(len(images) - 1, 0),
    0,
    key="compare_start",
    persist_state="session",
    help="Index among the chosen classes' images of this split.",
)
start = min(int(start), len(images) - 1)
x = images.floats(slice(start, start + n))
labels = [images.classes[i] for i in images.labels[start : start + n].tolist()]
if st.session_state.get("compare_focus") not in range(len(x)):
    st.session_state["compare_focus"] = 0
focus = c4.selectbox(
    "Close-up image",
    list(range(len(x))),
    key="compare_focus",
    format_func=lambda i: f"{start + i}: {labels[i]}",
    help="The image shown large (swipe view, error maps) and over training.",
)
comp = compare_models(a.model, b.model, x, names=names)
na, nb = names

tab_ids = st.tabs(TABS, key="compare_tab", on_change="rerun")
tabs = dict(zip(TABS, tab_ids, strict=True))

# ---------------------------------------------------------------- side by side
if tabs["Side by side"].open:
    with tabs["Side by side"]:
        per_row = max(len(x), 8)  # at least 8 columns, so a few images stay small
        e_a, e_b = comp.abs_error[na], comp.abs_error[nb]
        sa, sb = comp.scores[na], comp.scores[nb]
        rows = [
            ("input", image_list(x), labels),
            (f"A: {na}", image_list(comp.recon[na]), [f"{v:.1f} dB" for v in sa.psnr.tolist()]),
            (f"B: {nb}", image_list(comp.recon[nb]), [f"{v:.1f} dB" for v in sb.psnr.tolist()]),
            (
                "|A - input|",
                error_images(e_a, comp.error_max),
                [f"cb {LEVELS * v:.2f}" for v in sa.checkerboard.tolist()],
            ),
            (
                "|B - input|",
                error_images(e_b, comp.error_max),
                [f"cb {LEVELS * v:.2f}" for v in sb.checkerboard.tolist()],
            ),
        ]
        for title, imgs, caps in rows:
            cols = st.columns([1.3] + [1] * per_row, gap="small", vertical_alignment="center")
            cols[0].markdown(f"**{title}**")
            for i, (img, cap) in enumerate(zip(imgs, caps, strict=True)):
                cols[i + 1].image(img, caption=cap, width="stretch")
        download_png(
            [
                *rows,
                (
                    "error scale",
                    [error_scale_bar(comp.error_max, width=256)],
                    [f"0 ... {LEVELS * comp.error_max:.0f} grey levels"],
                ),
            ],
            f"compare-{split}-{start}.png",
            "compare_download",
        )
        s1, s2 = st.columns([1.3, 3], vertical_alignment="center")
        s1.caption(
            f"Error maps share one colour scale: 0 to {LEVELS * comp.error_max:.0f} "
            "grey levels, the largest error of either model (worst colour channel "
            "per pixel). Under the images: PSNR, and cb = checkerboard score."
        )
        s2.image(
            error_scale_bar(comp.error_max, width=512),
            caption=f"0 … {LEVELS * comp.error_max:.0f} grey levels",
            width="stretch",
        )

        st.subheader("Averages over these images")
        summary = [
            {
                "model": f"{tag}: {r['model']}",
                "images": r["n"],
                "PSNR (dB)": r["psnr"],
                "SSIM": r["ssim"],
                "checkerboard (grey levels)": LEVELS * r["checkerboard"],
                "MSE": r["mse"],
            }
            for tag, r in zip("AB", comp.summary(), strict=True)
        ]
        m1, m2, m3 = st.columns(3)
        ra, rb = summary
        m1.metric(
            f"PSNR of B ({nb})",
            f"{rb['PSNR (dB)']:.2f} dB",
            f"{rb['PSNR (dB)'] - ra['PSNR (dB)']:+.2f} dB vs A",
        )
        m2.metric(f"SSIM of B ({nb})", f"{rb['SSIM']:.3f}", f"{rb['SSIM'] - ra['SSIM']:+.3f} vs A")
        cb_a, cb_b = ra["checkerboard (grey levels)"], rb["checkerboard (grey levels)"]
        m3.metric(
            f"Checkerboard of B ({nb})",
            f"{cb_b:.2f} levels",
            f"{cb_b - cb_a:+.2f} vs A",
            delta_color="inverse",
            help="Amplitude of the period-2 pattern the decoder adds to the image, in "
            "8-bit grey levels (Odena et al. 2016). Lower is better.",
        )
        fmt = {
            k: st.column_config.NumberColumn(format=f)
            for k, f in (
                ("PSNR (dB)", "%.2f"),
                ("SSIM", "%.4f"),
                ("checkerboard (grey levels)", "%.3f"),
                ("MSE", "%.5f"),
            )
        }
        st.dataframe(summary, hide_index=True, column_config=fmt)

        st.subheader("One image up close")
        f1, f2 = st.columns([1, 1.2], gap="large")
        with f1:
            view = st.segmented_control(
                "Reconstruction",
                ["A", "B", "swipe"],
                key="compare_ab",
                default="swipe",
                required=True,
                persist_state="session",
                format_func={"A": "A", "B": "B", "swipe": "swipe A | B"}.get,
                help=f"Toggle between the two reconstructions of the same image (A = {na}, "
                f"B = {nb}), or see A left and B right of a divider you move.",
            )
            w = x.shape[-1]
            if view == "swipe":
                cut = st.slider(
                    "Divider (column)",
                    0,
                    w,
                    w // 2,
                    key="compare_swipe",
                    help="Columns left of the divider come from A, the rest from B.",
                )
            else:
                cut = w if view == "A" else 0
            ra_i, rb_i = comp.recon[na][focus], comp.recon[nb][focus]
            what = {"A": na, "B": nb, "swipe": f"{na} | {nb}"}[view]
            p1, p2 = st.columns(2, gap="small")
            p1.image(swipe_image(ra_i, rb_i, cut), caption=what, width="stretch")
            p2.image(
                image_list(x[focus : focus + 1], 320)[0],
                caption=f"input: image {start + focus}, {labels[focus]}",
                width="stretch",
            )
        with f2:
            st.plotly_chart(
                error_maps_figure({"A": e_a[focus], "B": e_b[focus]}, comp.error_max),
                key="compare_error_maps",
                config=PNG_EXPORT,
            )
            st.caption(
                f"Image {start + focus}: A {sa.psnr[focus]:.2f} dB, checkerboard "
                f"{LEVELS * sa.checkerboard[focus]:.2f}; B {sb.psnr[focus]:.2f} dB, "
                f"checkerboard {LEVELS * sb.checkerboard[focus]:.2f} grey levels. A "
                "transpose decoder's errors often sit on a regular 2-pixel grid; an "
                "upsample decoder's follow the edges."
            )

        st.subheader("Per image")
        table = per_image_table(names, comp.scores, labels, start)
        st.dataframe(
            table,
            hide_index=True,
            column_config={
                **{
                    k: st.column_config.NumberColumn(format="%.2f")
                    for k in table[0]
                    if k.startswith(("PSNR", "checker"))
                },
                **{
                    k: st.column_config.NumberColumn(format="%.4f")
                    for k in table[0]
                    if k.startswith("SSIM")
                },
                **{
                    k: st.column_config.NumberColumn(format="%.5f")
                    for k in table[0]
                    if k.startswith("MSE")
                },
            },
        )
        st.caption(
            f"A = {na}, B = {nb}. Click a column header to sort. Checkerboard in "
            "grey levels (x255)."
        )

        st.subheader("Spectrum")
        curves = {
            "input": radial_power_spectrum(x),
            f"A: {na}": radial_power_spectrum(comp.recon[na]),
            f"B: {nb}": radial_power_spectrum(comp.recon[nb]),
        }
        st.plotly_chart(spectrum_figure(curves), key="compare_spectrum", config=PNG_EXPORT)
        st.caption(
            f"Radially averaged power spectrum of these {len(x)} images and their "
            "reconstructions (mean brightness left out). Both decoders lose fine "
            "detail (ratio below 1 on the right); a stride-2 artifact shows as power "
            "above the input's near 0.5 (stripes) or 0.71 (checkerboard) cycles/px."
        )

# -------------------------------------------------------------------- per class
if tabs["Per class"].open:
    with tabs["Per class"]:
        test = data.test
        key = (_identity(a), _identity(b), names, data.fingerprint, "test")
        with st.spinner(
            f"Scoring all {len(test):,} test images with both models (once per model pair)..."
        ):
            rows, seconds = _per_class({na: a.model, nb: b.model}, test, key)
        st.caption(
            f"All {len(test):,} test images of {len(test.classes)} classes, both "
            f"models: computed in {seconds:.1f} s, then cached for this model pair. "
            "PSNR per class is the PSNR of the class's mean MSE."
        )
        metric = st.segmented_control(
            "Chart",
            list(CLASS_METRICS),
            key="compare_metric",
            default="psnr",
            required=True,
            persist_state="session",
            format_func=CLASS_METRICS.get,
        )
        st.plotly_chart(per_class_bars(rows, metric), key="compare_class_bars", config=PNG_EXPORT)
        st.dataframe(
            per_class_rows(rows),
            hide_index=True,
            height=35 * (len(rows) + 1) + 3,
            column_config={
                "PSNR (dB)": st.column_config.NumberColumn(format="%.2f"),
                "SSIM": st.column_config.NumberColumn(format="%.4f"),
                "checkerboard (grey levels)": st.column_config.NumberColumn(format="%.3f"),
                "MSE": st.column_config.NumberColumn(format="%.5f"),
            },
        )


# ---------------------------------------------------------------- over training
def _train_pair() -> None:
    """Train both decoders with the same seed and data, keeping snapshots, and pick them."""
    bar = st.progress(0.0, text="starting")
    cfgs = [
        TrainConfig(
            decoder=d,
            epochs=PAIR["epochs"],
            batch_size=PAIR["batch_size"],
            limit=PAIR["limit"],
            seed=PAIR["seed"],
            classes=() if len(classes) == len(data.classes) else tuple(classes),
            warmup_steps=20,
            device=device_name(),
        )
        for d in DECODERS
    ]
    quick = dataclasses.replace(data, test=data.test.head(PAIR_TEST_IMAGES))
    for i, cfg in enumerate(cfgs):

        def report(ev, i=i, cfg=cfg):
            if ev.kind == "epoch" or ev.step % 10 == 0:
                total = ev.epochs * ev.steps_per_epoch
                bar.progress(
                    min((i + ev.step / total) / len(cfgs), 1.0),
                    text=f"{cfg.decoder}: step {ev.step}/{total}",
                )

        result = fit(cfg, quick, report, snapshots=PAIR["snapshots"])
        ck = Checkpoint(
            result.model,
            result.model.config,
            cfg.to_dict(),
            result.history,
            result.test_metrics,
            result.data_fingerprint,
            data.source,
            datetime.now(UTC).isoformat(timespec="seconds"),
            snapshots=result.snapshots,
        )
        add_trained_model(ck, f"{cfg.decoder}-snap{PAIR['snapshots']}-seed{cfg.seed}")
    bar.empty()


if tabs["Over training"].open:
    with tabs["Over training"]:
        missing = [m.short for m in (a, b) if not m.checkpoint.snapshots]
        if missing:
            st.info(
                f"{' and '.join(missing)} carr{'ies' if len(missing) == 1 else 'y'} no "
                "training snapshots. Models trained on the Train page keep them, and so "
                "do checkpoints saved with `python -m convae train --snapshots K`. Or "
                f"train a small pair here: both decoders, same seed, {PAIR['epochs']} "
                f"epochs on up to {PAIR['limit']:,} images, {PAIR['snapshots']} "
                "snapshots (about a minute on a 2-core CPU; test figures on the first "
                f"{PAIR_TEST_IMAGES:,} test images)."
            )
            if st.button(
                "Train a small pair with snapshots", key="compare_train_pair", type="primary"
            ):
                _train_pair()
                st.rerun()
        else:
            try:
                snaps = {
                    na: snapshot_models(a.checkpoint.snapshots, a.config, na),
                    nb: snapshot_models(b.checkpoint.snapshots, b.config, nb),
                }
            except CheckpointError as exc:
                st.error(str(exc))
                st.stop()
            count = min(len(s) for s in snaps.values())
            pool = images.head(CURVE_IMAGES).floats()
            curves = _snapshot_scores(
                snaps,
                pool,
                (_identity(a), _identity(b), names, count, data.fingerprint, split, tuple(classes)),
            )
            if st.session_state.get("compare_snapshot") not in range(count):
                st.session_state["compare_snapshot"] = count - 1
            g1, g2 = st.columns([2, 3], gap="large")
            with g1:
                idx = st.select_slider(
                    "Snapshot",
                    list(range(count)),
                    key="compare_snapshot",
                    format_func=lambda i: (
                        f"{i}: step {snaps[na][i].step}"
                        + (" (init)" if snaps[na][i].step == 0 else "")
                    ),
                    help="Step 0 is the random initialisation; the last is the final model.",
                )
                xi = x[focus : focus + 1]
                r = compare_models(snaps[na][idx].model, snaps[nb][idx].model, xi, names=names)
                pics, caps = [image_list(xi, 160)[0]], [f"input ({labels[focus]})"]
                for tag, name in zip("AB", names, strict=True):
                    s = r.scores[name]
                    pics.append(image_list(r.recon[name], 160)[0])
                    caps.append(
                        f"{tag}, step {snaps[name][idx].step}: "
                        f"{float(s.psnr[0]):.1f} dB, cb "
                        f"{LEVELS * float(s.checkerboard[0]):.2f}"
                    )
                cols = st.columns(3, gap="small")
                for col, pic, cap in zip(cols, pics, caps, strict=True):
                    col.image(pic, caption=cap, width="stretch")
                st.caption(
                    f"Image {start + focus} (the close-up image chosen above). "
                    "cb = checkerboard score in grey levels."
                )
            with g2:
                st.plotly_chart(
                    snapshot_curves(curves, [snaps[na][idx].step, snaps[nb][idx].step]),
                    key="compare_snapshot_curves",
                    config=PNG_EXPORT,
                )
                st.caption(
                    f"Mean over the first {len(pool)} {split} images of the chosen "
                    "classes, at every snapshot."
                )

# ---------------------------------------------------------------- overlap explainer
if tabs["Why checkerboards?"].open:
    with tabs["Why checkerboards?"]:
        o1, o2 = st.columns([2, 3], gap="large")
        with o1:
            k = st.segmented_control(
                "Kernel size (stride 2)",
                [2, 3, 4],
                key="compare_kernel",
                default=3,
                required=True,
                persist_state="session",
            )
            counts = overlap_map(int(k), 2, in_size=4)
            inside = sorted({int(v) for v in counts[2:-2, 2:-2].flatten().tolist()})
            st.markdown(
                "A transpose convolution with stride 2 paints a copy of its kernel, scaled "
                "by each input value, every 2 output pixels. The map counts how many kernel "
                "taps land on each output pixel, from a real `ConvTranspose2d` with all "
                "weights 1 run on an all-ones 4x4 input. When the kernel size is not a "
                "multiple of the stride (k = 3) the counts alternate from pixel to pixel, "
                "so even a flat input comes out as a "
                "checkerboard unless training balances the weights exactly; it rarely does. "
                "k = 2 (this app's transpose decoder) has no overlap at all, but then each "
                "of the four pixel positions in a 2x2 block has its own weights, which "
                "leaves a weaker period-2 pattern of the same kind. Nearest upsampling "
                "followed by an ordinary convolution treats every position alike, which is "
                "why the upsample decoder scores lower. (Odena, Dumoulin and Olah 2016, "
                "[Deconvolution and Checkerboard Artifacts](https://distill.pub/2016/"
                "deconv-checkerboard/), Distill.)"
            )
            even = len(inside) == 1
            st.info(
                f"Kernel {k}, stride 2: away from the border every output pixel gets "
                f"{' or '.join(map(str, inside))} taps: "
                + (
                    "even coverage, no built-in checkerboard."
                    if even
                    else "uneven coverage, a checkerboard is built in."
                )
            )
        with o2:
            st.plotly_chart(
                overlap_figure(counts, int(k)), key="compare_overlap", config=PNG_EXPORT
            )
