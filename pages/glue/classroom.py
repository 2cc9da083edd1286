"""A live class in the app (not a page): who this session is, following, the sidebar lines.

The class itself is the library's (convae.classroom: the store, the service and its
permission checks); this module keeps a session's capabilities in ``st.session_state``
and never sends them to the browser:

- a teacher holds a :class:`~convae.classroom.TeacherToken` (the key, typed once or read
  from the printed link's ``?teacher=`` and stripped from the address bar in the same
  run) and, once a class is started, its :class:`~convae.classroom.Lead`;
- a student holds a :class:`~convae.classroom.Seat` (``?join=CODE`` or the code typed);
- anyone else is a visitor: the app as without a class.

How following works (Streamlit has no way for one session to rerun another, streamlit
issue #2838): the teacher's view is a shared link's settings (pages/glue/links.py), and
:func:`view_changed` publishes it when it changed, at the end of a run and of a fragment
rerun that changes it (Layers' stepper, Compare's close-up). A student's session polls in
a fragment (``draw.fragment(run_every=poll_every(), key="class_poll")``, drawn in the
sidebar; about every ``POLL_S``, each session at its own interval): one
``svc.version()`` read (a dict lookup, or one Redis GET); only when the version changed does
it read the class's state, hand the view to the sidebar (``links_follow``: applied before
any widget exists, as a lesson step is) and rerun the app on the teacher's page.

A following student keeps the focus:

- the poll reruns only its own fragment, whose lines are the same unless the class changed,
  so no widget of the page is redrawn and nothing moves;
- a jump waits until the student's own last action (a run they started: a click, a changed
  value, a page link) is ``DEFER_S`` old, so a view never changes under a hand that is busy;
- a student who changes the view themselves is exploring from then on (one line says so,
  with Catch up): following never undoes what a student did.

What the server cannot see is a keystroke not yet sent (Streamlit sends a text field when
it is left or Enter is pressed); a jump in those seconds replaces the page around it.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import os
import random
import time
from urllib.parse import urlsplit

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from convae.classroom import (
    STORE_ENV,
    ClassEnded,
    ClassError,
    ClassInfo,
    ClassService,
    ClassStoreUnavailable,
    Lead,
    NotAllowed,
    Seat,
    TeacherKey,
    View,
    WrongTeacherKey,
)
from convae.classroom.key import KEY_ENV
from convae.classroom.service import JOIN_PAGE
from pages.glue import caches, draw
from pages.glue.links import sync_link, view_params
from pages.glue.page_table import PAGES

POLL_S = 1.5  # a following screen is at most this far behind the teacher's (plus DEFER_S)
# Each session polls every POLL_S x (1 +- POLL_SPREAD), its own draw (the same mean). With
# one interval for all, the students' polls fall into step: a browser restarts its timer
# when a full run (a jump) redraws the fragment, and a class's jumps end together, so the
# next change was seen by all at once and all jumps queued behind each other (measured
# with 40 simulated students, bench/capacity.py --scenario class: every student of a
# change within ~0.1 s of the others, 2-4 s behind the teacher).
POLL_SPREAD = 0.3
DEFER_S = 2.0  # a jump waits until the student's own last action is this old
HEARTBEAT_S = 10.0  # "still here" every few polls (present: seen in the last 30 s)
TEACHER_REFRESH_S = 5.0  # the teacher's count of students present and following

# Session-state keys (capabilities and follow state; none of them is a widget's).
TOKEN, LEAD, SEAT = "class_token", "class_lead", "class_seat"
FOLLOWING, SEEN, MARK = "class_following", "class_seen", "class_mark"
JUMPING, IN_JUMP, TOUCH = "class_jumping", "class_in_jump", "class_touch"
BEAT, OFFLINE, SHOWN = "class_beat", "class_offline", "class_shown"
NOTICE, STATUS_NOTE, PAGE = "class_notice", "class_status_note", "class_page"
PUBLISHED, QSEEN, ANSWERS = "class_published", "class_qseen", "class_answers"
CATCH, POLL_EVERY = "class_catch", "class_poll_every"
OWN_RUN = "class_own_run"  # the next full run is the class's (a status line changed), not
# the student's: it does not count as their last action

OFFLINE_TEACHER = (
    "The class store cannot be reached: students explore on their own until it is back; "
    "following resumes by itself."
)
OFFLINE_STUDENT = (
    "The class cannot be reached right now: you explore on your own until it is back, "
    "then your screen follows the teacher again."
)
EXPLORED = (
    "You changed the view yourself, so you now explore on your own. Catch up follows the "
    "teacher again."
)


# ------------------------------------------------------------------ who is this


def room() -> tuple[ClassService, TeacherKey] | str:
    """The class service and the teacher key of this process, or why classes are off."""
    spec = os.environ.get(STORE_ENV, "")
    # A digest of the key variable tells a changed variable apart (tests set it); the
    # key itself never becomes a cache key.
    tag = hashlib.sha256(os.environ.get(KEY_ENV, "").encode()).hexdigest()[:16]
    return caches.class_room(spec, tag)


def service() -> ClassService | None:
    got = room()
    return None if isinstance(got, str) else got[0]


def session_id() -> str:
    """This browser session's id (the wrong-key limit counts per session)."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def is_teacher() -> bool:
    """Whether this session proved the teacher key (saving into the server's folder and
    leading a class are the teacher's alone)."""
    got = room()
    token = st.session_state.get(TOKEN)
    return token is not None and not isinstance(got, str) and got[1].check(token)


