"""Compare: the same pictures through two decoders, measured and drawn side by side.

Tabs run lazily (``on_change="rerun"``): only the open tab's work is done. Everything a
tab computes is cached per (weights digest of A and B, pictures), so a class of students
looking at the shipped pair shares one computation.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from convae.checkpoints import Checkpoint, CheckpointError, snapshot_models
from convae.compare import compare_models, overlap_map, per_class_table, scores_over_training
from convae.figures import to_uint8
from convae.figures.compare import (
    CLASS_METRICS,
    MEASURES,
    error_images,
    error_maps_figure,
    error_scale_bar,
    finding_sentence,
    overlap_figure,
    per_class_bars,
    per_class_rows,
    per_image_table,
    snapshot_curves,
    spectrum_figure,
    swipe_image,
)
from convae.metrics import GREY_LEVELS, radial_power_spectrum
from convae.models import DECODERS
from convae.train import TrainConfig, fit
from pages import ui
from pages.common import (
    add_trained_model,
    baselines,
    device_name,
    require_data,
    selected_classes,
    selected_models,
    source_label,
    training_settings_error,
    training_slot,
)

TABS = ["Side by side", "Per class", "Over training", "Tiles and checkerboards"]
TAB_PARAMS = {"side": TABS[0], "class": TABS[1], "training": TABS[2], "tiles": TABS[3]}
MAX_IMAGES = 12
CURVE_IMAGES = 200  # pictures scored at every snapshot: enough for a smooth curve, ~0.5 s
# The quick snapshot pair: both decoders, same seed and data order, a few thousand pictures.
PAIR = dict(epochs=3, limit=4000, batch_size=64, seed=0, snapshots=8)
PAIR_TEST_IMAGES = 1000  # fit() scores this many test pictures per epoch (not 10,000)

st.title("Compare decoders")
data = require_data()
models = [m for m in selected_models() if m.fits(data)]
if len(models) < 2:
    st.info(
        f"Pick two models for {source_label(data.source)} in the sidebar (for example the "
        "shipped transpose and upsample checkpoints), or train a pair with 'both' on the "
        "Train page. The first two picked are compared.",
        icon=":material/compare:",
    )
    st.stop()
a, b = models[:2]
names = (a.name, b.name) if a.name != b.name else (f"{a.name} (A)", f"{b.name} (B)")
na, nb = names
summary_box = st.container()  # the one-sentence finding, filled once it is computed

classes = selected_classes()
c1, c2, c3, c4 = st.columns([1, 2, 1, 1])
split = c1.radio(
    "Split", ["test", "train"], key="compare_split", horizontal=True, persist_state="session"
)
images = (data.test if split == "test" else data.train).filter(classes)
if len(images) == 0:
    st.warning(f"The {split} split has no pictures of {', '.join(classes)}.")
    st.stop()
n = c2.slider(
    "Pictures",
    1,
    MAX_IMAGES,
    8,
    key="compare_n",
    persist_state="session",
    help="How many pictures to compare; 1 to look at a single picture.",
)
start = c3.number_input(
    f"First picture (of {len(images):,})",
    0,
    max(len(images) - 1, 0),
    0,
    key="compare_start",
    persist_state="session",
    help="Index among the chosen classes' pictures of this split.",
)
start = min(int(start), len(images) - 1)
x = images.floats(slice(start, start + n))
labels = [images.classes[i] for i in images.labels[start : start + n].tolist()]
if st.session_state.get("compare_focus") not in range(len(x)):
    st.session_state["compare_focus"] = 0
focus = c4.selectbox(
    "Close-up picture",
    list(range(len(x))),
    key="compare_focus",
    format_func=lambda i: f"{start + i}: {labels[i]}",
    help="The picture shown large (swipe view, error maps) and over training.",
)


@st.cache_resource(show_spinner=False, max_entries=64)
def _comparison(da: str, db: str, names: tuple, pictures: tuple, _a, _b, _x):
    """Both models on the shown pictures (shared per model pair and pictures)."""
    return compare_models(_a, _b, _x, names=names)


comp = _comparison(
    a.digest,
    b.digest,
    names,
    (data.fingerprint, split, tuple(classes), start, n),
    a.model,
    b.model,
    x,
)
ra, rb = comp.summary()
with summary_box:
    ui.takeaway(finding_sentence([ra, rb], f"these {len(x)} pictures"))

pick = st.session_state.pop("compare_tab_pick", None)  # a link or lesson asks for a tab
if pick in TAB_PARAMS:
    st.session_state["compare_tab"] = TAB_PARAMS[pick]
tab_ids = st.tabs(TABS, key="compare_tab", on_change="rerun")
tabs = dict(zip(TABS, tab_ids, strict=True))


@st.fragment
def _close_up(comp, x, focus: int, start: int, labels: list[str]) -> None:
    """One picture large: A, B, or a swipe between them. A fragment: switching A / B or
    moving the divider reruns only this (a few kB of HTML), not the comparison."""
    view = st.segmented_control(
        "Show",
        ["A", "B", "swipe"],
        key="compare_ab",
        default="swipe",
        required=True,
        persist_state="session",
        format_func={"A": f"A: {na}", "B": f"B: {nb}", "swipe": "swipe A | B"}.get,
        help="Switch between the two reconstructions of the same picture, or see A "
        "left and B right of a divider you move.",
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
    what = {"A": f"A: {na}", "B": f"B: {nb}", "swipe": f"A | B: {na} | {nb}"}[view]
    ui.pictures(
        [
            ui.PictureRow(
                "",
                [
                    swipe_image(comp.recon[na][focus], comp.recon[nb][focus], cut, 1),
                    to_uint8(x[focus]),
                ],
                [what, f"input {start + focus} ({labels[focus]})"],
                [
                    f"{what}, picture {start + focus}",
                    f"input picture {start + focus}, {labels[focus]}",
                ],
            )
        ],
        columns=2,
        max_px=320,
    )


# ---------------------------------------------------------------- side by side
if tabs["Side by side"].open:
    with tabs["Side by side"]:
        e_a, e_b = comp.abs_error[na], comp.abs_error[nb]
        sa, sb = comp.scores[na], comp.scores[nb]
        per_row = max(len(x), 6)
        err = f"0 to {GREY_LEVELS * comp.error_max:.0f} grey levels"
        which = [f"picture {start + i} ({c})" for i, c in enumerate(labels)]
        rows = [
            ui.row("input", x, labels, [f"input: {w}" for w in which], marked=[focus]),
            ui.row(
                f"A: {na}",
                comp.recon[na],
                [f"{v:.1f} dB" for v in sa.psnr.tolist()],
                [
                    f"{w} rebuilt by A, {na}: {v:.1f} dB"
                    for w, v in zip(which, sa.psnr.tolist(), strict=True)
                ],
            ),
            ui.row(
                f"B: {nb}",
                comp.recon[nb],
                [f"{v:.1f} dB" for v in sb.psnr.tolist()],
                [
                    f"{w} rebuilt by B, {nb}: {v:.1f} dB"
                    for w, v in zip(which, sb.psnr.tolist(), strict=True)
                ],
            ),
            ui.PictureRow(
                "error of A",
                error_images(e_a, comp.error_max, 1),
                [f"tiles {v:.1f}" for v in sa.blockiness4.tolist()],
                alts=[
                    f"error map of A for {w}, bright = large error ({err}); tile edges "
                    f"{v:.1f} grey levels"
                    for w, v in zip(which, sa.blockiness4.tolist(), strict=True)
                ],
            ),
            ui.PictureRow(
                "error of B",
                error_images(e_b, comp.error_max, 1),
                [f"tiles {v:.1f}" for v in sb.blockiness4.tolist()],
                alts=[
                    f"error map of B for {w}, bright = large error ({err}); tile edges "
                    f"{v:.1f} grey levels"
                    for w, v in zip(which, sb.blockiness4.tolist(), strict=True)
                ],
            ),
        ]
        ui.pictures(rows, columns=per_row, title="Inputs, both reconstructions and their errors")
        s1, s2 = st.columns([2, 1], vertical_alignment="center")
        s1.caption(
            f"Error maps share one colour scale: black is no error, bright yellow is "
            f"{GREY_LEVELS * comp.error_max:.0f} grey levels (of 255), the largest error of either "
            "model (worst colour channel per pixel). Under the pictures: PSNR, and under the "
            "errors 'tiles': how many grey levels more the picture steps across the edges "
            "of the decoder's 4x4 tiles than inside them (about 0, or a little below: no tiles; "
            "what error of the same size with no tiles scores, for these pictures: "
            f"{ra['blockiness4_floor']:.1f} for A, {rb['blockiness4_floor']:.1f} for B)."
        )
        s2.image(
            error_scale_bar(comp.error_max, width=256),
            width="stretch",
            alt=f"error colour scale from black (0) to yellow ({err})",
            caption=f"0 … {GREY_LEVELS * comp.error_max:.0f} grey levels",
        )
        ui.download_png(rows, f"compare-{split}-{start}.png", "compare_download")

        st.subheader("One picture up close")
        f1, f2 = st.columns([1, 1.2], gap="large")
        with f1:
            _close_up(comp, x, focus, start, labels)
        with f2:
            ui.chart(
                error_maps_figure({"A": e_a[focus], "B": e_b[focus]}, comp.error_max),
                key="compare_error_maps",
                summary=f"Picture {start + focus}: A {sa.psnr[focus]:.1f} dB, B "
                f"{sb.psnr[focus]:.1f} dB. Hover the maps for the error at each pixel.",
            )

        def _numbers() -> None:
            summary = [
                {
                    "model": f"{tag}: {r['model']}",
                    "pictures": r["n"],
                    "PSNR (dB)": r["psnr"],
                    "SSIM": r["ssim"],
                    **{MEASURES[k][0]: r[k] for k in MEASURES},
                    **{f"{MEASURES[k][0]}, floor": r[f"{k}_floor"] for k in MEASURES},
                    "MSE": r["mse"],
                }
                for tag, r in zip("AB", (ra, rb), strict=True)
            ]
            fmt = {
                k: st.column_config.NumberColumn(format=f)
                for k, f in (
                    ("PSNR (dB)", "%.2f"),
                    ("SSIM", "%.3f"),
                    ("MSE", "%.4f"),
                )
            } | {
                c: st.column_config.NumberColumn(format="%.2f")
                for k in MEASURES
                for c in (MEASURES[k][0], f"{MEASURES[k][0]}, floor")
            }
            st.dataframe(summary, hide_index=True, column_config=fmt)
            table = per_image_table(names, comp.scores, labels, start)
            st.dataframe(
                table,
                hide_index=True,
                column_config={
                    **{
                        k: st.column_config.NumberColumn(format="%.2f")
                        for k in table[0]
                        if k.startswith(("PSNR", "checker", "tiles"))
                    },
                    **{
                        k: st.column_config.NumberColumn(format="%.3f")
                        for k in table[0]
                        if k.startswith("SSIM")
                    },
                    **{
                        k: st.column_config.NumberColumn(format="%.4f")
                        for k in table[0]
                        if k.startswith("MSE")
                    },
                },
            )
            st.caption(
                f"A = {na}, B = {nb}. SSIM (structural similarity, 1 = identical) compares "
                "local patterns rather than single pixels. Click a header to sort."
            )
            curves = {
                "input": radial_power_spectrum(x),
                f"A: {na}": radial_power_spectrum(comp.recon[na]),
                f"B: {nb}": radial_power_spectrum(comp.recon[nb]),
            }
            ui.chart(
                spectrum_figure(curves),
                key="compare_spectrum",
                summary=f"Power spectrum of these {len(x)} pictures and their "
                "reconstructions: both decoders lose fine detail (lower on the right); "
                "a stride-2 artifact shows as extra power near 0.5 or 0.71 cycles/px.",
            )

        ui.details("Numbers: per picture, SSIM and spectrum", _numbers)


# -------------------------------------------------------------------- per class
@st.cache_data(show_spinner=False, max_entries=16)
def _per_class(
    da: str, db: str, names: tuple, fingerprint: str, _models: dict, _split
) -> list[dict]:
    """The per-class table for one model pair on the test split (shared per pair)."""
    return per_class_table(_models, _split)


if tabs["Per class"].open:
    with tabs["Per class"]:
        test = data.test
        scored = {na: a.model, nb: b.model}
        if st.toggle(
            "Add the baselines",
            key="compare_baselines",
            persist_state="session",
            help="PCA and a downsampled copy, each keeping as many numbers as the code: does "
            "the learned code beat them, and in which classes?",
        ):
            scored |= baselines(data)
        with st.spinner(
            f"Scoring all {len(test):,} test pictures with {len(scored)} models (once per "
            "model pair)..."
        ):
            rows = _per_class(a.digest, b.digest, tuple(scored), data.fingerprint, scored, test)
        metric = st.segmented_control(
            "Chart",
            list(CLASS_METRICS),
            key="compare_metric",
            default="psnr",
            required=True,
            persist_state="session",
            format_func=CLASS_METRICS.get,
        )
        worst = min(
            (r for r in rows if r["class"] != "all" and r["model"] == na), key=lambda r: r["psnr"]
        )
        ui.chart(
            per_class_bars(rows, metric),
            key="compare_class_bars",
            summary=f"All {len(test):,} test pictures of {len(test.classes)} classes. "
            f"Hardest class for A: {worst['class']} ({worst['psnr']:.1f} dB). PSNR per "
            "class is the PSNR of the class's mean MSE.",
        )
        st.dataframe(
            per_class_rows(rows),
            hide_index=True,
            column_config={
                "PSNR (dB)": st.column_config.NumberColumn(format="%.2f"),
                "SSIM": st.column_config.NumberColumn(format="%.3f"),
                "MSE": st.column_config.NumberColumn(format="%.4f"),
            }
            | {
                c: st.column_config.NumberColumn(format="%.2f")
                for c in per_class_rows(rows)[0]
                if c.startswith(("tiles", "checker", "4x4", "2x2"))
            },
        )


# ---------------------------------------------------------------- over training
def _train_pair() -> None:
    """Train both decoders with the same seed and data, keeping snapshots, and pick them."""
    if problem := training_settings_error():
        st.error(problem)
        return
    with training_slot("compare: pair", st.empty()):
        _train_pair_now()


def _train_pair_now() -> None:
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
        ck = Checkpoint.from_training(result, data.source)
        # Asked for here to be compared: the pair becomes A and B (the button says so).
        add_trained_model(ck, f"{cfg.decoder}-snap{PAIR['snapshots']}-seed{cfg.seed}", first=True)
    bar.empty()


@st.cache_data(show_spinner=False, max_entries=16)
def _snapshot_scores(
    da: str, db: str, names: tuple, pictures: tuple, _snaps: dict, _x
) -> dict[str, list[dict]]:
    """PSNR and grid-artifact measures of every snapshot of each model on the same
    pictures (shared per model pair)."""
    return {name: scores_over_training(snaps, _x) for name, snaps in _snaps.items()}


if tabs["Over training"].open:
    with tabs["Over training"]:
        missing = [m.name for m in (a, b) if not m.checkpoint.snapshots]
        if missing:
            st.info(
                f"{' and '.join(missing)} carr{'ies' if len(missing) == 1 else 'y'} no "
                "training snapshots. Models trained on the Train page keep them, and so do "
                "checkpoints saved with `python -m convae train --snapshots K`. Or train a "
                f"small pair here: both decoders, same seed, {PAIR['epochs']} epochs on up to "
                f"{PAIR['limit']:,} pictures (about a minute on a 2-core CPU); they become "
                "A and B."
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
                a.digest,
                b.digest,
                names,
                (data.fingerprint, split, tuple(classes), count),
                snaps,
                pool,
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
                        + (" (start)" if snaps[na][i].step == 0 else "")
                    ),
                    help="Step 0 is the random start; the last is the final model.",
                )
                xi = x[focus : focus + 1]
                r = compare_models(snaps[na][idx].model, snaps[nb][idx].model, xi, names=names)
                pics = [
                    ui.row(
                        "", xi, [f"input ({labels[focus]})"], [f"input picture {start + focus}"]
                    ).pictures[0]
                ]
                caps, alts = [f"input ({labels[focus]})"], [f"input picture {start + focus}"]
                for tag, name in zip("AB", names, strict=True):
                    psnr = float(r.scores[name].psnr[0])
                    pics.append(ui.row("", r.recon[name]).pictures[0])
                    caps.append(f"{tag}, step {snaps[name][idx].step}: {psnr:.1f} dB")
                    alts.append(
                        f"{tag} ({name}) after {snaps[name][idx].step} steps, {psnr:.1f} dB"
                    )
                ui.pictures([ui.PictureRow("", pics, caps, alts)], columns=3, max_px=200)
            with g2:
                ui.chart(
                    snapshot_curves(curves, [snaps[na][idx].step, snaps[nb][idx].step]),
                    key="compare_snapshot_curves",
                    summary=f"Mean over the first {len(pool)} {split} pictures of the "
                    "chosen classes, at every snapshot.",
                )

# ---------------------------------------------------------- tiles and checkerboards
if tabs["Tiles and checkerboards"].open:
    with tabs["Tiles and checkerboards"]:
        o1, o2 = st.columns([2, 3], gap="large")
        with o1:
            k = st.segmented_control(
                "Kernel size (stride 2)",
                [2, 3, 4],
                key="compare_kernel",
                default=2,
                required=True,
                persist_state="session",
            )
            counts = overlap_map(int(k), 2, in_size=4)
            inside = sorted({int(v) for v in counts[2:-2, 2:-2].flatten().tolist()})
            st.markdown(
                "A transpose convolution with stride 2 paints a copy of its kernel, scaled "
                "by each input value, every 2 output pixels. The map counts how many kernel "
                "copies land on each output pixel (a real `ConvTranspose2d` with all weights "
                "1 on an all-ones 4x4 input).\n\n"
                "- **k = s (2 here): tiles.** The copies never overlap: each code cell paints "
                "its own block on its own (one code cell per 4x4 block of the picture after "
                "both layers), so the block edges can show: a tiled look.\n"
                "- **k not a multiple of s (3): checkerboards.** The copies overlap "
                "unevenly, 1, 2 or 4 taps from pixel to pixel, so even a flat input comes "
                "out as a checkerboard unless training balances the weights exactly.\n"
                "- **Nearest upsampling, then a convolution** treats every position alike, "
                "which is why the upsample decoder shows neither.\n\n"
                "(Odena, Dumoulin and Olah 2016, [Deconvolution and Checkerboard Artifacts]"
                "(https://distill.pub/2016/deconv-checkerboard/), Distill.)"
            )
            even = len(inside) == 1
            st.info(
                f"Kernel {k}, stride 2: away from the border every output pixel gets "
                f"{' or '.join(map(str, inside))} taps: "
                + (
                    "even coverage, no built-in checkerboard (but no overlap at k = 2: tiles)."
                    if even
                    else "uneven coverage, a checkerboard is built in."
                )
            )
        with o2:
            ui.chart(
                overlap_figure(counts, int(k)),
                key="compare_overlap",
                summary=f"Kernel {k}, stride 2: taps per output pixel range from "
                f"{int(counts.min())} to {int(counts.max())}.",
            )
