"""Lessons in presentation mode (not a page): start one from the sidebar, then step
through its views with Next / Previous while its note shows above the page.

A step is a page plus the settings of a shared link (pages/links.py), so it opens exactly
as that link would; the lesson and step are in the address too (``lesson=..&lstep=..``),
so a link opens a lesson where it was left. In a live class the lesson is part of the
teacher's view: a following student sees its note and step, and the teacher steps it.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from convae.lessons import Lesson
from pages.glue import caches, classroom, draw

# The teacher's file; $CONVAE_LESSONS points elsewhere (tests, a school's own lessons).
LESSONS_FILE = Path(__file__).resolve().parents[2] / "lessons" / "lessons.toml"


def lessons_file() -> Path:
    return Path(os.environ.get("CONVAE_LESSONS") or LESSONS_FILE)


def lessons(pages: dict) -> list[Lesson]:
    """The lessons, or none with a warning in the sidebar saying what is wrong with the file."""
    got = caches.lessons(lessons_file(), set(pages))
    if isinstance(got, str):
        st.sidebar.warning(f"Lessons are off: {got} ({lessons_file().name})")
        return []
    return got


def _go(lesson: Lesson, step: int, pages: dict, models: dict, data) -> None:
    """Show ``step`` of ``lesson``: its settings, then its page."""
    state = st.session_state
    state["lesson_id"], state["lesson_step"] = lesson.id, step
    s = lesson.steps[step]
    # Widgets of this run already hold their values; the next run applies the step's
    # settings before any widget is drawn (pages/common.py's render_sidebar).
    state["links_pending"] = {**s.params, "present": "1"}
    st.switch_page(pages[s.page])


def sidebar(pages: dict, models: dict, data) -> None:
    """The lesson picker (presentation mode only)."""
    if not draw.presenting():
        return
    all_lessons = lessons(pages)
    if not all_lessons or st.session_state.get("lesson_id"):
        return
    by_id = {les.id: les for les in all_lessons}
    with st.sidebar:
        lid = st.selectbox(
            "Lesson", list(by_id), key="lesson_pick", format_func=lambda i: by_id[i].title
        )
        if st.button("Start the lesson", key="lesson_start", icon=":material/school:"):
            _go(by_id[lid], 0, pages, models, data)


def banner(pages: dict, models: dict, data) -> None:
    """Above the page: the lesson's note and its Previous / Next / End buttons."""
    state = st.session_state
    lid = state.get("lesson_id")
    if not lid:
        return
    by_id = {les.id: les for les in lessons(pages)}
    lesson = by_id.get(lid)
    if lesson is None:
        state.pop("lesson_id", None)
        return
    step = max(0, min(int(state.get("lesson_step", 0)), len(lesson.steps) - 1))
    with st.container(border=True, key="lesson_banner"):
        st.markdown(f"**{lesson.title}** · step {step + 1} of {len(lesson.steps)}")
        draw.takeaway(lesson.steps[step].note)
        if classroom.following():  # the teacher steps it; Explore on my own frees the buttons
            st.caption("Your teacher steps through this lesson; your screen follows.")
            return
        b1, b2, b3, _ = st.columns([1, 1, 1, 3])
        prev = b1.button("◀ Previous", key="lesson_prev", disabled=step == 0, width="stretch")
        last = step == len(lesson.steps) - 1
        nxt = b2.button("Next ▶", key="lesson_next", disabled=last, type="primary", width="stretch")
        end = b3.button("End lesson", key="lesson_end", width="stretch")
    if end:
        for k in ("lesson_id", "lesson_step"):
            state.pop(k, None)
        st.rerun()
    if prev or nxt:
        _go(lesson, step + (1 if nxt else -1), pages, models, data)
