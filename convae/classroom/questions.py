"""Class questions: three built-in kinds, and a TOML file of questions next to the lessons.

The file (the app reads ``lessons/questions.toml``) is in the lessons file's style: one
``[[question]]`` table per question, plain keys, a comment saying what each is for::

    [[question]]
    id = "tiles-airplane"                      # unique in the file
    kind = "which-decoder"                     # a blind quiz: which picture did it draw?
    prompt = "One of these was drawn by the transpose decoder. Which one?"
    drawn_by = "shipped:cifar10-transpose.pt"  # its picture is the right answer
    other = "shipped:cifar10-upsample.pt"      # the decoy
    picture = { class = "airplane", i = 4 }    # a test picture, as Layers' class and number

    [[question]]
    id = "worst-four"
    kind = "worst"                             # which of 4 pictures is rebuilt worst?
    prompt = "Which of these will the model rebuild worst?"
    model = "shipped:cifar10-upsample.pt"
    pictures = [{ class = "cat", i = 0 }, { class = "ship", i = 1 },
                { class = "frog", i = 2 }, { class = "truck", i = 3 }]

    [[question]]
    id = "code-size"
    kind = "choice"                            # the teacher's own options
    prompt = "How many numbers does the code hold?"
    options = ["64", "256", "3,072"]
    answer = "256"                             # optional: the right one
    reason = "4 maps of 8x8."                  # optional: said when the answer is revealed

``seed`` (an integer) may be given to the two picture kinds to fix the order in which the
pictures appear (otherwise it is drawn when the question is asked). Models are named as in
a shared link; only shipped checkpoints can be used, since every student's session must
build the same pictures. A bad file gives one :class:`QuestionError` naming the question,
the key and what is wrong.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import QuestionError

KINDS = {
    "which-decoder": "a blind quiz: two models rebuild one test picture; which did this one draw?",
    "worst": "which of 4 test pictures a model rebuilds worst",
    "choice": "the teacher's own options",
}
OPTION_LETTERS = {"which-decoder": ("A", "B"), "worst": ("A", "B", "C", "D")}
COMMON_KEYS = {"id", "kind", "prompt"}
KIND_KEYS = {
    "which-decoder": {"drawn_by", "other", "picture", "seed"},
    "worst": {"model", "pictures", "seed"},
    "choice": {"options", "answer", "reason"},
}
REQUIRED = {
    "which-decoder": ("drawn_by", "other", "picture"),
    "worst": ("model", "pictures"),
    "choice": ("options",),
}
MAX_OPTIONS = 8
MAX_TEXT = 500  # characters in a prompt, an option or a reason
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHIPPED = re.compile(r"shipped:[^\s,]+")


@dataclass(frozen=True)
class PictureRef:
    """A test picture, named as the Layers page names it: its class and its number among
    the test pictures of that class."""

    cls: str
    index: int

    def __str__(self) -> str:
        return f"{self.cls} #{self.index}"


@dataclass(frozen=True)
class Question:
    """One question.

    Attributes:
        id: unique among the file's questions.
        kind: "which-decoder", "worst" or "choice".
        prompt: what the students read.
        options: what they choose among ("A", "B" / "A".."D" for the picture kinds).
        answer: the right option of a choice question, or None (the picture kinds measure
            theirs when asked: :mod:`convae.classroom.quiz`).
        reason: what a choice question's reveal says.
        models: the model keys: (drawn_by, other) for which-decoder, (model,) for worst.
        pictures: one picture for which-decoder, four for worst.
        seed: fixes the pictures' order, or None (drawn when asked).
    """

    id: str
    kind: str
    prompt: str
    options: tuple[str, ...]
    answer: str | None = None
    reason: str = ""
    models: tuple[str, ...] = ()
    pictures: tuple[PictureRef, ...] = ()
    seed: int | None = None

    def to_dict(self) -> dict:
        """A JSON-able dict (what a class record keeps); :meth:`from_dict` reads it back."""
        return {
            "id": self.id,
            "kind": self.kind,
            "prompt": self.prompt,
            "options": list(self.options),
            "answer": self.answer,
            "reason": self.reason,
            "models": list(self.models),
            "pictures": [[p.cls, p.index] for p in self.pictures],
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Question:
        return cls(
            d["id"],
            d["kind"],
            d["prompt"],
            tuple(d["options"]),
            d["answer"],
            d["reason"],
            tuple(d["models"]),
            tuple(PictureRef(c, int(i)) for c, i in d["pictures"]),
            d["seed"],
        )


class _Reader:
    """Reads one question table, raising a QuestionError that names where it is."""

    def __init__(self, raw: Mapping, n: int, where: str) -> None:
        self.raw, self.n, self.where = raw, n, where
        qid = raw.get("id") if isinstance(raw, Mapping) else None
        self.qid = qid if isinstance(qid, str) else None

    def fail(self, key: str | None, what: str) -> QuestionError:
        name = f"question {self.n}" + (f" ({self.qid!r})" if self.qid else "")
        at = f", key {key!r}" if key else ""
        return QuestionError(f"{self.where}: {name}{at}: {what}")

    def text(self, key: str, required: bool = True, default: str = "") -> str:
        if key not in self.raw:
            if required:
                raise self.fail(key, "is missing")
            return default
        value = self.raw[key]
        if not isinstance(value, str):
            raise self.fail(key, f"must be text in quotes, not {type(value).__name__} {value!r}")
        value = " ".join(value.split())
        if not value and required:
            raise self.fail(key, "is empty")
        if len(value) > MAX_TEXT:
            raise self.fail(key, f"is longer than {MAX_TEXT} characters")
        return value

    def integer(self, key: str, value: object, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number, not {type(value).__name__} {value!r}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, not {value}")
        return value

    def model(self, key: str, known: Collection[str] | None) -> str:
        value = self.text(key)
        if not _SHIPPED.fullmatch(value):
            raise self.fail(
                key,
                f"{value!r} is not a shipped model: write 'shipped:<file>.pt' (every "
                "student's session must have the same model)",
            )
        if known is not None and value not in known:
            raise self.fail(key, f"no model {value!r} here (models: {', '.join(sorted(known))})")
        return value

    def picture(self, key: str, value: object, classes: Collection[str] | None) -> PictureRef:
        if not isinstance(value, Mapping) or set(value) != {"class", "i"}:
            raise self.fail(key, 'a picture is written { class = "cat", i = 3 }')
        cls = value["class"]
        if not isinstance(cls, str) or not cls:
            raise self.fail(key, f"a picture's class must be a class name in quotes, not {cls!r}")
        if classes is not None and cls not in classes:
            raise self.fail(key, f"no class {cls!r} (classes: {', '.join(classes)})")
        return PictureRef(cls, self.integer(f"{key}.i", value["i"]))


def _check_keys(r: _Reader, kind: str) -> None:
    allowed = COMMON_KEYS | KIND_KEYS[kind]
    for key in r.raw:
        if key not in allowed:
            raise r.fail(
                key, f"is not a key of a {kind!r} question (keys: {', '.join(sorted(allowed))})"
            )
    for key in REQUIRED[kind]:
        if key not in r.raw:
            raise r.fail(key, f"is missing (a {kind!r} question needs {', '.join(REQUIRED[kind])})")


def _choice(r: _Reader, qid: str, prompt: str) -> Question:
    options = r.raw["options"]
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise r.fail("options", 'must be a list of texts, e.g. ["yes", "no"]')
    options = [" ".join(o.split()) for o in options]
    if not 2 <= len(options) <= MAX_OPTIONS:
        raise r.fail("options", f"needs 2 to {MAX_OPTIONS} options, not {len(options)}")
    if any(not o or len(o) > MAX_TEXT for o in options):
        raise r.fail("options", f"every option must be 1 to {MAX_TEXT} characters")
    if len(set(options)) != len(options):
        raise r.fail("options", "has the same option twice")
    answer = r.text("answer", required=False) or None
    if answer is not None and answer not in options:
        raise r.fail("answer", f"{answer!r} is not one of the options ({', '.join(options)})")
    reason = r.text("reason", required=False)
    return Question(qid, "choice", prompt, tuple(options), answer, reason)


def _pictured(r: _Reader, qid: str, prompt: str, models, classes) -> Question:
    kind = r.raw["kind"]
    seed = r.integer("seed", r.raw["seed"]) if "seed" in r.raw else None
    if kind == "which-decoder":
        keys = (r.model("drawn_by", models), r.model("other", models))
        if keys[0] == keys[1]:
            raise r.fail("other", "must be another model than drawn_by")
        pictures = (r.picture("picture", r.raw["picture"], classes),)
    else:
        keys = (r.model("model", models),)
        raw = r.raw["pictures"]
        if not isinstance(raw, list) or len(raw) != len(OPTION_LETTERS["worst"]):
            raise r.fail("pictures", f"needs exactly {len(OPTION_LETTERS['worst'])} pictures")
        pictures = tuple(r.picture("pictures", p, classes) for p in raw)
        if len(set(pictures)) != len(pictures):
            raise r.fail("pictures", "has the same picture twice")
    return Question(qid, kind, prompt, OPTION_LETTERS[kind], None, "", keys, pictures, seed)


def _question(r: _Reader, models, classes) -> Question:
    if not isinstance(r.raw, Mapping):
        raise r.fail(None, "is not a table: write it as [[question]] with keys under it")
    qid = r.text("id")
    if not _ID.fullmatch(qid):
        raise r.fail("id", f"{qid!r} must be letters, digits, '-' or '_' (at most 64)")
    kind = r.text("kind")
    if kind not in KINDS:
        raise r.fail("kind", f"{kind!r} is not a question kind ({', '.join(KINDS)})")
    _check_keys(r, kind)
    prompt = r.text("prompt")
    if kind == "choice":
        return _choice(r, qid, prompt)
    return _pictured(r, qid, prompt, models, classes)


def parse_questions(
    text: str,
    models: Collection[str] | None = None,
    classes: Collection[str] | None = None,
    where: str = "the questions file",
) -> list[Question]:
    """Questions from TOML text.

    Args:
        text: the file's content.
        models: the model keys that exist (e.g. {"shipped:cifar10-transpose.pt", ...});
            None skips that check.
        classes: the data set's class names; None skips that check.
        where: how messages name the file.

    Returns:
        The questions in file order.

    Raises:
        QuestionError: bad TOML, an unknown top-level key, a question that is not a table,
            a missing or empty id, kind or prompt, an unknown kind, an unknown key, a value
            of the wrong type, options missing or repeated for a choice, an answer not
            among the options, a model or picture that is not usable, a repeated id.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QuestionError(f"{where} is not valid TOML: {exc}") from None
    extra = sorted(set(doc) - {"question"})
    if extra:
        raise QuestionError(
            f"{where}: unknown top-level key {extra[0]!r}: write questions as [[question]]"
        )
    raw = doc.get("question", [])
    if not isinstance(raw, list):
        raise QuestionError(f"{where}: write each question as a [[question]] table")
    out: list[Question] = []
    for n, table in enumerate(raw, 1):
        q = _question(_Reader(table, n, where), models, classes)
        if any(other.id == q.id for other in out):
            raise _Reader(table, n, where).fail("id", f"{q.id!r} is used by another question")
        out.append(q)
    return out


def load_questions(
    path: Path | str,
    models: Collection[str] | None = None,
    classes: Collection[str] | None = None,
) -> list[Question]:
    """Questions from a file (see :func:`parse_questions`); a missing file has none.

    Raises:
        QuestionError: as :func:`parse_questions`, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        return []
    return parse_questions(path.read_text(encoding="utf-8"), models, classes, where=str(path))


def choice_question(
    prompt: str, options: list[str], answer: str | None = None, qid: str = "own"
) -> Question:
    """A choice question the teacher types in class (same checks as in the file).

    Raises:
        QuestionError: an empty prompt, fewer than 2 or repeated options, an answer that is
            not an option.
    """
    raw = {"id": qid, "kind": "choice", "prompt": prompt, "options": list(options)}
    if answer:
        raw["answer"] = answer
    return _question(_Reader(raw, 1, "your question"), None, None)