def lead() -> Lead | None:
    return st.session_state.get(LEAD) if is_teacher() else None


def seat() -> Seat | None:
    return st.session_state.get(SEAT)


def following() -> bool:
    """Whether this screen follows a teacher right now (a student, following, online)."""
    state = st.session_state
    return seat() is not None and bool(state.get(FOLLOWING)) and not state.get(OFFLINE)


def notify(kind: str, text: str) -> None:
    """A one-time line at the top of the next page drawn ("error", "warning", "info",
    "success")."""
    st.session_state[NOTICE] = (kind, text)


def show_notice() -> None:
    """The one-time line, and a student's or teacher's standing line (exploring, the class
    store away) at the top of the page, where a phone shows it (its sidebar is folded)."""
    state = st.session_state
    got = state.pop(NOTICE, None)
    if got:
        getattr(st, got[0])(got[1])
    state[SHOWN] = _status()
    if seat() is not None and state.get(OFFLINE):
        st.warning(OFFLINE_STUDENT, icon=":material/cloud_off:")
    elif seat() is not None and not state.get(FOLLOWING):
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        c1.caption(
            f":material/explore: {state.get(STATUS_NOTE) or 'You explore on your own.'} "
            f"(class {seat().info.code})"
        )
        c2.button("Catch up", key="class_catch_up_top", on_click=catch_up, type="primary")
    elif lead() is not None and state.get(OFFLINE):
        st.warning(OFFLINE_TEACHER, icon=":material/cloud_off:")


def _status() -> tuple:
    state = st.session_state
    return (seat() is not None, bool(state.get(FOLLOWING)), bool(state.get(OFFLINE)))


# ------------------------------------------------------------------ sign-in and joining


def sign_in(candidate: str) -> bool:
    """Check a typed (or linked) teacher key; the session becomes the teacher's.

    Returns:
        True when the key was right. A wrong one leaves a one-line notice; the library
        limits wrong keys per session and per process.
    """
    got = room()
    if isinstance(got, str):
        notify("error", f"Live classes are off on this server: {got}")
        return False
    try:
        token = got[1].verify(candidate, session=session_id())
    except WrongTeacherKey as exc:  # TooManyWrongKeys is one
        notify("error", str(exc))
        return False
    state = st.session_state
    if state.get(SEAT) is not None:
        drop_seat(None)
    state[TOKEN] = token
    notify("success", "Signed in as the teacher: start a class on the Class page.")
    return True


def take_address() -> None:
    """Read ``?teacher=KEY`` and ``?join=CODE`` and strip them from the address bar in the
    same run, before anything else reads the query (the key never reaches a link, the
    address bar or a page)."""
    q = st.query_params
    key = q.get("teacher")
    code = q.get("join")
    for name in ("teacher", "join"):
        if name in q:
            del q[name]
    if key is not None:
        sign_in(key)
    if code is not None and lead() is None:
        join(code)


