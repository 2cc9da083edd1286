"""The Compare page's tabs (pages/compare.py draws the page and calls one of these for the
open tab). Each is widgets plus calls: the measures come from convae.compare through the
shared caches, the figures from convae.figures.compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from convae.catalog import ModelEntry, family_entries, weights_digest
from convae.checkpoints import CheckpointError, snapshot_models
from convae.compare import Comparison, overlap_map
from convae.data import DataSet, ImageSet
from convae.family import ARTIFACT_NAMES, ARTIFACTS, shows_checkerboard
from convae.figures import to_uint8
from convae.figures.compare import (
    CLASS_METRICS,
    MEASURES,
    error_images,
    error_maps_figure,
    error_scale_bar,
    overlap_explanation,
    overlap_figure,
    pattern_image,
    per_class_bars,
    per_class_rows,
    per_image_table,
    snapshot_curves,
    spectrum_figure,
    swipe_image,
)
from convae.metrics import GREY_LEVELS, checkerboard, period2_pattern, radial_power_spectrum
from convae.models import DECODER_LABELS
from convae.recipes import QUICK_PAIR
from convae.recon import Reconstruction
from pages.glue import caches, classroom, draw, training
from pages.glue.state import baselines, device_name, shipped_models
from pages.glue.widgets import segmented

CURVE_IMAGES = 200  # pictures scored at every snapshot: enough for a smooth curve, ~0.5 s
NUMBER_FORMATS = {"PSNR": "%.2f", "SSIM": "%.3f", "MSE": "%.4f", "checker": "%.2f", "tiles": "%.2f"}


@dataclass
class Pair:
    """What every tab of one Compare run looks at."""

    a: ModelEntry
    b: ModelEntry
    names: tuple[str, str]
    data: DataSet
    split: str
    classes: list[str]
    images: ImageSet  # the chosen split's pictures of the chosen classes
    x: torch.Tensor  # the pictures shown
    labels: list[str]  # their classes
    start: int  # index of the first shown picture in ``images``
    focus: int  # the close-up picture, among the shown
    comp: Comparison

    @property
    def which(self) -> list[str]:
        return [f"picture {self.start + i} ({c})" for i, c in enumerate(self.labels)]

    def recon(self, tag: str) -> Reconstruction:
        name = self.names["AB".index(tag)]
        scores = self.comp.scores[name]
        return Reconstruction(self.comp.recon[name], scores.psnr, float(scores.psnr.mean()))


# ---------------------------------------------------------------- side by side


def _content(p: Pair) -> tuple:
    """What the pair's figures show, as a cache key: both models' weights, their names
    (in the legends) and the pictures."""
    return (p.a.digest, p.b.digest, p.names, caches.picture_key(p.x))


@draw.fragment
def close_up(p: Pair) -> None:
    """One picture large: A, B, or a swipe between them. A fragment: switching A / B or
    moving the divider reruns only this (a few kB of HTML), not the comparison."""
    na, nb = p.names
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
    w = p.x.shape[-1]
    cut = w if view == "A" else 0
    if view == "swipe":
        if st.session_state.get("compare_swipe", 0) > w:  # a link's divider past the edge
            st.session_state["compare_swipe"] = w
        cut = st.slider(
            "Divider (column)",
            0,
            w,
            w // 2,
            key="compare_swipe",
            help="Columns left of the divider come from A, the rest from B.",
        )
    what = {"A": f"A: {na}", "B": f"B: {nb}", "swipe": f"A | B: {na} | {nb}"}[view]
    i, n = p.focus, p.start + p.focus
    pics = [swipe_image(p.comp.recon[na][i], p.comp.recon[nb][i], cut, 1), to_uint8(p.x[i])]
    caps = [what, f"input {n} ({p.labels[i]})"]
    alts = [f"{what}, picture {n}", f"input picture {n}, {p.labels[i]}"]
    draw.pictures([draw.PictureRow("", pics, caps, alts)], columns=2, max_px=320)
    classroom.view_changed()  # the address bar and a class follow the close-up


def side_by_side(p: Pair) -> None:
    na, nb = p.names
    sa, sb = p.comp.scores[na], p.comp.scores[nb]
    err = f"0 to {GREY_LEVELS * p.comp.error_max:.0f} grey levels"
    rows = [
        draw.input_row("input", p.x, p.labels, [f"input: {w}" for w in p.which], [p.focus]),
        draw.recon_row(f"A: {na}", p.recon("A"), p.which, by=f"A, {na}"),
        draw.recon_row(f"B: {nb}", p.recon("B"), p.which, by=f"B, {nb}"),
    ]
    for tag, s in (("A", sa), ("B", sb)):
        tiles = s.blockiness4.tolist()
        rows.append(
            draw.PictureRow(
                f"error of {tag}",
                error_images(p.comp.abs_error[p.names["AB".index(tag)]], p.comp.error_max, 1),
                [f"tiles {v:.1f}" for v in tiles],
                [
                    f"error map of {tag} for {w}, bright = large error ({err}); tile edges "
                    f"{v:.1f} grey levels"
                    for w, v in zip(p.which, tiles, strict=True)
                ],
            )
        )
    draw.pictures(
        rows, columns=max(len(p.x), 6), title="Inputs, both reconstructions and their errors"
    )
    ra, rb = p.comp.summary()
    s1, s2 = st.columns([2, 1], vertical_alignment="center")
    s1.caption(
        f"Error maps share one colour scale: black is no error, bright yellow is "
        f"{GREY_LEVELS * p.comp.error_max:.0f} grey levels (of 255), the largest error of either "
        "model (worst colour channel per pixel). Under the pictures: PSNR, and under the "
        "errors 'tiles': how many grey levels more the picture steps across the edges "
        "of the decoder's 4x4 tiles than inside them (about 0, or a little below: no tiles; "
        "what error of the same size with no tiles scores, for these pictures: "
        f"{ra['blockiness4_floor']:.1f} for A, {rb['blockiness4_floor']:.1f} for B)."
    )
    s2.image(
        error_scale_bar(p.comp.error_max, width=256),
        width="stretch",
        alt=f"error colour scale from black (0) to yellow ({err})",
        caption=f"0 … {GREY_LEVELS * p.comp.error_max:.0f} grey levels",
    )
    draw.download_png(rows, f"compare-{p.split}-{p.start}.png", "compare_download")
    st.subheader("One picture up close")
    f1, f2 = st.columns([1, 1.2], gap="large")
    with f1:
        close_up(p)
    with f2:
        e = p.comp.abs_error
        maps = caches.figure(
            ("error maps", *_content(p), p.focus),
            lambda: error_maps_figure({"A": e[na][p.focus], "B": e[nb][p.focus]}, p.comp.error_max),
        )
        draw.chart(
            maps,
            key="compare_error_maps",
            summary=f"Picture {p.start + p.focus}: A {sa.psnr[p.focus]:.1f} dB, B "
            f"{sb.psnr[p.focus]:.1f} dB. Hover the maps for the error at each pixel.",
        )
    draw.details("Numbers: per picture, SSIM and spectrum", lambda: _numbers(p, ra, rb))


def _numbers(p: Pair, ra: dict, rb: dict) -> None:
    na, nb = p.names
    draw.table(
        [
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
        ],
        NUMBER_FORMATS | {MEASURES[k][0]: "%.2f" for k in MEASURES},
    )
    draw.table(per_image_table(p.names, p.comp.scores, p.labels, p.start), NUMBER_FORMATS)
    st.caption(
        f"A = {na}, B = {nb}. SSIM (structural similarity, 1 = identical) compares "
        "local patterns rather than single pixels. Click a header to sort."
    )

    def spectra():
        return spectrum_figure(
            {
                "input": radial_power_spectrum(p.x),
                f"A: {na}": radial_power_spectrum(p.comp.recon[na]),
                f"B: {nb}": radial_power_spectrum(p.comp.recon[nb]),
            }
        )

    draw.chart(
        caches.figure(("spectrum", *_content(p)), spectra),
        key="compare_spectrum",
        summary=f"Power spectrum of these {len(p.x)} pictures and their "
        "reconstructions: both decoders lose fine detail (lower on the right); "
        "a stride-2 artifact shows as extra power near 0.5 or 0.71 cycles/px.",
    )


# -------------------------------------------------------------------- per class


def per_class(p: Pair) -> None:
    na, nb = p.names
    test = p.data.test
    scored, keys = {na: p.a.model, nb: p.b.model}, [p.a.digest, p.b.digest]
    if st.toggle(
        "Add the baselines",
        key="compare_baselines",
        persist_state="session",
        help="PCA and a downsampled copy, each keeping as many numbers as the code: does "
        "the learned code beat them, and in which classes?",
    ):
        extra = baselines(p.data)
        scored |= extra
        keys += [caches.baseline_key(label, p.data) for label in extra]
    with st.spinner(
        f"Scoring all {len(test):,} test pictures with {len(scored)} models (once per "
        "model pair)..."
    ):
        rows = caches.per_class(scored, keys, test, caches.split_key(p.data, "test", []))
    metric = segmented("Chart", CLASS_METRICS, "compare_metric", "psnr")
    worst = min(
        (r for r in rows if r["class"] != "all" and r["model"] == na), key=lambda r: r["psnr"]
    )
    draw.chart(
        per_class_bars(rows, metric),
        key="compare_class_bars",
        summary=f"All {len(test):,} test pictures of {len(test.classes)} classes. "
        f"Hardest class for A: {worst['class']} ({worst['psnr']:.1f} dB). PSNR per "
        "class is the PSNR of the class's mean MSE.",
    )
    draw.table(per_class_rows(rows), NUMBER_FORMATS | {"4x4": "%.2f", "2x2": "%.2f"})


# ---------------------------------------------------------------- over training


def _train_pair(p: Pair) -> None:
    """Both seed decoders, same seed and data, with snapshots: they become A and B."""
    training.train_models(
        QUICK_PAIR.configs(p.classes, p.data.classes, device_name()),
        p.data,
        lambda c, r: QUICK_PAIR.name(c),
        lambda runs: None,
        first=True,
        test_images=QUICK_PAIR.test_images,
    )


def over_training(p: Pair) -> None:
    na, nb = p.names
    missing = [m.name for m in (p.a, p.b) if not m.checkpoint.snapshots]
    if missing:
        st.info(
            f"{' and '.join(missing)} carr{'ies' if len(missing) == 1 else 'y'} no "
            "training snapshots. Models trained on the Train page keep them, and so do "
            "checkpoints saved with `python -m convae train --snapshots K`. Or train a "
            "small pair here: both decoders, same seed, a few thousand pictures (about a "
            "minute on a 2-core CPU); they become A and B."
        )
        if st.button("Train a small pair with snapshots", key="compare_train_pair", type="primary"):
            _train_pair(p)
        return
    try:
        snaps = {
            na: snapshot_models(p.a.checkpoint.snapshots, p.a.config, na),
            nb: snapshot_models(p.b.checkpoint.snapshots, p.b.config, nb),
        }
    except CheckpointError as exc:
        st.error(str(exc))
        return
    count = min(len(s) for s in snaps.values())
    pool = p.images.head(CURVE_IMAGES).floats()
    curves = caches.snapshot_scores(
        {na: p.a, nb: p.b}, snaps, pool, caches.split_key(p.data, p.split, p.classes, CURVE_IMAGES)
    )
    if st.session_state.get("compare_snapshot") not in range(count):
        st.session_state["compare_snapshot"] = count - 1
    measure = segmented(
        "Measure over training",
        {k: title.replace(" (grey levels)", "") for k, (title, *_) in MEASURES.items()},
        "compare_curve_measure",
        "blockiness4",
        help="Which grid artifact to follow over training, next to its floor: the 4x4 "
        "tiles, the 2x2 blocks or the period-2 checkerboard.",
    )
    g1, g2 = st.columns([2, 3], gap="large")
    with g1:
        idx = st.select_slider(
            "Snapshot",
            list(range(count)),
            key="compare_snapshot",
            format_func=lambda i: (
                f"{i}: step {snaps[na][i].step}" + (" (start)" if snaps[na][i].step == 0 else "")
            ),
            help="Step 0 is the random start; the last is the final model.",
        )
        xi = p.x[p.focus : p.focus + 1]
        name = f"input picture {p.start + p.focus}"
        pics, caps, alts = [to_uint8(xi[0])], [f"input ({p.labels[p.focus]})"], [name]
        for tag, label in zip("AB", p.names, strict=True):
            snap = snaps[label][idx]
            rec = caches.reconstruction(weights_digest(snap.model), snap.model, xi)
            psnr = float(rec.psnr[0])
            pics.append(to_uint8(rec.images[0]))
            caps.append(f"{tag}, step {snap.step}: {psnr:.1f} dB")
            alts.append(f"{tag} ({label}) after {snap.step} steps, {psnr:.1f} dB")
        draw.pictures([draw.PictureRow("", pics, caps, alts)], columns=3, max_px=200)
    with g2:
        draw.chart(
            snapshot_curves(curves, [snaps[na][idx].step, snaps[nb][idx].step], measure),
            key="compare_snapshot_curves",
            summary=f"Mean over the first {len(pool)} {p.split} pictures of the "
            "chosen classes, at every snapshot.",
        )


# ---------------------------------------------------------- tiles and checkerboards


def tiles(p: Pair) -> None:
    o1, o2 = st.columns([2, 3], gap="large")
    with o1:
        k = int(
            st.segmented_control(
                "Kernel size (stride 2)",
                [2, 3, 4],
                key="compare_kernel",
                default=2,
                required=True,
                persist_state="session",
            )
        )
        counts = overlap_map(k, 2, in_size=4)
        text, verdict = overlap_explanation(k, counts)
        st.markdown(text)
        st.info(verdict)
    with o2:
        draw.chart(
            overlap_figure(counts, k),
            key="compare_overlap",
            summary=f"Kernel {k}, stride 2: taps per output pixel range from "
            f"{int(counts.min())} to {int(counts.max())}.",
        )
    checkerboard_case(p)


PATTERN_GAIN = 20  # the period-2 pattern drawn 20x: 1 grey level shows as 20, 0.1 as 2 (flat)


def checkerboard_case(p: Pair) -> None:
    """The shipped kernel-3 model (the checkerboard case) on a real picture: its
    reconstruction, its error and the period-2 pattern it adds to every picture, trained
    and at the snapshot where that pattern was strongest."""
    entry = family_entries(shipped_models()[0], p.data).get("transpose3")
    if entry is None:
        return
    st.subheader(f"The checkerboard case, trained: {entry.name}")
    pool = p.images.head(CURVE_IMAGES).floats()
    key = caches.split_key(p.data, p.split, p.classes, CURVE_IMAGES)
    models = {"trained": entry.model}
    try:
        snaps = snapshot_models(entry.checkpoint.snapshots, entry.config, entry.name)
    except CheckpointError:
        snaps = []
    if snaps:
        curve = caches.snapshot_scores({entry.name: entry}, {entry.name: snaps}, pool, key)
        peak = max(range(len(snaps)), key=lambda i: curve[entry.name][i]["checkerboard"])
        if peak != len(snaps) - 1:
            models = {f"step {snaps[peak].step}": snaps[peak].model, **models}
    xi = p.x[p.focus : p.focus + 1]
    name = f"{p.split} picture {p.start + p.focus} ({p.labels[p.focus]})"
    rows, found, shown = [], [], []
    for when, model in models.items():
        digest = weights_digest(model)
        rec = caches.reconstruction(digest, model, pool, key)
        pattern = period2_pattern(rec.images, pool)
        amp, floor = (float(v) for v in checkerboard(rec.images, pool, pooled=True))
        found.append(f"{when}: {amp:.2f} grey levels (floor {floor:.2f})")
        shown.append(shows_checkerboard({"checkerboard": amp, "checkerboard_floor": floor}))
        one = caches.reconstruction(digest, model, xi)
        err = (one.images - xi).abs()
        psnr = float(one.psnr[0])
        pics = [
            to_uint8(one.images[0]),
            error_images(err, float(err.max()), 1)[0],
            pattern_image(pattern, xi.shape[-1], PATTERN_GAIN),
        ]
        caps = [
            f"{when}: {psnr:.1f} dB",
            f"its error (0-{GREY_LEVELS * float(err.max()):.0f})",
            f"pattern x{PATTERN_GAIN}: {amp:.2f}",
        ]
        alts = [
            f"{name} rebuilt by {entry.name} ({when}), {psnr:.1f} dB",
            f"error map of {entry.name} ({when}) for {name}, bright = large error",
            f"the period-2 pattern {entry.name} ({when}) adds to {len(pool)} pictures, "
            f"{PATTERN_GAIN} times stronger, around mid-grey: {amp:.2f} grey levels "
            f"(floor {floor:.2f})",
        ]
        rows.append(draw.PictureRow(when, pics, caps, alts))
    top = draw.PictureRow("input", [to_uint8(xi[0])], [p.labels[p.focus]], [f"input {name}"])
    draw.pictures([top, *rows], columns=3, max_px=180)
    st.caption(
        f"A real kernel-3 decoder ({entry.name}) on {name}. The pattern is the error it "
        f"makes at each of the four positions of the 2x2 grid, averaged over the first "
        f"{len(pool)} pictures of this split (what is left is built into the weights, not "
        f"the pictures), tiled and drawn {PATTERN_GAIN} times stronger around mid-grey; "
        f"its amplitude above chance: {'; '.join(found)}."
        + (
            " The snapshot is the one of its training with the strongest pattern"
            + (": training balanced the uneven overlap away." if shown == [True, False] else ".")
            if len(models) > 1
            else ""
        )
        + ' The "Decoder family" tab has the same measure for every decoder on the '
        "whole test split."
    )


# ---------------------------------------------------------------- decoder family


# The family table scores every decoder on every picture, about 1 ms of CPU a picture and
# decoder (7 decoders x 10,000 pictures: 78 s here, a class waiting in front of the
# projector); 2,000 pictures take a fifth of that and move the figures by hundredths.
FAMILY_PICTURES = 2000


def family(p: Pair) -> None:
    """Every shipped decoder of the family on the first :data:`FAMILY_PICTURES` test
    pictures: the table, one sentence each, and one picture rebuilt by every one of them."""
    entries = family_entries(shipped_models()[0], p.data)
    if len(entries) < 2:
        st.info(
            "The decoder family table needs the shipped family checkpoints "
            f"(checkpoints/cifar10-<decoder>.pt) for these pictures; found "
            f"{len(entries)}. Train the rest with `python bench/train_family.py`."
        )
        return
    test = p.data.test.head(FAMILY_PICTURES)
    models = entries
    with st.spinner(
        f"Scoring {len(test):,} test pictures with {len(models)} decoders (once per server)..."
    ):
        rows = caches.family_table(models, test, caches.split_key(p.data, "test", [], len(test)))
    sample = p.data.source.endswith("-sample")
    total = len(p.data.test)
    if sample:
        where = (
            f"the {len(test):,} test pictures of the embedded sample (the full test split has "
            "10,000; get the full data set from the sidebar for the README's figures)"
        )
    elif len(test) < total:
        where = (
            f"the first {len(test):,} of the {total:,} test pictures (the README's table, "
            "from bench/family.py, has all of them)"
        )
    else:
        where = f"all {len(test):,} test pictures"
    xi = p.x[p.focus : p.focus + 1]
    name = f"{p.split} picture {p.start + p.focus} ({p.labels[p.focus]})"
    pics, caps, alts = [to_uint8(xi[0])], ["input"], [f"input {name}"]
    for dec, e in models.items():
        rec = caches.reconstruction(e.digest, e.model, xi)
        psnr = float(rec.psnr[0])
        pics.append(to_uint8(rec.images[0]))
        caps.append(f"{dec}: {psnr:.1f} dB")
        alts.append(f"{name} rebuilt by {e.name} ({DECODER_LABELS[dec]}), {psnr:.1f} dB")
    draw.pictures(
        [draw.PictureRow("", pics, caps, alts)],
        columns=len(pics),
        max_px=160,
        title="One picture, rebuilt by every decoder of the family",
    )
    table = []
    for r in rows:
        row = {
            "decoder": r["decoder"],
            "what it does": r["label"],
            "parameters": r["parameters"],
            "PSNR (dB)": r["psnr"],
            "SSIM": r["ssim"],
        }
        for k in ARTIFACTS:
            row[ARTIFACT_NAMES[k]] = r[k]
            row[f"{ARTIFACT_NAMES[k]} floor"] = r[f"{k}_floor"]
        table.append(row)
    draw.table(table, NUMBER_FORMATS | {"tiles": "%.2f", "checker": "%.2f"}, key="compare_family")
    st.caption(
        f"On {where}, whatever classes are picked. Tiles 4 / tiles 2: how many grey levels "
        "more the picture steps across the edges of the 4x4 / 2x2 grid than inside it, "
        "beyond the input's own; checker: the period-2 pattern common to all the pictures; "
        "each next to its floor, what error of the same size with no grid scores."
    )
    st.markdown("\n".join(f"- **{r['decoder']}**: {r['sentence']}" for r in rows))
