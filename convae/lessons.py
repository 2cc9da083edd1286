"""Lessons: ordered views of the app, each with a short note, read from a TOML file.

A lesson is what a teacher would click through in front of a class: a page with its
settings (the same query parameters a shared link carries) and one or two sentences to
say about it. Lessons live in a small text file (the app reads ``pages/lessons.toml``), so a teacher
can edit them or add one without touching code::

    [[lesson]]
    id = "squeeze"
    title = "How an autoencoder squeezes an image"

    [[lesson.step]]
    page = "layer-by-layer"          # a page's url path ("" or "start": the first page)
    query = "step=conv1&colour=layer"  # the view's settings, as in a shared link
    note = "The first layer: 16 filters ..."
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from .toml_schema import Key, Table, TomlFileError, check_tables, load_toml


class LessonError(TomlFileError):
    """A lessons file that cannot be used; the message names the lesson, step and key."""


# What a lessons file may hold: [[lesson]] tables, each with [[lesson.step]] tables.
STEP = Table(
    "step",
    {
        "page": Key(str, required=True),  # a page's url path ("start": the first page)
        "query": Key(str),  # the view's settings, as in a shared link
        "note": Key(str, required=True),
    },
)
LESSON = Table(
    "lesson",
    {"id": Key(str, required=True), "title": Key(str, required=True)},
    label="id",
    tables=(STEP,),
)


@dataclass(frozen=True)
class Step:
    page: str  # url path of the page
    params: dict[str, str]  # query parameters of the view
    note: str


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    steps: tuple[Step, ...]


def parse_lessons(text: str, pages: set[str] | None = None) -> list[Lesson]:
    """Lessons from TOML text.

    Args:
        text: the file's content.
        pages: the url paths that exist; a step naming another page is an error.

    Raises:
        LessonError: bad TOML; a table, key or value the schema does not allow
            (:mod:`convae.toml_schema`: ``[lesson]`` for ``[[lesson]]``, a misspelt or
            missing key, a value of the wrong type); an empty id, title or note; a
            repeated id; a lesson without steps; an unknown page.
    """
    doc = check_tables(load_toml(text, "the lessons file", LessonError), (LESSON,), LessonError)
    out: list[Lesson] = []
    for n, raw in enumerate(doc["lesson"], 1):
        lid, title = raw["id"].strip(), raw["title"].strip()
        if not lid or not title:
            raise LessonError(f"lesson {n} needs an id and a title (one is empty)")
        if any(les.id == lid for les in out):
            raise LessonError(f"lesson id {lid!r} is used twice")
        steps = tuple(_step(lid, k, s, pages) for k, s in enumerate(raw["step"], 1))
        if not steps:
            raise LessonError(f"lesson {lid!r} has no steps: add [[lesson.step]] tables")
        out.append(Lesson(lid, title, steps))
    return out


def _step(lid: str, k: int, raw: dict, pages: set[str] | None) -> Step:
    page = raw["page"].strip().strip("/")
    page = "" if page == "start" else page
    if pages is not None and page not in pages:
        raise LessonError(
            f"lesson {lid!r} step {k}: 'page' {page or 'start'!r} is no page of the app "
            f"(pages: {', '.join(sorted(p or 'start' for p in pages))})"
        )
    note = " ".join(raw["note"].split())
    if not note:
        raise LessonError(f"lesson {lid!r} step {k} has no note ('note' is empty)")
    params = dict(parse_qsl(raw.get("query", ""), keep_blank_values=False))
    return Step(page, params, note)


def load_lessons(path: Path | str, pages: set[str] | None = None) -> list[Lesson]:
    """Lessons from a file (see :func:`parse_lessons`).

    Raises:
        LessonError: see :func:`parse_lessons`; OSError: the file cannot be read.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LessonError(
            f"the lessons file is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None
    return parse_lessons(text, pages)