def join(code: str) -> None:
    """Join a class by its code and follow the teacher at once; an unknown code or an
    ended class leaves a notice and the session exploring on its own."""
    svc = service()
    if svc is None:
        notify("error", f"Live classes are off on this server: {room()}")
        return
    try:
        new = svc.join(code)
    except ClassStoreUnavailable:
        notify("warning", "The class cannot be reached right now: try the code again soon.")
        return
    except ClassError as exc:  # UnknownCode, ClassEnded
        notify("error", str(exc))
        return
    state = st.session_state
    if state.get(SEAT) is not None:
        drop_seat(None)
    state.update({SEAT: new, FOLLOWING: True, SEEN: None, MARK: None, ANSWERS: {}})
    state[BEAT] = time.monotonic()
    state[STATUS_NOTE] = ""
    notify("success", f"You joined the class {new.info.code}: your screen follows the teacher's.")
    _jump(svc, new)


def drop_seat(message: str | None) -> None:
    state = st.session_state
    for k in (SEAT, FOLLOWING, SEEN, MARK, OFFLINE, QSEEN, ANSWERS, STATUS_NOTE):
        state.pop(k, None)
    if message:
        notify("info", message)


def leave() -> None:
    """The student leaves the class (their answers stay counted)."""
    svc, s = service(), seat()
    if svc is not None and s is not None:
        with contextlib.suppress(ClassError):  # away or ended: the seat goes anyway
            svc.leave(s)
    drop_seat("You left the class; you explore on your own.")


# ------------------------------------------------------------------ following


def page_script(url_path: str) -> str:
    """The script (for st.switch_page) of a page's url path; the first page for ""."""
    for p in PAGES:
        if p.url_path == url_path or (p.default and url_path == ""):
            return f"pages/{p.script}"
    return f"pages/{next(p for p in PAGES if p.default).script}"


def _jump(svc: ClassService, s: Seat) -> None:
    """Show the teacher's current view: its settings go to the sidebar (applied before any
    widget exists), then the app reruns on its page."""
    state = st.session_state
    cs = svc.state(s)
    state[SEEN] = state[QSEEN] = cs.version
    state.pop(CATCH, None)
    state[MARK] = None  # the jump's run sets it (or, if that run stops early, the next poll)
    if cs.view is None:  # the teacher has not shown anything yet
        return
    state["links_follow"] = dict(cs.view.params)  # pages/glue/sidebar.py applies it
    state[JUMPING] = True
    if cs.view.page == state.get(PAGE):
        st.rerun(scope="app")
    st.switch_page(page_script(cs.view.page))


def catch_up() -> None:
    """Follow the teacher again, from their current view (a button's callback)."""
    state = st.session_state
    state[FOLLOWING], state[SEEN], state[STATUS_NOTE] = True, None, ""
    state[MARK] = None
    state[CATCH] = True  # the next poll jumps at once, however recent this click is
    _beat(True)


def explore() -> None:
    """Stop following: the screen stays as it is (a button's callback)."""
    st.session_state[FOLLOWING] = False
    st.session_state[STATUS_NOTE] = "You explore on your own."
    _beat(False)


def _beat(following_now: bool) -> None:
    svc, s = service(), seat()
    if svc is None or s is None:
        return
    with contextlib.suppress(ClassError):  # the poll says what is wrong, on its next tick
        svc.heartbeat(s, following=following_now)
        st.session_state[BEAT] = time.monotonic()


def _fragment_run() -> bool:
    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def begin_run(page_url: str) -> None:
    """At the top of every full run (app.py): the page, whether this run is a jump the
    class made or the student's own action, then the address's teacher key or join code."""
    state = st.session_state
    state[PAGE] = page_url
    jumping = state.pop(JUMPING, False)
    state[IN_JUMP] = jumping
    if not jumping and not state.pop(OWN_RUN, False):
        state[TOUCH] = time.monotonic()
    take_address()


