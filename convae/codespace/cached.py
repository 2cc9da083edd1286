"""What the "Code space" page calls: every result for one model and data set, computed
once and then read from the disk cache (:mod:`convae.codespace.cache`).

A :class:`CodeSpace` holds a model, a data set and the data root; each method returns one
result, reading it from ``<data root>/cache/codespace/`` when it is there and computing
and storing it (atomically) when not. Results that depend on the data only (the raw-pixel
map, the pixel and PCA neighbours and probes) are stored once per data set, not once per
model. The codes of a split are kept on the instance while it lives, so one job that asks
for the probe and the channel report encodes the training split once.

Cheap on a warm cache (file reads: the page's open, 20 ms of CPU for both shipped
models' maps and scores and the raw-pixel map), expensive the first time. CPU seconds of
the first computation on the full CIFAR-10, 2 threads (bench/results/codespace.json,
whose wall times are inflated by the shared machine's load):

====================  =====================================  =============  ===========
method                first time                             CPU s          queue it?
====================  =====================================  =============  ===========
``map("pca")``        encode 10,000 pictures + exact PCA     2.4-2.9        no
``pixel_map()``       PCA of 10,000 x 3,072, once per data   2.0            no
``scores()``          PSNR / tiles of 10,000 pictures        8.7-9.9        no
``map("tsne")``       t-SNE of 10,000 codes                  70-73          yes
``neighbours()``      8-NN of 10,000, three spaces           3.5 (+10 once  yes
                                                             per data)
``probe()``           encode 60,000, probe the code          21-30 (+110    yes
                                                             once per data)
``channels()``        encode 60,000, 5 decodes of 10,000     18-20          yes
====================  =====================================  =============  ===========

The "once per data" parts (the raw-pixel and PCA-256 neighbours and probes, and the
PCA-256 fit itself, 38 s of CPU) are paid by the first model on a data set and read from
the cache by every later one. The page asks
:meth:`CodeSpace.is_cached` first and runs a missing expensive result inside the server's
training queue, in the thread that waits for the ticket::

    space = CodeSpace(entry.model, data, digest=entry.digest)
    if not space.is_cached("tsne"):
        with training_queue().ticket(label) as ticket:
            while not ticket.wait(timeout=0.5):
                show_position(ticket.position())
            with training_resources(threads=2):
                space.map("tsne", progress=bar)    # progress(done, total, what)

A Stop click (Streamlit's exception raised at the next ``st.*`` call inside ``progress``)
ends the work between two steps; nothing is written until a result is complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..catalog import weights_digest
from ..compare import score_images
from ..data import DataSet, ImageSet, ProgressFn
from ..models import ConvAutoencoder
from . import cache
from .channels import (
    SwitchOffRow,
    channel_correlations,
    channel_means,
    strongest_sentence,
    switch_off_table,
)
from .features import code_shape, encode_split, pca_rows, pixel_pca, pixel_rows
from .neighbours import K, NeighbourTable, agreement_sentence, chance_agreement, neighbour_table
from .probe import ProbeResult, linear_probe, training_subset
from .projection import TSNESettings, pca_map, tsne_map

PRODUCTS = ("pca", "tsne", "pixel-map", "scores", "neighbours", "probe", "channels")


@dataclass
class CodeMap:
    """A split's pictures as points in 2-D.

    Attributes:
        coords: (N, 2) float32, row i = picture i of the split.
        labels: (N,) the pictures' classes.
        method: "pca" or "tsne".
        space: "code" or "pixels".
        shares: PCA only: fraction of the variance along each axis.
        seconds: how long the first computation took (encoding included).
    """

    coords: torch.Tensor
    labels: torch.Tensor
    method: str
    space: str
    shares: list[float] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Neighbours:
    """Every picture's nearest neighbours in code, pixel and PCA-of-pixel space.

    Attributes:
        tables: space -> :class:`NeighbourTable` ("code", "pixel", "PCA 256").
        chance: the chance that a random other picture shares the class.
        sentence: one sentence with the three rates and chance.
    """

    tables: dict[str, NeighbourTable]
    chance: float
    sentence: str


@dataclass
class ProbeReport:
    """Linear probes on the code, the raw pixels and PCA of the pixels.

    Attributes:
        results: "code", "pixels", "PCA 256" -> :class:`ProbeResult`.
        chance: accuracy of always answering the most frequent training class.
        sentence: one sentence comparing them.
    """

    results: dict[str, ProbeResult]
    chance: float
    sentence: str


@dataclass
class ChannelReport:
    """What each code channel carries, for one model.

    Attributes:
        means: (c, h, w) each channel's mean over the training split, per position.
        psnr: test PSNR of the unchanged code.
        switch_off: one row per channel: PSNR with it at its mean, and the drop.
        correlations: property -> r per channel (test split).
        sentence: one plain sentence on the strongest link (claims only |r| >= 0.5).
        dead: channels that are 0 for every test picture.
    """

    means: torch.Tensor
    psnr: float
    switch_off: list[SwitchOffRow]
    correlations: dict[str, list[float]]
    sentence: str
    dead: list[int]


@dataclass
class PictureScores:
    """Per-picture PSNR and 4x4-tile measure (with its floor) of one model on a split."""

    psnr: torch.Tensor
    tiles4: torch.Tensor
    tiles4_floor: torch.Tensor


def probe_sentence(results: dict[str, ProbeResult], chance: float) -> str:
    """'A linear classifier on the code gets 39 % of test pictures right, on the pixels
    40 %, on PCA 256 of the pixels 41 %; chance is 10 %.'"""
    parts = [f"{100 * r.accuracy:.0f} %" for r in results.values()]
    names = list(results)
    head = f"A linear classifier on the {names[0]} gets {parts[0]} of test pictures right"
    rest = [f"on the {n} {p}" for n, p in zip(names[1:], parts[1:], strict=True)]
    return ", ".join([head, *rest]) + f"; chance is {100 * chance:.0f} %."


