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

import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl


class LessonError(ValueError):
    """A lessons file that cannot be used; the message names the lesson and step."""


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
        LessonError: bad TOML, a lesson without id, title or steps, a repeated id, an
            unknown page, a step without a note.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LessonError(f"the lessons file is not valid TOML: {exc}") from None
    out: list[Lesson] = []
    for n, raw in enumerate(doc.get("lesson", []), 1):
        lid, title = str(raw.get("id", "")).strip(), str(raw.get("title", "")).strip()
        if not lid or not title:
            raise LessonError(f"lesson {n} needs an id and a title")
        if any(les.id == lid for les in out):
            raise LessonError(f"lesson id {lid!r} is used twice")
        steps = []
        for k, s in enumerate(raw.get("step", []), 1):
            page = str(s.get("page", "")).strip().strip("/")
            page = "" if page == "start" else page
            if pages is not None and page not in pages:
                raise LessonError(
                    f"lesson {lid!r} step {k}: no page {page!r} "
                    f"(pages: {', '.join(sorted(p or 'start' for p in pages))})"
                )
            note = str(s.get("note", "")).strip()
            if not note:
                raise LessonError(f"lesson {lid!r} step {k} has no note")
            params = dict(parse_qsl(str(s.get("query", "")), keep_blank_values=False))
            steps.append(Step(page, params, " ".join(note.split())))
        if not steps:
            raise LessonError(f"lesson {lid!r} has no steps")
        out.append(Lesson(lid, title, tuple(steps)))
    return out


def load_lessons(path: Path | str, pages: set[str] | None = None) -> list[Lesson]:
    """Lessons from a file (see :func:`parse_lessons`)."""
    return parse_lessons(Path(path).read_text(encoding="utf-8"), pages)
