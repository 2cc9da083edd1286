"""Every cache the app shares between sessions, with one key rule.

A server holds a whole class: one student's click should reuse what another's computed.
So every ``st.cache_*`` wrapper of the app is here, and every one is keyed by content:

    key = (the weights digest of each model, the picture key, the view's own settings)

- a model's key is its weights digest (:attr:`convae.catalog.ModelEntry.digest`); a
  baseline's is its name at the data set's fingerprint (it is fitted to that data);
- a picture key is a digest of the pixels (:func:`picture_key`), or for a whole split of a
  data set the data set's fingerprint (itself a digest of its files) with the split and the
  classes (:func:`split_key`), so that a 10,000-picture split is not hashed on every click;
- never ``id()``, never a session's own names: two students who picked the same weights
  and pictures share one entry, whatever their models are called.

The arguments after the key start with an underscore: Streamlit does not hash them (they
are the models and tensors the key describes). Process-wide resources that are not
computations (the prepared data sources, the shipped checkpoints, VGG-19) are here too,
so that this module is the only one that touches Streamlit's caches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import streamlit as st
import torch

from convae.baselines import baselines_for
from convae.catalog import ModelEntry
from convae.checkpoints import CheckpointError, load_checkpoint
from convae.classroom import ClassService, Question, QuestionError, TeacherKey, open_store
from convae.classroom.questions import parse_questions
from convae.classroom.quiz import PreparedQuestion, prepare
from convae.codec import rate_distortion as _rate_distortion
from convae.compare import (
    Comparison,
    compare_models,
    per_class_table,
    scores_over_training,
)
from convae.data import DataSet, ImageSet
from convae.family import family_table as _family_table
from convae.figures import step_thumbnail
from convae.figures.maps import maps_html as figure_maps_html
from convae.figures.maps import path_strip_html as figure_strip_html
from convae.figures.qr import qr_png_data_uri
from convae.lessons import Lesson, LessonError, load_lessons
from convae.models import CODE_STEP
from convae.models import trace as _trace_model
from convae.prepared import PreparedSources
from convae.recon import Reconstruction, reconstruct_scored
from convae.style import EncoderFeatures, VGGFeatures
from convae.tasks import psnr_curve, repair_scores

Key = tuple


# ------------------------------------------------------------------ the key rule


def picture_key(x: torch.Tensor) -> str:
    """A digest of pictures' pixels (and shape), for a cache key."""
    t = x.detach().cpu().contiguous()
    h = hashlib.blake2b(str((t.dtype, tuple(t.shape))).encode(), digest_size=12)
    h.update(t.numpy().tobytes())
    return h.hexdigest()


def split_key(data: DataSet, split: str, classes: Sequence[str], count: int | None = None) -> str:
    """The picture key of a whole split (or its first ``count`` pictures) of ``data``."""
    return f"{data.fingerprint}/{split}/{','.join(classes)}/{count if count else 'all'}"


def models_key(models: Sequence[ModelEntry]) -> tuple[str, ...]:
    return tuple(m.digest for m in models)


def named_key(models: Mapping[str, ModelEntry]) -> tuple[tuple[str, str], ...]:
    """Models under the labels a result shows them by: the labels are part of the result."""
    return tuple((label, m.digest) for label, m in models.items())


# ------------------------------------------------------- process-wide resources


@st.cache_resource(show_spinner=False)
def prepared_sources() -> PreparedSources:
    """Which data sources this process has decoded (one per process)."""
    return PreparedSources()


@st.cache_resource(show_spinner=False, max_entries=4)
def dataset(source: str, root: str) -> DataSet:
    """A prepared data set: a ~10 ms memory map, then its uint8 tensors are shared by every
    session (read only). Only called once :func:`prepared_sources` has prepared it."""
    return prepared_sources().load(source, root)


@st.cache_resource(show_spinner=False, max_entries=64)
def shipped_entry(path: str, mtime_ns: int) -> ModelEntry | str:
    """A checkpoint of the server's folder as a pickable entry (its digest computed once per
    file version), or its error message."""
    try:
        ck = load_checkpoint(path, name=Path(path).name)
    except CheckpointError as exc:
        return str(exc)
    p = Path(path)
    return ModelEntry(f"shipped:{p.name}", p.stem, "shipped", ck)


@st.cache_resource(show_spinner=False, max_entries=4)
def _baselines(fingerprint: str, root: str, _data: DataSet) -> dict:
    return baselines_for(_data, root)


def baselines(data: DataSet, root: str) -> dict:
    """PCA and downsampling with as many numbers as the code, fitted once per server and
    data set (PCA is cached on disk too)."""
    return _baselines(data.fingerprint, root, data)


def baseline_key(label: str, data: DataSet) -> str:
    """A baseline's stand-in for a weights digest: it is fitted to this data set."""
    return f"{label}@{data.fingerprint}"


@st.cache_resource(show_spinner=False, max_entries=8)
def _encoder_features(digest: str, _model) -> EncoderFeatures:
    return EncoderFeatures(_model)