class CodeSpace:
    """Every code-space result for one model on one data set, cached on disk.

    Args:
        model: the autoencoder (shared between sessions: only read, through private copies).
        data: the loaded data set.
        root: data root for the cache (default ``$CONVAE_DATA`` or ./data).
        digest: the model's weights digest when the caller has it (``ModelEntry.digest``).
        threads: threads for openTSNE (torch work uses the calling thread's setting).
        use_cache: False computes every result afresh and stores nothing (benchmarks,
            a read-only data root).
    """

    def __init__(
        self,
        model: ConvAutoencoder,
        data: DataSet,
        root: Path | str | None = None,
        digest: str | None = None,
        threads: int | None = None,
        use_cache: bool = True,
    ) -> None:
        self.model = model
        self.use_cache = use_cache
        self.data = data
        self.root = root
        self.digest = digest or weights_digest(model)
        self.threads = threads
        self.code_shape = code_shape(model)
        self.notices: list[str] = []  # cache files that could not be written
        self._fingerprints: dict[str, str] = {}
        self._codes: dict[str, torch.Tensor] = {}

    # ---------------------------------------------------------------- plumbing
    def split(self, name: str) -> ImageSet:
        """The "train" or "test" split."""
        if name not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {name!r}")
        return self.data.train if name == "train" else self.data.test

    def _path(self, kind: str, split: str, params: dict, data_only: bool = False) -> Path:
        if split not in self._fingerprints:
            self._fingerprints[split] = cache.split_fingerprint(self.split(split))
        digest = "pixels" if data_only else self.digest
        return cache.cache_path(self.root, kind, digest, self._fingerprints[split], split, params)

    def _cached(self, path: Path, compute: Callable[[], dict]) -> dict:
        blob = cache.read(path) if self.use_cache else None
        if blob is None:
            blob = compute()
            notice = cache.write(path, blob) if self.use_cache else ""
            if notice:
                self.notices.append(notice)
        return blob

    def _spec(self, product: str, split: str = "test", **params) -> tuple[str, dict, bool]:
        """(kind, parameters, data only) of one product: the key of its cache file.

        Results made from the training split carry its fingerprint (``DataSet.fingerprint``)
        too; the split's own fingerprint is in every file name.
        """
        c, h, w = self.code_shape
        train = {"train": self.data.fingerprint}
        k = {"k": params.get("k", K)}
        probe = {"seed": params.get("seed", 0), "max_train": params.get("max_train"), **train}
        specs: dict[str, Callable[[], tuple[str, dict, bool]]] = {
            "pca": lambda: ("map", {"method": "pca"}, False),
            "tsne": lambda: ("map", {"method": "tsne", **TSNESettings(**params).to_dict()}, False),
            "pixel-map": lambda: ("pixel-map", {"method": "pca"}, True),
            "scores": lambda: ("scores", {}, False),
            "neighbours": lambda: ("neighbours", k, False),
            # The PCA of the pixels is fitted on the training split: its fingerprint too.
            "pixel-neighbours": lambda: (
                "pixel-neighbours",
                {**k, "pca": c * h * w, **train},
                True,
            ),
            "probe": lambda: ("probe", probe, False),
            "pixel-probe": lambda: ("pixel-probe", {**probe, "pca": c * h * w}, True),
            "channels": lambda: ("channels", train, False),
        }
        if product not in specs:
            raise ValueError(f"unknown code-space result {product!r}: one of {', '.join(PRODUCTS)}")
        return specs[product]()

    def is_cached(self, product: str, split: str = "test", **params) -> bool:
        """Whether a result is on disk already (a few ``stat`` calls): the page computes a
        missing expensive one inside the training queue. ``params`` as the method takes."""
        kind, p, data_only = self._spec(product, split, **params)
        if not self._path(kind, split, p, data_only).is_file():
            return False
        if product == "neighbours":
            return self.is_cached("pixel-neighbours", split, **params)
        if product == "probe":
            return self.is_cached("pixel-probe", "test", **params)
        return True

    def codes(self, split: str = "test", progress: ProgressFn | None = None) -> torch.Tensor:
        """The split's codes (N, c, h, w), encoded once per instance (not stored on disk:
        every result made from them is)."""
        if split not in self._codes:
            self._codes[split] = encode_split(self.model, self.split(split), progress)
        return self._codes[split]

    # ---------------------------------------------------------------- maps
    def map(
        self,
        method: str = "pca",
        split: str = "test",
        progress: ProgressFn | None = None,
        settings: TSNESettings | None = None,
    ) -> CodeMap:
        """The split's codes as a 2-D map ("pca": exact, seconds; "tsne": queue it).

        Raises:
            TooSmallError: a code or a split too small for the map (one sentence).
            ValueError: an unknown method or split.
        """
        if method not in ("pca", "tsne"):
            raise ValueError(f"unknown projection {method!r}: use 'pca' or 'tsne'")
        s = settings or TSNESettings()
        kind, params, _ = self._spec(method, split, **(s.to_dict() if method == "tsne" else {}))

        def compute() -> dict:
            t0 = time.perf_counter()
            rows = self.codes(split, progress).flatten(1)
            if method == "pca":
                coords, shares = pca_map(rows)
            else:
                coords, shares = tsne_map(rows, s, progress, self._threads()), []
            return {"coords": coords, "shares": shares, "seconds": time.perf_counter() - t0}

        blob = self._cached(self._path(kind, split, params), compute)
        return self._map(blob, method, "code", split)

    def pixel_map(self, split: str = "test", progress: ProgressFn | None = None) -> CodeMap:
        """The split's raw pixels (3,072 values for CIFAR-10) as a PCA map, once per data set:
        what the pictures look like before the encoder reorganised them."""
        kind, params, _ = self._spec("pixel-map", split)

        def compute() -> dict:
            t0 = time.perf_counter()
            if progress:
                progress(0, 1, "PCA of the raw pixels")
            coords, shares = pca_map(pixel_rows(self.split(split)))
            if progress:
                progress(1, 1, "PCA of the raw pixels")
            return {"coords": coords, "shares": shares, "seconds": time.perf_counter() - t0}

        blob = self._cached(self._path(kind, split, params, data_only=True), compute)
        return self._map(blob, "pca", "pixels", split)

    def _map(self, blob: dict, method: str, space: str, split: str) -> CodeMap:
        return CodeMap(
            blob["coords"],
            self.split(split).labels,
            method,
            space,
            [float(s) for s in blob["shares"]],
            float(blob["seconds"]),
        )

    def _threads(self) -> int:
        return self.threads or torch.get_num_threads()

    # ---------------------------------------------------------------- scores
    def scores(self, split: str = "test", progress: ProgressFn | None = None) -> PictureScores:
        """Per-picture PSNR and 4x4-tile measure of this model (to colour a map by)."""
        kind, params, _ = self._spec("scores", split)

        def compute() -> dict:
            if progress:
                progress(0, 1, "scoring every picture")
            s = score_images(self.model, self.split(split))
            if progress:
                progress(1, 1, "scoring every picture")
            return {"psnr": s.psnr, "tiles4": s.blockiness4, "tiles4_floor": s.blockiness4_floor}

        blob = self._cached(self._path(kind, split, params), compute)
        return PictureScores(blob["psnr"], blob["tiles4"], blob["tiles4_floor"])

    # ---------------------------------------------------------------- neighbours
    def neighbours(
        self, split: str = "test", k: int = K, progress: ProgressFn | None = None
    ) -> Neighbours:
        """Every picture's ``k`` nearest in code, pixel and PCA-of-pixel space, with the
        whole split's "neighbours share the class" rate per space and its chance level."""
        labels = self.split(split).labels
        kind, params, _ = self._spec("neighbours", split, k=k)
        code = self._cached(
            self._path(kind, split, params),
            lambda: _table_blob(
                neighbour_table(self.codes(split, progress), labels, "code", k, progress)
            ),
        )
        kind, params, _ = self._spec("pixel-neighbours", split, k=k)
        pixels = self._cached(
            self._path(kind, split, params, data_only=True),
            lambda: self._pixel_tables(split, k, params["pca"], progress),
        )
        tables = {b["space"]: _table(b) for b in (code, pixels["pixel"], pixels["pca"])}
        chance = chance_agreement(labels)
        return Neighbours(tables, chance, agreement_sentence(list(tables.values()), chance))

    def _pixel_tables(self, split: str, k: int, numbers: int, progress: ProgressFn | None) -> dict:
        images, labels = self.split(split), self.split(split).labels
        rows = pixel_rows(images)
        pixel = neighbour_table(rows, labels, "pixel", k, progress)
        del rows  # 120 MB for CIFAR-10's test split: free it before the next one
        pca = pca_rows(pixel_pca(self.data, numbers, root=self.root), images)
        return {
            "pixel": _table_blob(pixel),
            "pca": _table_blob(neighbour_table(pca, labels, f"PCA {numbers}", k, progress)),
        }

    # ---------------------------------------------------------------- probe
    def probe(
        self, seed: int = 0, max_train: int | None = None, progress: ProgressFn | None = None
    ) -> ProbeReport:
        """Linear probes: trained on the training split (or ``max_train`` pictures of it,
        drawn with ``seed``), tested on the whole test split, on the code, the raw pixels
        and PCA of the pixels (those two stored once per data set, not per model).

        Raises:
            TooSmallError: a code or a training split too small for a probe (one sentence).
        """
        d = self.data
        subset = training_subset(len(d.train), max_train, seed)
        train = d.train if subset is None else _subset(d.train, subset)
        kind, params, _ = self._spec("probe", "test", seed=seed, max_train=max_train)

        def code() -> dict:
            if subset is None:
                rows = self.codes("train", progress)
            else:
                rows = encode_split(self.model, train, progress)
            test = self.codes("test", progress)
            return linear_probe(
                rows, train.labels, test, d.test.labels, d.classes, "code", progress=progress
            ).to_dict()

        results = {"code": ProbeResult(**self._cached(self._path(kind, "test", params), code))}
        kind, params, _ = self._spec("pixel-probe", "test", seed=seed, max_train=max_train)
        pixels = self._cached(
            self._path(kind, "test", params, data_only=True),
            lambda: self._pixel_probes(train, subset is None, params["pca"], progress),
        )
        results.update({name: ProbeResult(**r) for name, r in pixels.items()})
        chance = results["code"].chance
        return ProbeReport(results, chance, probe_sentence(results, chance))

    def _pixel_probes(
        self, train: ImageSet, whole: bool, numbers: int, progress: ProgressFn | None
    ) -> dict:
        d = self.data
        pca = pixel_pca(d, numbers, None if whole else train, self.root)
        out = {}
        for name, rows in (
            ("pixels", pixel_rows),
            (f"PCA {numbers} of pixels", lambda s: pca_rows(pca, s)),
        ):
            out[name] = linear_probe(
                rows(train), train.labels, rows(d.test), d.test.labels, d.classes, name,
                progress=progress,
            ).to_dict()  # fmt: skip
        return out

    # ---------------------------------------------------------------- channels
    def channels(self, progress: ProgressFn | None = None) -> ChannelReport:
        """Switch-off PSNR drops (test split, channels at their training mean) and the
        correlations of each channel with brightness, colour and edges."""
        kind, params, _ = self._spec("channels", "test")

        def compute() -> dict:
            means = channel_means(self.codes("train", progress))
            test = self.codes("test", progress)
            images = self.data.test.images
            base, rows = switch_off_table(self.model, test, images, means, progress)
            return {
                "means": means,
                "psnr": base,
                "switch_off": [vars(r) for r in rows],
                "correlations": channel_correlations(test, images),
                "dead": [k for k in range(test.shape[1]) if float(test[:, k].abs().max()) == 0],
            }

        blob = self._cached(self._path(kind, "test", params), compute)
        corr = {name: [float(r) for r in rs] for name, rs in blob["correlations"].items()}
        return ChannelReport(
            blob["means"],
            float(blob["psnr"]),
            [SwitchOffRow(**r) for r in blob["switch_off"]],
            corr,
            strongest_sentence(corr),
            [int(k) for k in blob["dead"]],
        )


def _subset(images: ImageSet, keep: torch.Tensor) -> ImageSet:
    return ImageSet(images.images[keep], images.labels[keep], images.classes)


def _table_blob(t: NeighbourTable) -> dict:
    # int32 indices: half the file, and no split here holds 2**31 pictures.
    return {
        "space": t.space,
        "indices": t.indices.to(torch.int32),
        "distances": t.distances,
        "agreement": t.agreement,
    }


def _table(blob: dict) -> NeighbourTable:
    return NeighbourTable(
        blob["space"], blob["indices"].long(), blob["distances"], float(blob["agreement"])
    )
