"""The models a person can pick: shipped checkpoints, their own trained or uploaded ones.

A :class:`ModelEntry` wraps a loaded :class:`~convae.checkpoints.Checkpoint` with a key
for pickers and links, a human name, where it came from, and a digest of its weights.
The digest is what every cache shared between sessions is keyed by: two students'
"trained:1" are different models, and ``id()`` of a model is reused after garbage
collection, but equal digests mean equal weights (DESIGN.md, "Many users").

The default-selection policy also lives here, so the app, its tests and a command line
tool agree on what "the plain transpose and upsample models" means.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .checkpoints import Checkpoint
from .data import DataSet
from .models import DECODERS, SEED_DECODERS, AEConfig, ConvAutoencoder
from .tasks import task_of

ORIGINS = ("shipped", "trained", "uploaded")
ORIGIN_TAGS = {"shipped": "shipped", "trained": "trained here", "uploaded": "uploaded"}


def weights_digest(model: ConvAutoencoder) -> str:
    """A short hex digest of a model's architecture and every weight (16 hex digits).

    Hashing ~2,000 float32 values takes well under a millisecond; callers compute it once
    per entry (:attr:`ModelEntry.digest`), never per click.
    """
    h = hashlib.sha1(repr(sorted(model.config.to_dict().items())).encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def describe(ck: Checkpoint) -> str:
    """'upsample · 3ch 32px · 22.9 dB': the decoder, the images it takes, its test PSNR."""
    cfg = ck.config
    bits = [cfg.decoder, f"{cfg.in_channels}ch {cfg.image_size}px"]
    psnr = ck.test_metrics.get("psnr") if ck.test_metrics else None
    if isinstance(psnr, int | float):
        bits.append(f"{psnr:.1f} dB")
    return " · ".join(bits)


@dataclass(frozen=True)
class ModelEntry:
    """One pickable model.

    Attributes:
        key: "shipped:<file>", "trained:<n>" or "uploaded:<name>": unique within a
            session's picker, meaningless across sessions.
        name: the short name shown in pickers and legends ("cifar10-upsample").
        origin: "shipped", "trained" or "uploaded".
        checkpoint: the loaded checkpoint; its model may be shared by every session:
            read it, trace it, never train or modify it in place.
        digest: :func:`weights_digest` of the model, the key for shared caches.
    """

    key: str
    name: str
    origin: str
    checkpoint: Checkpoint
    digest: str = field(default="")

    def __post_init__(self) -> None:
        if self.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, got {self.origin!r}")
        if not self.digest:
            object.__setattr__(self, "digest", weights_digest(self.checkpoint.model))

    @property
    def model(self) -> ConvAutoencoder:
        return self.checkpoint.model

    @property
    def config(self) -> AEConfig:
        return self.checkpoint.config

    @property
    def short(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        """The name with what it is: 'cifar10-upsample · upsample · 3ch 32px · 22.9 dB'."""
        return f"{self.name} · {describe(self.checkpoint)}"

    @property
    def task(self) -> str:
        """ "plain", "denoise", "inpaint" or "colorize" (convae.tasks.task_of)."""
        return task_of(self.checkpoint.train_config)

    def fits(self, data: DataSet | None) -> bool:
        """True when the model takes this data set's images (channels and size)."""
        return data is not None and (
            self.config.in_channels == data.train.channels
            and self.config.image_size == data.train.image_size
        )


def default_selection(entries: Mapping[str, ModelEntry], data: DataSet | None) -> list[str]:
    """Up to two keys: a plain model per decoder (transpose first) that fits ``data``.

    Shipped models come before trained or uploaded ones, plain autoencoders before task
    models (denoise, inpaint, colorize sort before "cifar10-..." by name but are not
    what a first look should show).
    """
    values = list(entries.values())
    fitting = [m for m in values if m.fits(data)] or values
    order = {o: i for i, o in enumerate(ORIGINS)}
    fitting.sort(key=lambda m: (m.task != "plain", order[m.origin]))
    picked: list[str] = []
    for decoder in SEED_DECODERS:
        for m in fitting:
            if m.config.decoder == decoder:
                picked.append(m.key)
                break
    return picked or [m.key for m in fitting[:2]]


def merge_new(
    current: Iterable[str], new: Iterable[str], available: Iterable[str], limit: int = 4
) -> list[str]:
    """The picks after models were added: what was picked stays first, in its order, and
    the new keys follow (so no page's "first picked model" changes behind the user's back).

    Keys that no longer exist are dropped; at most ``limit`` keys are kept, the oldest
    picks first.
    """
    ok = set(available)
    out = [k for k in current if k in ok]
    out += [k for k in new if k in ok and k not in out]
    return out[:limit]


def family_entries(
    entries: Mapping[str, ModelEntry], data: DataSet | None
) -> dict[str, ModelEntry]:
    """The shipped plain model of each decoder of the family that fits ``data``.

    For the Compare page's "Decoder family" table: one model per decoder, in family order
    (:data:`convae.models.DECODERS`); a checkpoint named ``<data set>-<decoder>`` (e.g.
    cifar10-transpose3 for CIFAR-10 or its embedded sample) comes before any other
    shipped plain model of that decoder.

    Returns:
        decoder -> entry, only the decoders that have one.
    """
    base = data.source.removesuffix("-sample") if data is not None else ""
    out: dict[str, ModelEntry] = {}
    for decoder in DECODERS:
        mine = [
            m
            for m in entries.values()
            if m.origin == "shipped"
            and m.task == "plain"
            and m.config.decoder == decoder
            and m.fits(data)
        ]
        mine.sort(key=lambda m: (m.name != f"{base}-{decoder}", m.name))
        if mine:
            out[decoder] = mine[0]
    return out
