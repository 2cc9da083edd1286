"""Class questions on the Class page (not a page): the teacher asks, students answer on
their own devices, the projector shows the live tally, then the answer and its reason.

The questions are the file's (``questions.toml`` next to the lessons file, read by
convae.classroom.questions) and three built-in kinds: a blind quiz ("which decoder drew
this?") and "which of 4 will the model rebuild worst?" on random test pictures with the
shipped models, and the teacher's own choice question typed in class. A picture question
is measured by convae.classroom.quiz in the teacher's session when it is asked; every
student's session rebuilds the same pictures from the question and its seed (one shared
cache entry for the class, pages/glue/caches.py).

Widget keys (stable, for a load generator): ``class_question_pick`` and ``class_ask`` (the
teacher's question and Ask), ``class_reveal``, ``class_clear``, ``class_export``; a
student's answers are ``class_answer_0``, ``class_answer_1``, ... in the question's option
order (A, B, ... for the picture kinds).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import plotly.graph_objects as go
import streamlit as st

from convae.catalog import ModelEntry
from convae.classroom import (
    ClassError,
    ClassStoreUnavailable,
    Lead,
    PictureRef,
    Question,
    QuestionError,
    QuestionState,
    Tally,
    choice_question,
)
from convae.classroom.quiz import PreparedQuestion
from convae.data import DataSet
from convae.figures import to_uint8
from convae.figures.html import OptionCard, option_cards_html
from pages.glue import caches, classroom, draw, lessons
from pages.glue.state import shipped_models

TALLY_REFRESH_S = 2.0
BUILTIN_BLIND, BUILTIN_WORST = "builtin:blind", "builtin:worst"
UNAVAILABLE = "The class store cannot be reached: try again when it is back."


def questions_file():
    """``questions.toml`` beside the lessons file (``$CONVAE_LESSONS`` moves both)."""
    return lessons.lessons_file().parent / "questions.toml"


def _shipped(data: DataSet) -> dict[str, ModelEntry]:
    return {k: m for k, m in shipped_models()[0].items() if m.fits(data)}


def _pair(models: Mapping[str, ModelEntry]) -> tuple[str, str] | None:
    """Two shipped models with different decoders, the transpose one first if there is one."""
    keys = sorted(models, key=lambda k: models[k].config.decoder != "transpose")
    for a in keys:
        for b in keys:
            if models[a].config.decoder != models[b].config.decoder:
                return a, b
    return None


def _random_refs(data: DataSet, n: int) -> tuple[PictureRef, ...]:
    """``n`` different test pictures, of different classes while there are enough."""
    rng = random.Random()
    counts = {c: k for c, k in data.test.class_counts().items() if k}
    classes = rng.sample(sorted(counts), min(n, len(counts)))
    picked = {PictureRef(c, rng.randrange(counts[c])) for c in classes}
    pool = [PictureRef(c, i) for c, k in counts.items() for i in range(min(k, 100))]
    while len(picked) < n:  # fewer classes than pictures wanted
        picked.add(rng.choice(pool))
    return tuple(sorted(picked, key=str))  # the question's seed shuffles them when asked


def builtin(kind: str, data: DataSet) -> Question | None:
    """A built-in picture question on random test pictures (None without the models)."""
    models = _shipped(data)
    if kind == BUILTIN_BLIND and (pair := _pair(models)):
        drawn = models[pair[0]].config.decoder
        return Question(
            "blind-quiz",
            "which-decoder",
            f"One of these two was drawn by the {drawn} decoder. Which one?",
            ("A", "B"),
            models=pair,
            pictures=_random_refs(data, 1),
        )
    if kind == BUILTIN_WORST and models and len(data.test) >= 4:
        return Question(
            "worst-of-four",
            "worst",
            "Which of these will the model rebuild worst?",
            ("A", "B", "C", "D"),
            models=(next(iter(models)),),
            pictures=_random_refs(data, 4),
        )
    return None


def _problem(q: Question, models: Mapping[str, ModelEntry], data: DataSet) -> str | None:
    missing = [k for k in q.models if k not in models]
    if missing:
        return f"{q.id}: needs {', '.join(missing)}, which this server does not have"
    gone = [p.cls for p in q.pictures if p.cls not in data.classes]
    return f"{q.id}: this data set has no class {gone[0]!r}" if gone else None


def catalogue(data: DataSet) -> tuple[dict[str, str], dict[str, Question], list[str]]:
    """The questions the teacher may ask here: picker id -> label, id -> question (the
    built-ins are made when asked), and a line per file question that cannot be used."""
    got = caches.class_questions(questions_file())
    if isinstance(got, str):
        st.error(f"The questions file is off: {got}", icon=":material/quiz:")
        got = []
    models = _shipped(data)
    labels: dict[str, str] = {}
    found: dict[str, Question] = {}
    skipped = []
    for q in got:
        if why := _problem(q, models, data):
            skipped.append(why)
            continue
        labels[q.id], found[q.id] = f"{q.prompt} ({q.id})", q
    if _pair(models):
        labels[BUILTIN_BLIND] = "Which decoder drew this? (blind quiz, a random test picture)"
    if models and len(data.test) >= 4:
        labels[BUILTIN_WORST] = "Which of 4 random test pictures will the model rebuild worst?"
    return labels, found, skipped


def ask(the_lead: Lead, q: Question | None, data: DataSet) -> str | None:
    """Measure a question (picture kinds) and put it on every screen; an error line or None."""
    svc = classroom.service()
    if q is None:  # a built-in kind whose models this server does not have
        return "This question needs models this server does not have."
    try:
        prepared = None
        if q.kind != "choice":
            seed = q.seed if q.seed is not None else random.randrange(2**31)
            prepared = caches.prepared_question(q, _shipped(data), data, seed)
        svc.ask(the_lead, q, prepared)
    except ClassStoreUnavailable:
        return UNAVAILABLE
    except (QuestionError, ClassError, ValueError) as exc:
        return str(exc)
    return None


def own_question(prompt: str, options_text: str, answer: str) -> Question | str:
    """The teacher's own choice question from the form, or what is wrong with it."""
    options = [o.strip() for o in options_text.splitlines() if o.strip()]
    try:
        return choice_question(prompt, options, answer.strip() or None)
    except QuestionError as exc:
        return str(exc).replace("your question: question 1 ('own'), ", "")