def view_changed(end_of_run: bool = False) -> None:
    """The view on screen is known: a teacher's goes to the class, a following student who
    changed it is exploring from now on, and the address bar shows it.

    Called at the end of every full run (:func:`run_page`) and at the end of fragments
    whose reruns change the view; in a full run only its end counts for the class.
    """
    if end_of_run or _fragment_run():
        _class_view()
    # Last: after st.stop() this Streamlit call stops again (the class's part is done).
    sync_link()


def _class_view() -> None:
    state = st.session_state
    view = (state.get(PAGE, ""), view_params())
    if lead() is not None:
        _publish(state[LEAD], view)
        return
    if seat() is None or not state.get(FOLLOWING) or state.get(OFFLINE):
        return  # (while the class is away, a student's own clicks do not stop following)
    if state.get(IN_JUMP):
        state[MARK] = view  # what following showed; a later difference is the student's
        return
    if _fragment_run():
        state[TOUCH] = time.monotonic()
    mark = state.get(MARK)
    if mark is not None and view != mark:
        state[FOLLOWING] = False
        state[STATUS_NOTE] = EXPLORED
        _beat(False)


def _publish(the_lead: Lead, view: tuple) -> None:
    state = st.session_state
    if state.get(PUBLISHED) == view or (svc := service()) is None:
        return
    try:
        svc.publish(the_lead, View(view[0], view[1]))
    except ClassStoreUnavailable:
        state[OFFLINE] = True
        return
    except ClassEnded as exc:
        _class_over(str(exc))
        return
    except ValueError:  # a view too large for the store: the students keep the last one
        return
    state[PUBLISHED] = view
    state[OFFLINE] = False


def _class_over(message: str) -> None:
    for k in (LEAD, PUBLISHED, OFFLINE):
        st.session_state.pop(k, None)
    notify("info", message)


def run_page(page) -> None:
    """Run the page, then :func:`view_changed`. A page that stops early (``st.stop()``)
    leaves Streamlit refusing every further call of the run, session state included: its
    view is then published by the teacher's next refresh (:func:`_teacher_box`), and a
    student's next poll takes the jump's mark."""
    page.run()
    view_changed(end_of_run=True)
    st.session_state[IN_JUMP] = False


def _rerun_if_status_changed() -> None:
    # The page's own lines (exploring, the store away) were drawn by the last full run.
    if _fragment_run() and st.session_state.get(SHOWN) != _status():
        st.session_state[OWN_RUN] = True  # the class's run, not a student's action
        st.rerun(scope="app")


def _poll(s: Seat) -> None:
    state = st.session_state
    svc = service()
    if svc is None:
        return
    now = time.monotonic()
    if _fragment_run() and state.get(IN_JUMP):  # the jump's run stopped before its end
        state[IN_JUMP] = False
        state[MARK] = (state.get(PAGE, ""), view_params())
    try:
        version = svc.version(s)
        if now - state.get(BEAT, 0.0) >= HEARTBEAT_S:
            svc.heartbeat(s, following=bool(state.get(FOLLOWING)))
            state[BEAT] = now
        if state.pop(OFFLINE, False):
            # Back: show the teacher's view as it is now. What the student did while the
            # class was away does not count as leaving it (no mark until the next jump):
            # without this, the status line's rerun (when the jump waits for DEFER_S)
            # compared the student's own view with the last jump's and stopped following.
            state[SEEN], state[MARK] = None, None
        if state.get(FOLLOWING) and version != state.get(SEEN):
            if state.get(CATCH) or now - state.get(TOUCH, 0.0) >= DEFER_S:
                _jump(svc, s)
        elif state.get(PAGE) == JOIN_PAGE and version != state.get(QSEEN, version):
            state[QSEEN] = version  # the question changed under an exploring student
            st.rerun(scope="app")
        state.setdefault(QSEEN, version)
    except ClassStoreUnavailable:
        state[OFFLINE] = True
    except (ClassEnded, NotAllowed) as exc:
        drop_seat(str(exc))
        st.rerun(scope="app")
    _rerun_if_status_changed()