def encoder_features(entry: ModelEntry) -> EncoderFeatures:
    return _encoder_features(entry.digest, entry.model)


@st.cache_resource(show_spinner="Loading VGG-19 from the local torch hub cache...")
def vgg_features(path: str) -> VGGFeatures:
    return VGGFeatures(path)


@st.cache_data(show_spinner=False, max_entries=4)
def _lessons(path: str, mtime_ns: int, pages: frozenset[str]) -> list[Lesson] | str:
    try:
        return load_lessons(path, set(pages))
    except (LessonError, OSError) as exc:
        return str(exc)


def lessons(path: Path, pages: set[str]) -> list[Lesson] | str:
    """The lessons file, read again only when it changed; its error message if it is bad."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        return f"cannot read it: {exc.strerror}"
    return _lessons(str(path), mtime, frozenset(pages))


@st.cache_resource(show_spinner=False, max_entries=4)
def class_room(store_spec: str, key_tag: str) -> tuple[ClassService, TeacherKey] | str:
    """The live class service and the teacher key, one per process (and per store address
    and key, which tests change), or the one-line reason there is none (a bad
    ``CONVAE_CLASS_STORE`` or ``CONVAE_TEACHER_KEY``). ``key_tag`` is a digest of the key
    variable, never the key: it only tells a changed variable apart."""
    try:
        key = TeacherKey.from_env()
        return ClassService(open_store(store_spec), key=key), key
    except ValueError as exc:  # ClassStoreConfigError is one; so is a key that is too short
        return str(exc)


@st.cache_data(show_spinner=False, max_entries=16)
def qr_code(link: str) -> str:
    """A join link's QR code as a PNG data URI (convae.figures.qr), made once per link."""
    return qr_png_data_uri(link)


@st.cache_data(show_spinner=False, max_entries=4)
def _class_questions(path: str, mtime_ns: int) -> list[Question] | str:
    try:
        return parse_questions(Path(path).read_text(encoding="utf-8"), where=Path(path).name)
    except (QuestionError, OSError) as exc:
        return str(exc)


def class_questions(path: Path) -> list[Question] | str:
    """The questions file (in its own words, without checking models and classes, which
    differ per data set), read again only when it changed; no file: no questions; a bad
    file: its error message."""
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return []
    except OSError as exc:
        return f"cannot read {path.name}: {exc.strerror}"
    return _class_questions(str(path), mtime)


@st.cache_resource(show_spinner=False, max_entries=32)
def _prepared_question(key: Key, _q: Question, _models: dict, _test, seed: int):
    return prepare(_q, _models, _test, seed)


def prepared_question(
    question: Question, models: Mapping[str, ModelEntry], data: DataSet, seed: int
) -> PreparedQuestion:
    """A class question's pictures, answer and reason (convae.classroom.quiz), per
    question, seed, data set and weights: the teacher's session measures it when asking,
    and a class of students rebuilding it share that one computation.

    Raises:
        QuestionError: a model or picture this server does not have.
    """
    wanted = {k: models[k] for k in question.models if k in models}
    key = (
        json.dumps(question.to_dict(), sort_keys=True),
        seed,
        data.fingerprint,
        tuple((k, m.digest) for k, m in sorted(wanted.items())),
    )
    return _prepared_question(
        key, question, {k: m.model for k, m in wanted.items()}, data.test, seed
    )


# ---------------------------------------------------------------- computations


@st.cache_data(show_spinner=False, max_entries=256)
def _reconstruction(key: Key, _model, _x: torch.Tensor) -> Reconstruction:
    return reconstruct_scored(_model, _x)


def reconstruction(model_key: str, model, x: torch.Tensor, pictures: str | None = None):
    """``model(x)`` with each picture's PSNR (convae.recon), shared per weights and pictures.

    Args:
        model_key: the weights digest (or :func:`baseline_key`).
        model: an autoencoder or a baseline.
        x: pictures (N, C, H, W) in [0, 1].
        pictures: their key when the caller has one (:func:`split_key`), else their digest.
    """
    return _reconstruction((model_key, pictures or picture_key(x)), model, x)


