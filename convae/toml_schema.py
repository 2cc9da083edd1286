"""The small TOML files a teacher edits (lessons, class questions), checked against a schema.

Such a file is a few arrays of tables (``[[lesson]]``, and ``[[lesson.step]]`` inside each
lesson), each table with a few known keys. A teacher's typing mistakes must come back as
one sentence that names the table, its place and the key, never as a crash deep in the app
or as a key silently ignored: a ``[lesson]`` written for ``[[lesson]]``, a ``step = "x"``
where tables belong, a misspelt key (with the nearest known key suggested), a value of the
wrong type, a missing key.

A schema is a tuple of :class:`Table`; :func:`check_tables` checks a parsed document
against it and returns the tables as plain dicts, ready for the file's own checks of
meaning (a page that exists, an id used once). The error class is the caller's (a
subclass of :class:`TomlFileError`), so each file keeps its own.
"""

from __future__ import annotations

import datetime as dt
import difflib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class TomlFileError(ValueError):
    """A teacher's TOML file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Key:
    """One key a table may hold.

    Attributes:
        kind: the Python type of its value as tomllib reads it: str, int, float, bool or
            list (an int is accepted where a float is asked; a bool never as a number).
        required: the table is unusable without it.
        items: for a list, the type of its items (e.g. str: a list of text).
    """

    kind: type
    required: bool = False
    items: type | None = None


@dataclass(frozen=True)
class Table:
    """An array of tables (``[[name]]``) and what each may hold.

    Attributes:
        name: its key in the file, e.g. "lesson" (or "step" inside a lesson).
        keys: the keys a table may hold.
        label: the key whose value names a table in messages (e.g. "id": "lesson
            'squeeze'"); without it, or before it is known, tables go by number.
        tables: arrays of tables inside each table (``[[lesson.step]]``).
    """

    name: str
    keys: Mapping[str, Key]
    label: str | None = None
    tables: tuple[Table, ...] = field(default_factory=tuple)


_KIND_WORDS = {
    str: "text",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def describe(value: object) -> str:
    """A TOML value in words, for messages: "text ('x')", "a whole number (3)", ..."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dt.date | dt.time):
        return f"a date or time ({value})"
    words = _KIND_WORDS.get(type(value), type(value).__name__)
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"{words} ({shown})"


def load_toml(text: str, what: str, error: type[TomlFileError]) -> dict:
    """Parse TOML text, a syntax error reported as ``error`` ("<what> is not valid TOML: ...").

    Args:
        text: the file's content.
        what: how to call the file, e.g. "the lessons file".
        error: the exception class to raise.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} is not valid TOML: {exc}") from None


def check_tables(
    doc: Mapping[str, object], tables: Sequence[Table], error: type[TomlFileError]
) -> dict[str, list[dict]]:
    """Check a parsed file against its schema: only known arrays of tables at the top,
    each table with known keys of the right types and every required key.

    Args:
        doc: the parsed file (:func:`load_toml`).
        tables: the arrays of tables the file may hold.
        error: the exception class to raise.

    Returns:
        Each array's tables by name (an absent array: []), inner arrays likewise under
        their name in each table.

    Raises:
        ``error``: the first problem, naming the table, its place and the key.
    """
    known = {t.name: t for t in tables}
    for key in doc:
        if key not in known:
            raise error(_unknown(key, list(known), "at the top of the file", tables=True))
    return {t.name: _check_array(doc.get(t.name, []), t, "", t.name, error) for t in tables}


def _check_array(value: object, table: Table, where: str, path: str, error: type) -> list[dict]:
    """An array of tables at ``path`` ("lesson.step") inside the table ``where`` names."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        hint = f": write [[{path}]], with double brackets" if isinstance(value, dict) else ""
        inside = f"{where}: " if where else ""
        raise error(
            f"{inside}{table.name!r} must be a list of [[{path}]] tables, got "
            f"{describe(value)}{hint}"
        )
    return [_check_table(raw, n, table, where, path, error) for n, raw in enumerate(value, 1)]


def _check_table(raw: dict, n: int, table: Table, parent: str, path: str, error: type) -> dict:
    name = raw.get(table.label) if table.label else None
    own = (
        f"{table.name} {name!r}" if isinstance(name, str) and name.strip() else f"{table.name} {n}"
    )
    where = f"{parent} {own}" if parent else own
    inner = {t.name: t for t in table.tables}
    out: dict = {}
    for key, value in raw.items():
        if key in inner:
            out[key] = _check_array(value, inner[key], where, f"{path}.{key}", error)
        elif key not in table.keys:
            known = [*table.keys, *inner]
            raise error(f"{where}: " + _unknown(key, known, f"in a {table.name}"))
        elif not _fits(value, table.keys[key]):
            kind = _kind_words(table.keys[key])
            raise error(f"{where}: {key!r} must be {kind}, got {describe(value)}")
        else:
            out[key] = value
    for key, spec in table.keys.items():
        if spec.required and key not in raw:
            raise error(f"{where} has no {key!r}")
    for t in table.tables:
        out.setdefault(t.name, [])
    return out


def _fits(value: object, key: Key) -> bool:
    if isinstance(value, bool) and key.kind is not bool:  # bool is an int in Python
        return False
    kinds = (int, float) if key.kind is float else (key.kind,)
    if not isinstance(value, kinds):
        return False
    return key.items is None or all(_fits(v, Key(key.items)) for v in value)


def _kind_words(key: Key) -> str:
    words = _KIND_WORDS.get(key.kind, key.kind.__name__)
    if key.kind is list and key.items is not None:
        words += f" of {_KIND_WORDS.get(key.items, key.items.__name__)}"
    return words


def _unknown(key: str, known: list[str], where: str, tables: bool = False) -> str:
    """ "unknown key 'nots' in a step (did you mean 'note'?; a step has page, query, note)"."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    guess = f"did you mean {close[0]!r}? " if close else ""
    listed = ", ".join(f"[[{k}]]" if tables else k for k in known)
    return f"unknown key {key!r} {where} ({guess}known: {listed})"