def poll_every() -> float:
    """This session's poll interval in seconds (drawn once; see POLL_SPREAD)."""
    state = st.session_state
    if POLL_EVERY not in state:
        state[POLL_EVERY] = round(POLL_S * random.uniform(1 - POLL_SPREAD, 1 + POLL_SPREAD), 2)
    return state[POLL_EVERY]


def _student_box() -> None:
    s = seat()
    if s is None:
        return
    _poll(s)
    state = st.session_state
    if state.get(OFFLINE):
        line = "the class cannot be reached; exploring until it is back"
    else:
        line = "following the teacher" if state.get(FOLLOWING) else "exploring on your own"
    st.markdown(f"**In class {s.info.code}**: {line}")
    if state.get(FOLLOWING):
        st.button("Explore on my own", key="class_explore", on_click=explore)
    else:
        st.button("Catch up", key="class_catch_up", on_click=catch_up, type="primary")
    st.button("Leave the class", key="class_leave", on_click=leave, type="tertiary")


@draw.fragment(run_every=TEACHER_REFRESH_S, key="class_attendance")
def _teacher_box() -> None:
    state = st.session_state
    the_lead, svc = lead(), service()
    if the_lead is None or svc is None:
        return
    try:
        seen = svc.attendance(the_lead)
        if state.get(OFFLINE):
            state[OFFLINE] = False
            state.pop(PUBLISHED, None)  # publish the view again now that it is back
    except ClassStoreUnavailable:
        state[OFFLINE] = True
        seen = None
    except ClassEnded as exc:
        _class_over(str(exc))
        st.rerun(scope="app")
    if _fragment_run():  # a view whose run stopped early (st.stop) was not published yet
        _class_view()
    st.markdown(f"**Class {the_lead.info.code}** (you lead)")
    if seen is None:
        st.caption(":material/cloud_off: The class store cannot be reached.")
    else:
        st.caption(
            f"{seen.present} student{'s' * (seen.present != 1)} present, {seen.following} following"
        )
    st.page_link(page_script(JOIN_PAGE), label="Code, QR code and questions")
    if st.button("End the class", key="class_end"):
        try:
            svc.end(the_lead)
        except ClassStoreUnavailable:
            st.error("The class store cannot be reached: try again when it is back.")
            return
        _class_over(f"The class {the_lead.info.code} has ended.")
        st.rerun(scope="app")
    if _fragment_run() and st.session_state.get(SHOWN) != _status():
        st.rerun(scope="app")


def join_form(suffix: str = "") -> None:
    """A code box and a Join button (a form: Enter joins)."""
    with st.form(f"class_join_form{suffix}", border=False, enter_to_submit=True):
        code = st.text_input(
            "Join a class: the code on the teacher's screen",
            key=f"class_join_code{suffix}",
            max_chars=12,
            placeholder="e.g. K7R X4M",
        )
        if st.form_submit_button("Join", key=f"class_join{suffix}", type="primary"):
            join(code)
            st.rerun()


def sign_in_form(suffix: str = "") -> None:
    """The teacher key's box (cleared once sent, so the key stays in no widget)."""
    with st.form(f"class_sign_in_form{suffix}", border=False, clear_on_submit=True):
        key = st.text_input(
            "Teacher key (printed by the server at start)",
            type="password",
            key=f"class_key{suffix}",
            max_chars=200,
        )
        if st.form_submit_button("Sign in", key=f"class_sign_in{suffix}"):
            sign_in(key)
            st.rerun()


def sidebar_box(where) -> None:
    """The class lines of the sidebar, in ``where`` (a container at its top): a student's
    (class, following or exploring, Catch up), a teacher's (code, students present and
    following, End), a visitor's (Join a class, Teacher sign-in). In presentation mode
    they fold into an expander. Drawn after the sidebar's own widgets, so that a link's
    presentation mode is known."""
    if isinstance(room(), str):
        return
    presenting = draw.presenting()
    if presenting:
        member = seat() or lead()
        label = f"Class {member.info.code}" if member else "Join a class"
        where = where.expander(label, icon=":material/groups:")
    with where:
        if seat() is not None:
            # Made a fragment here, not by a decorator, for the session's own interval.
            draw.fragment(_student_box, run_every=poll_every(), key="class_poll")()
        elif lead() is not None:
            _teacher_box()
        elif is_teacher():
            st.page_link(page_script(JOIN_PAGE), label="Start a class", icon=":material/groups:")
        elif st.session_state.get(PAGE) != JOIN_PAGE:  # the Class page has them in full
            join_form("_side")
            if presenting:  # already in an expander (expanders do not nest)
                sign_in_form("_side")
            else:
                with st.expander("Teacher sign-in", icon=":material/key:"):
                    sign_in_form("_side")