@st.cache_resource(show_spinner=False, max_entries=256)
def _trace(key: Key, _model, _x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    return _trace_model(_model, _x)


def trace(entry: ModelEntry, x: torch.Tensor, pictures: str) -> list[tuple[str, torch.Tensor]]:
    """Every step's activation for one model and picture (read only, shared)."""
    return _trace((entry.digest, pictures), entry.model, x)


@st.cache_data(show_spinner=False, max_entries=256)
def _thumbnails(key: Key, _acts, in_channels: int) -> list:
    return [step_thumbnail(a, n, in_channels, target_px=1) for n, a in _acts]


def thumbnails(entry: ModelEntry, pictures: str, acts) -> list:
    """A small picture of every step (Layers' path strip), per model and picture."""
    return _thumbnails((entry.digest, pictures), acts, entry.config.in_channels)


@st.cache_data(show_spinner=False, max_entries=1024)
def _maps_html(key: Key, _acts, step: str, mode: str, in_channels: int, columns: int, joint):
    return figure_maps_html(_acts, step, mode, in_channels, columns, joint)


def maps_html(
    entry: ModelEntry,
    pictures: str,
    acts,
    step: str,
    mode: str,
    columns: int,
    joint: tuple[float, float] | None = None,
) -> str:
    """Layers: one step's channel maps and legend as HTML (convae.figures.maps), per
    weights, picture, step and colour mode (``joint``: a range shared with another model)."""
    key = (entry.digest, pictures)
    return _maps_html(key, acts, step, mode, entry.config.in_channels, columns, joint)


@st.cache_data(show_spinner=False, max_entries=1024)
def _strip_html(key: Key, _entry, _acts, step: str) -> str:
    names = [n for n, _ in _acts]
    return figure_strip_html(names, thumbnails(_entry, key[1], _acts), step, CODE_STEP)


def path_strip_html(entry: ModelEntry, pictures: str, acts, step: str) -> str:
    """Layers' whole path with ``step`` marked, per weights, picture and step (encoding
    its thumbnails as PNG again at every click was 15 % of a step's server CPU)."""
    return _strip_html((entry.digest, pictures), entry, acts, step)


@st.cache_resource(show_spinner=False, max_entries=64)
def _comparison(key: Key, names: tuple, _a, _b, _x) -> Comparison:
    return compare_models(_a, _b, _x, names=names)


def comparison(a: ModelEntry, b: ModelEntry, names: tuple, x: torch.Tensor, pictures: str):
    """Both models on the same pictures (convae.compare), per model pair and pictures."""
    return _comparison((a.digest, b.digest, pictures), names, a.model, b.model, x)


@st.cache_data(show_spinner=False, max_entries=16)
def _per_class(key: Key, _models: dict, _images: ImageSet) -> list[dict]:
    return per_class_table(_models, _images)


def per_class(models: Mapping[str, object], keys: Sequence[str], images: ImageSet, pictures: str):
    """Mean measures per class and model over a split (``keys``: each model's key)."""
    return _per_class((tuple(zip(models, keys, strict=True)), pictures), dict(models), images)


@st.cache_data(show_spinner=False, max_entries=4)
def _family(key: Key, _models: dict, _images: ImageSet) -> list[dict]:
    return _family_table(_models, _images)


def family_table(models: Mapping[str, ModelEntry], images: ImageSet, pictures: str) -> list[dict]:
    """The decoder family table (convae.family) of these models on a whole split, once per
    server for a set of weights and pictures (``pictures``: :func:`split_key`)."""
    key = (named_key(models), pictures)
    return _family(key, {k: m.model for k, m in models.items()}, images)


@st.cache_data(show_spinner=False, max_entries=16)
def _snapshot_scores(key: Key, _snaps: dict, _x) -> dict[str, list[dict]]:
    return {name: scores_over_training(snaps, _x) for name, snaps in _snaps.items()}


def snapshot_scores(
    entries: Mapping[str, ModelEntry], snaps: Mapping[str, list], x: torch.Tensor, pictures: str
) -> dict[str, list[dict]]:
    """The measures of every weight snapshot of each model on the same pictures."""
    key = (named_key(entries), pictures, tuple(len(s) for s in snaps.values()))
    return _snapshot_scores(key, dict(snaps), x)


@st.cache_data(show_spinner="Scoring the models over noise strengths...", max_entries=16)
def _psnr_curves(key: Key, _models: dict, _x, kind: str, points: tuple) -> dict[str, list]:
    return psnr_curve(_models, _x, kind, list(points))


def psnr_curves(
    models: Mapping[str, ModelEntry], x: torch.Tensor, pictures: str, kind: str, points
) -> dict[str, list[float]]:
    """PSNR against noise strength per model (Denoise), per weights, pictures and noise."""
    key = (named_key(models), pictures)
    return _psnr_curves(key, {k: m.model for k, m in models.items()}, x, kind, tuple(points))


@st.cache_data(show_spinner="Scoring on test pictures...", max_entries=32)
def _repair_table(key: Key, _models: dict, _x, _damaged, _region) -> list[dict]:
    return repair_scores(_models, _x, _damaged, _region)


def repair_table(
    models: Mapping[str, ModelEntry],
    x: torch.Tensor,
    damaged: torch.Tensor,
    region: torch.Tensor,
    pictures: str,
    damage: tuple,
) -> list[dict]:
    """Region and whole PSNR of each model on damaged pictures (Repair), per weights,
    pictures and damage (``damage``: the settings that made it)."""
    key = (named_key(models), pictures, damage)
    return _repair_table(key, {k: m.model for k, m in models.items()}, x, damaged, region)


@st.cache_data(show_spinner="Measuring bytes against quality...", max_entries=8)
def _rd(key: Key, _model, _x) -> dict:
    return _rate_distortion(_model, _x)


def rate_distortion(entry: ModelEntry, x: torch.Tensor, pictures: str) -> dict:
    """Bytes against PSNR for the code and JPEG (Code), per weights and pictures."""
    return _rd((entry.digest, pictures), entry.model, x)
