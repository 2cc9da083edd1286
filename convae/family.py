"""The decoder family side by side: one recipe, one table, one plain sentence per variant.

Every decoder of :mod:`convae.models` (transpose kernels 2, 3 and 4; nearest and bilinear
resize + convolution; sub-pixel convolution with default and with ICNR initialisation) is
trained with the same recipe and seed (``bench/train_family.py``; the seed pair keeps its
own longer recipe), with weight snapshots at :data:`FAMILY_SNAPSHOT_STEPS`, dense early
because an artifact of the initial weights fades in the first few hundred steps.

:func:`family_table` measures any set of models on the same pictures (parameters, PSNR,
SSIM, tiles 4, tiles 2 and the period-2 checkerboard, each with its floor, from
:func:`convae.compare.score_images`) and :func:`variant_sentence` says in one sentence what
those figures found, and nothing else. The thresholds it uses:

- **tiles** (:data:`TILES_VISIBLE`, 1 grey level): a decoder "draws 4x4 tiles" (or 2x2
  blocks) when its pictures step at least 1 grey level more across the tile edges than
  error of the same size with no grid (the floor) does; the shipped transpose decoder is
  9.5 above, the upsample decoder within 0.1 (the Compare page's sentence uses the same 1).
- **checkerboard** (:data:`CHECKER_VISIBLE`, half a grey level, and at least
  :data:`CHECKER_FLOOR_TIMES` times its floor): an amplitude of 0.5 is a pattern of
  +-0.5 around the picture, one 8-bit step from peak to peak, the smallest an 8-bit picture
  can hold; below it the pattern rounds away when the picture is shown. The floor is what
  the same error shows by chance, and the amplitude itself is already that much above
  chance, so "twice the floor" keeps a handful of pictures' noisy reading from counting.

The Compare page's "Decoder family" tab, ``python -m convae compare CKPT CKPT CKPT ...``
and ``bench/family.py`` (bench/results/family.json, the README's table) all call these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .checkpoints import Snapshot
from .compare import score_images, scores_over_training
from .data import ImageSet
from .metrics import checkerboard
from .models import DECODER_LABELS, DECODERS, ConvAutoencoder, count_parameters

if TYPE_CHECKING:
    from .train import TrainEvent

# The shipped family's recipe (bench/train_family.py), where it differs from today's
# TrainConfig defaults: they were trained at lr 2e-3 in float32, before the default moved.
FAMILY_RECIPE = {"lr": 2e-3, "precision": "fp32"}

# Snapshot steps besides step 0 and the final step: dense early (an artifact of the
# initial weights fades within the first few hundred steps, during the 500-step warm-up),
# then sparse, so that a checkpoint keeps its whole story in a few tens of kB.
FAMILY_SNAPSHOT_STEPS: tuple[int, ...] = (50, 150, 400, 1000, 2500, 6000, 12000)
TILES_VISIBLE = 1.0  # grey levels above the floor: "draws tiles" (see the module docstring)
CHECKER_VISIBLE = 0.5  # grey levels: one 8-bit step peak to peak (see the module docstring)
CHECKER_FLOOR_TIMES = 2.0  # and at least this many times its floor
# The measures of a family row, in table order; each has "<key>_floor".
ARTIFACTS = ("blockiness4", "blockiness2", "checkerboard")
ARTIFACT_NAMES = {"blockiness4": "tiles 4", "blockiness2": "tiles 2", "checkerboard": "checker"}


# ---------------------------------------------------------------- training


def snapshot_callback(steps: Iterable[int], store: list[dict]) -> Callable[[TrainEvent], None]:
    """A ``fit()`` callback that copies the weights after each of ``steps``.

    ``fit(snapshots=K)`` keeps K evenly spaced snapshots; this one keeps the steps asked
    for, in the same form (``{"step", "epoch", "state_dict"}``, CPU tensors in the default
    layout, as checkpoints read with ``weights_only=True`` need), so both can be merged
    into one checkpoint. It reads the model ``fit()`` hands its callback after each step
    and never changes it.

    Args:
        steps: optimizer steps after which to copy the weights.
        store: the list the copies are appended to.

    Returns:
        The callback (it never asks to stop).
    """
    wanted = set(steps)

    def on_event(ev: TrainEvent) -> None:
        if ev.kind == "step" and ev.step in wanted and ev.model is not None:
            state = {
                k: v.detach().to("cpu", copy=True).contiguous()
                for k, v in ev.model.state_dict().items()
            }
            store.append({"step": ev.step, "epoch": ev.epoch, "state_dict": state})

    return on_event


def merge_snapshots(*lists: list[dict]) -> list[dict]:
    """Snapshots of one run from several sources, one per step (the first given wins),
    in step order."""
    by_step: dict[int, dict] = {}
    for snaps in lists:
        for s in snaps:
            by_step.setdefault(int(s["step"]), s)
    return [by_step[k] for k in sorted(by_step)]


def family_checkpoints(folder: str | Path, source: str = "cifar10") -> dict[str, Path]:
    """The shipped family's checkpoints for a data source: ``<source>-<decoder>.pt`` in
    ``folder`` for each decoder of the family that is there, in family order.

    Args:
        folder: the checkpoints folder.
        source: the data source the checkpoints were trained on (their file-name prefix).

    Returns:
        decoder -> path, e.g. {"transpose": Path("checkpoints/cifar10-transpose.pt"), ...}.
    """
    folder = Path(folder)
    found = {d: folder / f"{source}-{d}.pt" for d in DECODERS}
    return {d: p for d, p in found.items() if p.is_file()}


# ---------------------------------------------------------------- the table


def family_row(name: str, model: ConvAutoencoder, figures: Mapping[str, float]) -> dict:
    """One row of the family table from a model and its set figures.

    Args:
        name: the row's label (a decoder name, a file stem).
        model: the model (its decoder and parameter count are read).
        figures: :meth:`convae.compare.ImageScores.mean` of the model on the pictures.

    Returns:
        {"model", "decoder", "label", "parameters", "n", "psnr", "ssim", "blockiness4",
        "blockiness4_floor", "blockiness2", "blockiness2_floor", "checkerboard",
        "checkerboard_floor", "sentence"}; artifact measures in grey levels.
    """
    row = {
        "model": name,
        "decoder": model.config.decoder,
        "label": DECODER_LABELS[model.config.decoder],
        "parameters": count_parameters(model),
        "n": int(figures["n"]),
        "psnr": float(figures["psnr"]),
        "ssim": float(figures["ssim"]),
    }
    for key in ARTIFACTS:
        row[key] = float(figures[key])
        row[f"{key}_floor"] = float(figures[f"{key}_floor"])
    row["sentence"] = variant_sentence(row)
    return row


def family_table(
    models: Mapping[str, ConvAutoencoder], images: torch.Tensor | ImageSet
) -> list[dict]:
    """Every model on the same pictures: the family table, one :func:`family_row` each.

    Args:
        models: label -> autoencoder (not modified), in the order the table shows them.
        images: uint8 or float pictures (N, C, H, W), or an ImageSet (a test split).

    Returns:
        One row per model, in the order given.

    Raises:
        ValueError: no models, or pictures a model cannot take.
    """
    if not models:
        raise ValueError("no models to tabulate: give at least one checkpoint")
    return [
        family_row(name, model, score_images(model, images).mean())
        for name, model in models.items()
    ]


def family_over_training(
    snapshots: Mapping[str, Sequence[Snapshot]], images: torch.Tensor | ImageSet
) -> dict[str, list[dict]]:
    """The set figures of every snapshot of every model, on the same pictures.

    Args:
        snapshots: label -> :func:`convae.checkpoints.snapshot_models` of its checkpoint.
        images: the pictures (e.g. the first 1,000 of the test split).

    Returns:
        label -> [{"step", "epoch", "n", "psnr", "ssim", "blockiness4", ..., floors}, ...].
    """
    return {name: scores_over_training(snaps, images) for name, snaps in snapshots.items()}


# ------------------------------------------------------------- the theory, exactly

# One x2 step of each kind with all-equal weights (nothing learned), for the predictions.
FLAT_STEPS = (
    "transpose2",
    "transpose3",
    "transpose4",
    "nearest",
    "bilinear",
    "subpixel-one-kernel",
)


def _equal(layer: nn.Module, value: float) -> nn.Module:
    with torch.no_grad():
        layer.weight.fill_(value)
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


def flat_doubling(kind: str) -> nn.Module:
    """One x2 step of the family with every weight equal and no bias, scaled so that a flat
    input comes out at its own level where the coverage is even.

    Args:
        kind: one of :data:`FLAT_STEPS`: a transpose convolution of kernel 2, 3 (1, 2 or 4
            taps per pixel, 2.25 on average) or 4, nearest or bilinear x2 then a 3x3
            convolution, or a sub-pixel step whose four kernels are one (ICNR's start).

    Returns:
        A 1-channel module mapping (N, 1, h, w) to (N, 1, 2h, 2w).
    """
    if kind == "transpose2":
        return _equal(nn.ConvTranspose2d(1, 1, 2, 2), 1.0)
    if kind == "transpose3":
        return _equal(nn.ConvTranspose2d(1, 1, 3, 2, 1, 1), 1 / 2.25)
    if kind == "transpose4":
        return _equal(nn.ConvTranspose2d(1, 1, 4, 2, 1), 1 / 4)
    if kind in ("nearest", "bilinear"):
        up = nn.Upsample(scale_factor=2, mode=kind)
        return nn.Sequential(up, _equal(nn.Conv2d(1, 1, 3, padding=1), 1 / 9))
    if kind == "subpixel-one-kernel":
        return nn.Sequential(_equal(nn.Conv2d(1, 4, 3, padding=1), 1 / 9), nn.PixelShuffle(2))
    raise ValueError(f"no flat step {kind!r}; known: {', '.join(FLAT_STEPS)}")


@torch.no_grad()
def step_checkerboard(step: nn.Module, count: int = 200, seed: int = 0) -> tuple[float, float]:
    """The pooled checkerboard a single x2 step draws: on ``count`` random 8x8 inputs
    (values 0.3 to 0.7) against their nearest x2 copies, 2 pixels from the border left
    out (where even kernels read the zero padding).

    Returns:
        (amplitude, floor) in grey levels (:func:`convae.metrics.checkerboard`, pooled).
    """
    gen = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand(count, 1, 8, 8, generator=gen)
    y = step(x)
    target = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    amp, floor = checkerboard(y[..., 2:-2, 2:-2], target[..., 2:-2, 2:-2], pooled=True)
    return float(amp), float(floor)


# ------------------------------------------------------------- the sentences


def draws_tiles(row: Mapping[str, float], period: int = 4) -> bool:
    """True when the tiles at ``period`` (4 or 2) stand :data:`TILES_VISIBLE` grey levels
    or more above their floor."""
    key = f"blockiness{period}"
    return row[key] - row[f"{key}_floor"] >= TILES_VISIBLE


def shows_checkerboard(row: Mapping[str, float]) -> bool:
    """True when the period-2 checkerboard is at least :data:`CHECKER_VISIBLE` grey levels
    and :data:`CHECKER_FLOOR_TIMES` times its floor."""
    cb, floor = row["checkerboard"], row["checkerboard_floor"]
    return cb >= CHECKER_VISIBLE and cb >= CHECKER_FLOOR_TIMES * floor


def tiles_clause(row: Mapping[str, float]) -> str:
    """What the tile measures found, e.g. "draws 4x4 tiles: 9.5 grey levels above its
    floor at their edges (2x2 blocks: 6.1 above)"."""
    above4 = row["blockiness4"] - row["blockiness4_floor"]
    above2 = row["blockiness2"] - row["blockiness2_floor"]
    if draws_tiles(row, 4):
        return (
            f"draws 4x4 tiles: {above4:.1f} grey levels above its floor at their edges "
            f"(2x2 blocks: {above2:.1f} above)"
        )
    if draws_tiles(row, 2):
        return (
            f"draws 2x2 blocks: {above2:.1f} grey levels above its floor at their edges "
            f"(4x4 tiles: {above4:.1f})"
        )
    return f"no tiles (4x4: {above4:+.1f}, 2x2: {above2:+.1f} grey levels from their floors)"


def checker_clause(row: Mapping[str, float]) -> str:
    """What the checkerboard measure found, e.g. "a period-2 checkerboard of 1.32 grey
    levels (floor 0.01)"."""
    cb, floor = row["checkerboard"], row["checkerboard_floor"]
    if shows_checkerboard(row):
        return f"a period-2 checkerboard of {cb:.2f} grey levels (floor {floor:.2f})"
    return (
        f"no visible checkerboard ({cb:.2f} grey levels, floor {floor:.2f}; under "
        f"{CHECKER_VISIBLE} it rounds away in an 8-bit picture)"
        if cb < CHECKER_VISIBLE
        else f"no checkerboard above its floor ({cb:.2f} grey levels, floor {floor:.2f})"
    )


def variant_sentence(row: Mapping[str, float | str]) -> str:
    """One plain sentence of what the figures found for one variant, and nothing more.

    Args:
        row: a :func:`family_row` (or any dict with "label", "psnr", "ssim", "n" and the
            three artifact measures with their floors).

    Returns:
        e.g. "transpose conv, kernel 2: 21.84 dB, SSIM 0.708 on 10,000 pictures; draws 4x4
        tiles: 9.5 grey levels above its floor at their edges (2x2 blocks: 6.1 above); no
        visible checkerboard (0.13 grey levels, floor 0.01; under 0.5 it rounds away in an
        8-bit picture)."
    """
    return (
        f"{row['label']}: {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f} on {row['n']:,} "
        f"pictures; {tiles_clause(row)}; {checker_clause(row)}."
    )


def format_table(rows: Sequence[Mapping]) -> str:
    """The family table as plain text (the command line's), with the sentences under it.

    Args:
        rows: :func:`family_table` rows.
    """
    wm = max(len(str(r["model"])) for r in rows) + 2
    head = f"{'model':<{wm}}{'params':>7}{'PSNR dB':>9}{'SSIM':>7}" + "".join(
        f"{ARTIFACT_NAMES[k] + ' (floor)':>18}" for k in ARTIFACTS
    )
    lines = [head]
    for r in rows:
        cells = "".join(f"{r[k]:>10.2f} ({r[k + '_floor']:>5.2f})" for k in ARTIFACTS)
        lines.append(
            f"{r['model']:<{wm}}{r['parameters']:>7,}{r['psnr']:>9.2f}{r['ssim']:>7.3f}{cells}"
        )
    lines.append("")
    lines += [f"{r['model']}: {r['sentence']}" for r in rows]
    return "\n".join(lines)


def checkpoint_labels(paths: Sequence[str], decoders: Sequence[str]) -> list[str]:
    """How a table names several checkpoints: by decoder, by file name where two share
    a decoder, and by position where two share a file name too.

    Args:
        paths: the checkpoint files, in order.
        decoders: each one's decoder.

    Returns:
        One distinct label per checkpoint, e.g. ["transpose", "upsample"] or
        ["run1", "run2"] for two transpose checkpoints run1.pt and run2.pt.
    """
    names = list(decoders)
    if len(set(names)) < len(names):
        names = [Path(p).stem for p in paths]
    if len(set(names)) < len(names):
        # (A), (B), ... as the Compare page tells two of one name apart
        names = [f"{n} ({chr(65 + i) if i < 26 else i + 1})" for i, n in enumerate(names)]
    return names