# ------------------------------------------------------------------ the teacher's class


def start_class(hours: float) -> None:
    """Start a class that ends by itself after ``hours`` (the teacher's session leads it)."""
    svc, token = service(), st.session_state.get(TOKEN)
    if svc is None or not is_teacher():
        return
    try:
        new = svc.start(token, lifetime_s=hours * 3600)
    except ClassStoreUnavailable:
        notify("error", "The class store cannot be reached: no class was started.")
        return
    except ClassError as exc:
        notify("error", str(exc))
        return
    st.session_state.update({LEAD: new, OFFLINE: False})
    st.session_state.pop(PUBLISHED, None)


def resume_class(code: str) -> None:
    """Lead a live class again by its code (a reload loses the session's Lead)."""
    svc, token = service(), st.session_state.get(TOKEN)
    if svc is None or not is_teacher():
        return
    try:
        st.session_state[LEAD] = svc.resume(token, code)
    except ClassStoreUnavailable:
        notify("error", "The class store cannot be reached: try again when it is back.")
    except ClassError as exc:
        notify("error", str(exc))
    st.session_state.pop(PUBLISHED, None)


def extend_class(hours: float) -> None:
    """Move the class's end ``hours`` later."""
    svc, the_lead = service(), lead()
    if svc is None or the_lead is None:
        return
    try:
        st.session_state[LEAD] = svc.extend(the_lead, hours * 3600)
    except ClassStoreUnavailable:
        notify("error", "The class store cannot be reached: try again when it is back.")
    except ClassError as exc:
        notify("error", str(exc))


def app_base() -> str:
    """The app's address as the students reach it: ``$CONVAE_PUBLIC_URL`` when set (a
    teacher on localhost), else the address this browser uses, without the page."""
    public = os.environ.get("CONVAE_PUBLIC_URL", "").strip()
    if public:
        return public.rstrip("/")
    url = st.context.url or ""  # None outside a browser (AppTest)
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    page = st.session_state.get(PAGE, "")
    if page and path.endswith("/" + page):
        path = path[: -len(page) - 1]
    return f"{parts.scheme}://{parts.netloc}{path}" if parts.netloc else ""


def join_link(info: ClassInfo) -> str:
    """The class's join link as the students open it (relative outside a browser)."""
    base = app_base()
    return f"{base}/{info.join_path}" if base else info.join_path


def join_line(info: ClassInfo) -> None:
    """The code and link in one line, above a question on the projector."""
    draw.html(
        '<p class="cae-join-line">Join with the code '
        f'<span class="cae-code-inline">{info.code[:3]} {info.code[3:]}</span> at '
        f"{html.escape(join_link(info).split('?')[0])}</p>"
    )


def join_card(info: ClassInfo) -> str:
    """The projector's join card: the code in large letters, the join link, and a QR code
    of the link at least 440 px wide. Returns the join link."""
    base = app_base()
    link = join_link(info)
    code = f"{info.code[:3]} {info.code[3:]}"
    qr = caches.qr_code(link)
    where = f"{base}/{JOIN_PAGE}" if base else f"the {JOIN_PAGE} page"
    draw.html(
        '<div class="cae-join">'
        '<div class="cae-join-text">'
        '<p class="cae-join-label">Join the class with the code</p>'
        f'<p class="cae-code" aria-label="join code {" ".join(info.code)}">{code}</p>'
        f'<p class="cae-join-label">at {html.escape(where)}, or scan the QR code, or open</p>'
        f'<p class="cae-join-link">{html.escape(link)}</p>'
        "</div>"
        f'<img class="cae-qr" src="{qr}" alt="QR code of the join link {html.escape(link)}">'
        "</div>"
    )
    return link