# ------------------------------------------------------------------ drawing a question


def _prepared(qs: QuestionState, data: DataSet | None) -> PreparedQuestion | str | None:
    if qs.question.kind == "choice":
        return None
    if data is None:
        return "The pictures of this question need the data set, which is missing here."
    try:
        return caches.prepared_question(qs.question, _shipped(data), data, qs.seed)
    except QuestionError as exc:
        return str(exc)


def _caption(qs: QuestionState, letter: str) -> str:
    if qs.state != "revealed":
        return ""
    fig = qs.figures.get(letter, {})
    parts = [qs.labels.get(letter, "")]
    if "psnr" in fig:
        parts.append(f"{fig['psnr']:.1f} dB")
    if "blockiness4" in fig:
        parts.append(f"tiles {fig['blockiness4']:.1f} (floor {fig['blockiness4_floor']:.1f})")
    return " · ".join(p for p in parts if p)


def show_question(qs: QuestionState, data: DataSet | None) -> None:
    """The prompt and, for a picture question, its pictures at true size and enlarged
    (names hidden until the reveal: the alt texts say "picture A", never the model)."""
    st.subheader(qs.question.prompt)
    prepared = _prepared(qs, data)
    if isinstance(prepared, str):
        st.warning(prepared)
        return
    if prepared is None:
        return
    cards = []
    if prepared.input is not None:
        ref = qs.question.pictures[0]
        cards.append(OptionCard("original", to_uint8(prepared.input), f"the test picture, {ref}"))
    revealed = qs.state == "revealed"
    shown = prepared.rebuilt if revealed and qs.question.kind == "worst" else prepared.pictures
    for letter in qs.question.options:
        # Before the reveal the alt text names the letter alone: it must not give it away.
        caption = _caption(qs, letter)
        alt = f"picture {letter}" + (f": {caption}" if caption else "")
        if revealed and qs.question.kind == "worst":
            alt += ", as the model rebuilt it"
        cards.append(OptionCard(letter, to_uint8(shown[letter]), alt, caption))
    draw.html(option_cards_html(cards, title="The question's pictures"))
    if revealed and qs.question.kind == "worst":
        st.caption("Shown now: what the model rebuilt of each picture, with its PSNR.")


def show_reveal(qs: QuestionState, mine: str | None = None) -> None:
    """The right answer and the measured reason (and whether the student had it)."""
    if qs.state != "revealed":
        return
    if qs.correct is None:
        st.info("This question has no single right answer.", icon=":material/forum:")
        return
    right = f"The right answer: **{qs.correct}**"
    if mine is not None:
        right += " (yours too)" if mine == qs.correct else f" (you chose {mine})"
    st.success(right, icon=":material/check_circle:")
    if qs.reason:
        st.markdown(qs.reason)


