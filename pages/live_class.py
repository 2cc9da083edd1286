"""Class: a live class. The teacher starts one (a code, a link and a QR code for the
projector), leads (every following screen shows the teacher's view), asks questions and
reveals the answers; students join here and answer on their own devices, anonymously.

Roles, following and the permission checks are in pages/glue/classroom.py and the
library (convae.classroom); the questions' parts in pages/glue/class_questions.py.
"""

from __future__ import annotations

import streamlit as st

from convae.classroom import ClassError, ClassStoreUnavailable
from pages.glue import class_questions as cq
from pages.glue import classroom, draw
from pages.glue.state import current_data

st.title("Live class")
room = classroom.room()
if isinstance(room, str):
    st.error(f"Live classes are off on this server: {room}", icon=":material/block:")
    st.stop()
svc = room[0]
data = current_data()
# Each role's part is a function that returns, never st.stop(): the end of the run is
# where a teacher's view goes to the class (pages/glue/classroom.py).


def visitor() -> None:
    draw.takeaway(
        "Join your teacher's class: type the code on their screen (or scan its QR code). "
        "Your screen then follows theirs, and you answer their questions here. Nobody asks "
        "your name."
    )
    classroom.join_form()
    with st.expander("Teacher sign-in", icon=":material/key:"):
        classroom.sign_in_form()


def teacher_start() -> None:
    draw.takeaway(
        "Start a class: students join with a short code, a link or a QR code, their screens "
        "follow yours, and they answer your questions on their own devices."
    )
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    hours = c1.selectbox(
        "The class ends by itself after",
        [1, 2, 3, 4, 6, 8],
        index=2,
        key="class_hours",
        format_func=lambda h: f"{h} hour{'s' * (h != 1)}",
    )
    if c2.button("Start a class", key="class_start", type="primary", icon=":material/groups:"):
        classroom.start_class(hours)
        st.rerun()
    with st.expander("Lead a class you started before (after a reload)"):
        code = st.text_input("Its code", key="class_resume_code", max_chars=12)
        if st.button("Lead it", key="class_resume"):
            classroom.resume_class(code)
            st.rerun()


def ask_panel(lead) -> None:
    labels, found, skipped = cq.catalogue(data)
    if labels:
        pick = st.selectbox(
            "Question", list(labels), key="class_question_pick", format_func=labels.get
        )
        if st.button("Ask it", key="class_ask", type="primary"):
            q = found.get(pick) or cq.builtin(pick, data)
            if problem := cq.ask(lead, q, data):
                st.error(problem)
            else:
                st.rerun()
    if skipped:
        st.caption("Not usable here: " + "; ".join(skipped) + ".")
    st.markdown("**Or your own question**")
    with st.form("class_own_form", border=False):
        prompt = st.text_input("Question", key="class_own_prompt", max_chars=500)
        options = st.text_area("Options, one a line", key="class_own_options")
        answer = st.text_input("The right option (optional)", key="class_own_answer")
        if st.form_submit_button("Ask my question", key="class_ask_own"):
            q = cq.own_question(prompt, options, answer)
            problem = q if isinstance(q, str) else cq.ask(lead, q, data)
            if problem:
                st.error(problem)
            else:
                st.rerun()


def teacher_class(lead) -> None:
    try:
        cs = svc.state(lead)
    except ClassStoreUnavailable:
        classroom.join_card(lead.info)
        st.warning(classroom.OFFLINE_TEACHER, icon=":material/cloud_off:")
        return
    except ClassError as exc:
        st.info(str(exc))
        return
    if cs.question is None:  # the join card in full: the code, the link, the QR code
        classroom.join_card(lead.info)
    else:  # the question takes the screen; the code stays in one line above it
        classroom.join_line(lead.info)
        cq.show_question(cs.question, data)
        cq.live_tally()
        cq.teacher_controls(lead, cs.question)
        cq.show_reveal(cs.question)
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.caption(
        "Your screen leads: every student who follows sees this page, the lesson and its "
        "step, the picture, the models and classes. Answers are anonymous."
    )
    if right.button("Keep it 1 hour longer", key="class_extend"):
        classroom.extend_class(1)
        st.rerun()
    if data is None:
        st.info("The data set is missing here: picture questions cannot be asked.")
        return
    with st.expander("Ask a question", expanded=cs.question is None, icon=":material/quiz:"):
        ask_panel(lead)
    if cs.question is not None:
        with st.expander("The QR code", icon=":material/qr_code_2:"):
            classroom.join_card(lead.info)


def student(seat) -> None:
    try:
        cs = svc.state(seat)
    except ClassStoreUnavailable:
        st.warning(classroom.OFFLINE_STUDENT, icon=":material/cloud_off:")
        return
    except ClassError as exc:  # the class ended, or this seat is gone
        classroom.drop_seat(None)
        st.info(str(exc))
        return
    st.caption(f"Class {seat.info.code}. Answers are anonymous: nobody sees who chose what.")
    if cs.question is None:
        st.info(
            "No question right now. Follow along: your screen shows the teacher's.",
            icon=":material/hourglass_empty:",
        )
        return
    cq.show_question(cs.question, data)
    mine = cq.answer_buttons(cs.question)
    cq.show_reveal(cs.question, mine)
    if cs.question.state == "revealed":
        try:
            tally = svc.tally(seat)
        except ClassError:
            tally = None
        if tally is not None:
            cq.tally_chart(tally, key="class_student_tally")


if classroom.lead() is not None:
    teacher_class(classroom.lead())
elif classroom.seat() is not None:
    student(classroom.seat())
elif classroom.is_teacher():
    teacher_start()
else:
    visitor()