def tally_chart(t: Tally, key: str) -> None:
    """Answers per option as bars (the right one green once known), with a text summary."""
    options = list(t.counts)
    colours = [
        "#15803d" if t.state == "revealed" and o == t.correct else "#1d4ed8" for o in options
    ]
    fig = go.Figure(
        go.Bar(
            x=[t.counts[o] for o in options],
            y=options,
            orientation="h",
            marker_color=colours,
            text=[t.counts[o] for o in options],
            textposition="auto",
        )
    )
    fig.update_layout(
        title=f"Answers so far: {t.answers}",
        xaxis_title="answers",
        yaxis={"autorange": "reversed", "type": "category"},
        height=120 + 40 * len(options),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    summary = ", ".join(f"{o}: {n}" for o, n in t.counts.items())
    draw.chart(fig, key=key, summary=f"{t.answers} answer{'s' * (t.answers != 1)}: {summary}.")


# ------------------------------------------------------------------ the teacher's side


@draw.fragment(run_every=TALLY_REFRESH_S, key="class_tally")
def live_tally() -> None:
    """The teacher's live tally and count (refreshed every couple of seconds)."""
    svc, the_lead = classroom.service(), classroom.lead()
    if svc is None or the_lead is None:
        return
    try:
        t = svc.tally(the_lead)
        seen = svc.attendance(the_lead)
    except ClassStoreUnavailable:
        st.warning(classroom.OFFLINE_TEACHER, icon=":material/cloud_off:")
        return
    except ClassError as exc:
        st.info(str(exc))
        return
    if t is None:
        return
    st.metric(
        "Answers",
        f"{t.answers} of {seen.present}",
        help="Answers to this question, of the students present (one per student; "
        "a second click changes it).",
    )
    tally_chart(t, key="class_tally_chart")


def teacher_controls(the_lead: Lead, qs: QuestionState) -> None:
    """Reveal, take the question away, export every answer as CSV."""
    svc = classroom.service()
    c1, c2, c3 = st.columns(3)
    if c1.button(
        "Reveal the answer",
        key="class_reveal",
        type="primary",
        disabled=qs.state == "revealed",
        width="stretch",
    ):
        _act(lambda: svc.reveal(the_lead))
    if c2.button("Take it off the screens", key="class_clear", width="stretch"):
        _act(lambda: svc.clear_question(the_lead))
    try:
        csv_text = svc.export_csv(the_lead)
    except ClassError:
        return
    c3.download_button(
        "Export the answers (CSV)",
        csv_text,
        file_name=f"class-{the_lead.info.code}-answers.csv",
        mime="text/csv",
        key="class_export",
        on_click="ignore",
        width="stretch",
    )


def _act(call) -> None:
    try:
        call()
    except ClassStoreUnavailable:
        st.error(UNAVAILABLE)
        return
    except ClassError as exc:
        st.error(str(exc))
        return
    st.rerun()


# ------------------------------------------------------------------ the student's side


def _answer(qid: str, option: str) -> None:
    svc, s = classroom.service(), classroom.seat()
    if svc is None or s is None:
        return
    try:
        svc.answer(s, qid, option)
    except ClassStoreUnavailable:
        classroom.notify("warning", "Your answer did not arrive: the class cannot be reached.")
        return
    except ClassError as exc:
        classroom.notify("warning", str(exc))
        return
    st.session_state.setdefault(classroom.ANSWERS, {})[qid] = option


def answer_buttons(qs: QuestionState) -> str | None:
    """Large buttons, one per option (a second tap changes the answer); returns the
    student's answer so far."""
    mine = st.session_state.get(classroom.ANSWERS, {}).get(qs.qid)
    options = list(qs.question.options)
    open_ = qs.state == "open"
    with st.container(key="class_answers"):
        cols = st.columns(min(len(options), 4)) if qs.question.kind != "choice" else None
        for i, option in enumerate(options):
            where = cols[i % len(cols)] if cols else st
            where.button(
                option,
                key=f"class_answer_{i}",
                on_click=_answer,
                args=(qs.qid, option),
                type="primary" if option == mine else "secondary",
                disabled=not open_,
                width="stretch",
            )
    if mine is not None:
        st.markdown(f"Your answer: **{mine}**" + (" (you can change it)" if open_ else ""))
    elif not open_:
        st.caption("Answers are closed.")
    return mine
