"""One browser session on a Streamlit app, spoken in Streamlit's own websocket protocol.

A :class:`StreamlitSession` does what the browser's frontend does for a session, minus
the drawing: it opens ``/_stcore/stream``, sends ``BackMsg.rerun_script`` with the whole
widget state, decodes the ``ForwardMsg`` stream into a :class:`~bench.students.view.View`,
replays ``auto_rerun`` timers, and times each request from its sending to the
``script_finished`` of the run that served it.

Facts from Streamlit 1.67 (the installed wheel), each where it is written:

- Before the socket the browser GETs ``/_stcore/health`` and ``/_stcore/host-config``
  (seen from Chromium; paths in the bundle ``static/static/js/index.*.js``), and, as a
  browser does, this session keeps the cookies they set and sends them with the socket's
  handshake and later GETs: behind HAProxy (``serve.py --replicas``) the replica cookie
  keeps a session's socket and its media files (a download) on one replica.
- The socket is ``/_stcore/stream``, binary frames only (a text frame closes it, a frame
  that is not a BackMsg closes it with 1002, one over ``server.maxWidgetStateSize`` with
  1009); the browser offers ``Sec-WebSocket-Protocol: streamlit, <xsrf token or
  PLACEHOLDER_AUTH_TOKEN>[, <previous session id>]``; a missing or same-host Origin is
  accepted (``web/server/starlette/starlette_websocket.py``: ``_parse_subprotocols``,
  ``_is_origin_allowed``; ``getSessionTokens`` in the bundle).
- A run is asked for with ``BackMsg.rerun_script``, a ``ClientState``
  (``proto/ClientState.proto``): the first with ``page_name`` (the URL path) and no
  widgets, later ones with the page's ``page_script_hash`` (from the ``navigation``
  message in an ``st.navigation`` app, whose ``new_session`` names the entry script;
  from ``new_session`` in an app without it), the query string
  the server last set (``page_info_changed``), every widget's state, the ``fragment_id``
  for a fragment's widget, ``is_auto_rerun`` for a timer, the hashes of the messages it
  has cached, and ``context_info`` (``sendRerunBackMsg`` in the bundle).
- Each run opens with ``new_session`` whose ``metadata.run`` names the run id and the
  fragments it runs, and ends with ``script_finished``: 0 done, 1 compile error, 2 stopped
  early for a rerun (not done: another run follows), 3 fragment run done
  (``proto/ForwardMsg.proto``; ``runtime/app_session.py``). This app sets
  ``runner.fastReruns = false`` (.streamlit/config.toml): a request during a run is
  raised in that run at its next ``st.*`` call, which then ends with status 2.
- A large ``new_element`` is marked ``metadata.cacheable``; the browser keeps it and lists
  its hash in later requests, and the server may then send ``ref_hash`` instead. Entries
  not used for ``config.max_cached_message_age`` finished runs are dropped
  (``runtime/forward_msg_cache.py``, ``scriptrunner_utils/script_run_context.py``;
  ``incrementRunCount`` in the bundle).
- A fragment with ``run_every`` is timed by the browser: the server sends ``auto_rerun``
  (interval, fragment id) each time the fragment is defined, the browser sets one timer
  per fragment (a repeated message with the same interval changes nothing), drops them all
  at a full run's ``new_session`` and some at ``stop_auto_rerun``, and each tick sends a
  fragment rerun with ``is_auto_rerun`` (``runtime/fragment.py``; ``handleAutoRerun`` in
  the bundle).

Threads: one reader per session and one per auto-rerun timer. Under Locust (gevent,
monkey-patched) they are greenlets; in a plain process, real threads. A user calls
:meth:`StreamlitSession.click` / :meth:`rerun` and then :meth:`Request.wait`.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import struct
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websocket  # websocket-client: a plain socket, so gevent's monkey patch makes it async
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from bench.students.view import View, Widget

SUCCESS, COMPILE_ERROR, EARLY_FOR_RERUN, FRAGMENT_SUCCESS = 0, 1, 2, 3
SUBPROTOCOL_TOKEN = "PLACEHOLDER_AUTH_TOKEN"  # what the browser offers without an XSRF cookie


class SessionClosed(RuntimeError):
    """The websocket closed (or never opened) while a request was waiting."""


class RunTimeout(TimeoutError):
    """The run a request started did not finish in time."""


@dataclass
class Request:
    """One ``rerun_script`` sent, until the run that served it has finished."""

    fragment_id: str  # "" for a full run
    auto: bool  # sent by an auto-rerun timer
    sent: float  # time.perf_counter() when sent
    bytes_sent: int
    run_ids: set[str] = field(default_factory=set)  # runs that started for it
    finished: float | None = None
    status: int | None = None  # the script_finished that ended it
    error: str = ""
    bytes_received: int = 0  # ForwardMsg bytes received while it was open
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def latency(self) -> float:
        """Seconds from sending to the ``script_finished`` of its run."""
        if self.finished is None:
            raise RuntimeError("the request has not finished")
        return self.finished - self.sent

    def wait(self, timeout: float = 60.0) -> float:
        """Block until the run has finished; return its latency in seconds.

        Raises:
            RunTimeout: not finished in ``timeout`` seconds.
            SessionClosed: the socket closed first.
            RuntimeError: the script failed to compile (status 1).
        """
        if not self._done.wait(timeout):
            raise RunTimeout(f"no script_finished within {timeout:.0f} s")
        if self.error:
            raise SessionClosed(self.error)
        if self.status == COMPILE_ERROR:
            raise RuntimeError("the app script failed to compile (script_finished 1)")
        return self.latency

    def _finish(self, status: int | None, error: str = "") -> None:
        if not self._done.is_set():
            self.finished, self.status, self.error = time.perf_counter(), status, error
            self._done.set()


@dataclass
class RunEnd:
    """What a listener learns when a run finishes (see StreamlitSession.listeners)."""

    run_id: str
    status: int
    fragment_ids: list[str]
    at: float  # time.perf_counter()
    requests: list[Request]  # the requests it served (auto-reruns included)


def _close_code(data: bytes) -> int | None:
    return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None


class StreamlitSession:
    """One browser session: connect, act on widgets, follow what the page shows.

    Args:
        base_url: the app, e.g. ``http://127.0.0.1:8501``.
        path: the page's URL path (``"layer-by-layer"``; ``""`` for the default page).
        query: the URL's query string without ``?``.
        timeout: seconds to wait for the socket to open.
    """

    def __init__(self, base_url: str, path: str = "", query: str = "", timeout: float = 30):
        self.base = base_url.rstrip("/")
        self.path, self.query = path.strip("/"), query
        self.timeout = timeout
        self.view = View()
        self.session_id = ""
        self.page_script_hash = ""  # the page shown (new_session of the last full run)
        self.main_script_hash = ""  # the entry script's (app.py)
        self.pages: dict[str, str] = {}  # url path ("" default) -> page_script_hash
        self.page_not_found = ""  # page_name of the last page_not_found
        self.running = False  # session_status_changed.script_is_running
        self.max_cached_age = 2
        self.closed_code: int | None = None
        self.closed = threading.Event()
        self.protocol_errors: list[str] = []  # frames this client could not read
        self.received_bytes = 0
        self.listeners: list[Callable[[StreamlitSession, RunEnd], None]] = []
        self.on_send: Callable[[bytes], None] | None = None  # sees each BackMsg sent
        self._ws: websocket.WebSocket | None = None
        self._lock = threading.Lock()  # view, pending, cache, timers
        self._changed = threading.Condition(self._lock)  # a run ended or the socket closed
        self._pending: list[Request] = []
        self._run_id = ""
        self._run_fragments: list[str] = []
        self._cache: dict[str, list[Any]] = {}  # hash -> [ForwardMsg, run count, fragment]
        self._run_count = 0
        self._timers: dict[str, tuple[float, threading.Event]] = {}
        self.cookies = http.cookiejar.CookieJar()
        self._http = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    # ------------------------------------------------------------ connection
    def connect(self) -> Request:
        """What a browser does on opening the page: two GETs, the socket, the first run.

        Returns:
            The first run's request (``wait()`` on it).

        Raises:
            SessionClosed: the server refused the socket or the GETs failed.
        """
        try:
            for endpoint in ("_stcore/health", "_stcore/host-config"):
                self.get(endpoint)
            ws_url = "ws" + self.base[len("http") :] + "/_stcore/stream"
            self._ws = websocket.create_connection(
                ws_url,
                subprotocols=["streamlit", SUBPROTOCOL_TOKEN],
                origin=self.base,  # same origin, as the browser's
                cookie="; ".join(f"{c.name}={c.value}" for c in self.cookies) or None,
                timeout=self.timeout,
                enable_multithread=True,  # the user and the timers both send
            )
        except (OSError, websocket.WebSocketException) as exc:
            self.closed.set()
            raise SessionClosed(f"could not open {self.base}: {exc}") from exc
        self._ws.settimeout(None)
        threading.Thread(target=self._read_loop, name="st-reader", daemon=True).start()
        return self._send_rerun(page_name=self.path)

    def get(self, path: str) -> bytes:
        """GET a path of the app (``_stcore/health``, a media file's ``/media/...``) with
        this session's cookies, as its browser would; the body."""
        with self._http.open(f"{self.base}/{path.lstrip('/')}", timeout=self.timeout) as r:
            return r.read()

    def close(self) -> None:
        """Close the socket (the server keeps the session for a reconnect, as for a
        closed tab) and stop the timers."""
        with self._lock:
            for _, stop in self._timers.values():
                stop.set()
            self._timers.clear()
        if self._ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self._ws.close(timeout=2)
        self.closed.wait(5)

    # ------------------------------------------------------------ reading the page
    def widget(self, key_or_label: str) -> Widget:
        """A widget shown now (see View.widget)."""
        with self._lock:
            return self.view.widget(key_or_label)

    def value(self, key_or_label: str) -> Any:
        """A widget's value now (see View.value)."""
        with self._lock:
            return self.view.value(key_or_label)

    def texts(self, root: int | None = 0, kinds: tuple[str, ...] = ()) -> list[str]:
        """The texts shown now (see View.texts)."""
        with self._lock:
            return self.view.texts(root, kinds)

    def widgets(self) -> list[Widget]:
        """Every widget shown now, in page order (see View.widgets)."""
        with self._lock:
            return self.view.widgets()

    def wait_until(self, shows: Callable[[View], bool], timeout: float = 60.0) -> float:
        """Block until, after some run has finished, ``shows(view)`` is true (checked at
        once too); return the time.perf_counter() when it was.

        Raises:
            RunTimeout: not within ``timeout`` seconds.
            SessionClosed: the socket closed first.
        """
        deadline = time.perf_counter() + timeout
        with self._changed:
            while not shows(self.view):
                if self.closed.is_set():
                    raise SessionClosed(f"the socket closed (code {self.closed_code})")
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise RunTimeout(f"the page did not show it within {timeout:.0f} s")
                self._changed.wait(left)
        return time.perf_counter()

    # ------------------------------------------------------------ actions
    def click(self, key_or_label: str) -> Request:
        """Press a button (by key or label): its trigger plus every widget's state, as a
        rerun of the button's fragment, or of the whole app outside fragments."""
        w = self.widget(key_or_label)
        trigger = WidgetState(id=w.id, trigger_value=True)
        return self._send_rerun(fragment_id=w.fragment_id, extra=[trigger])

    def set_value(self, key_or_label: str, value: Any) -> Request:
        """Change a widget's value the way its control would, and rerun.

        ``value``: an option's text for a radio / selectbox, a list of option texts for a
        multiselect / segmented control, an option text (or list) for a select_slider, a
        number for number_input / slider, a bool for a checkbox or toggle, text for a text
        input."""
        w = self.widget(key_or_label)
        st = _state_for(w, value)
        with self._lock:
            self.view.states[w.id] = st
        return self._send_rerun(fragment_id=w.fragment_id)

    def rerun(self, fragment_id: str = "", auto: bool = False) -> Request:
        """Ask for a rerun with the current widget states (no widget changed)."""
        return self._send_rerun(fragment_id=fragment_id, auto=auto)

    def goto(self, path: str, query: str = "") -> Request:
        """Move to another page of the app as a page link does: keep only the entry
        script's widgets, name the page by its hash (from the ``navigation`` message)."""
        target = self.pages.get(path.strip("/"))
        if target is None:
            raise LookupError(f"no page {path!r}; the app has {sorted(self.pages)}")
        with self._lock:
            self._stop_timers()
            self.view.leave_page(self.main_script_hash)
        self.query = query
        return self._send_rerun(page_hash=target)

    def send_raw(self, payload: bytes) -> None:
        """Send a binary frame as it is (tests: what the server does with a bad one)."""
        assert self._ws is not None
        self._ws.send_binary(payload)

    # ------------------------------------------------------------ sending
    def _send_rerun(
        self,
        fragment_id: str = "",
        auto: bool = False,
        extra: list[WidgetState] | None = None,
        page_name: str = "",
        page_hash: str = "",
    ) -> Request:
        if self._ws is None or self.closed.is_set():
            raise SessionClosed(f"the socket is closed (code {self.closed_code})")
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        if page_name or not self.page_script_hash and not page_hash:
            cs.page_name = page_name
        else:
            cs.page_script_hash = page_hash or self.page_script_hash
        cs.fragment_id = fragment_id
        cs.is_auto_rerun = auto
        with self._lock:
            cs.widget_states.widgets.extend(self.view.widget_states())
            cs.cached_message_hashes.extend(self._cache)
        if extra:
            cs.widget_states.widgets.extend(extra)
        ci = cs.context_info
        ci.timezone, ci.timezone_offset, ci.locale = "UTC", 0, "en-US"
        ci.url = f"{self.base}/{self.path}"
        ci.is_embedded, ci.color_scheme = False, "light"
        payload = msg.SerializeToString()
        req = Request(fragment_id, auto, time.perf_counter(), len(payload))
        with self._lock:
            self._pending.append(req)
        if self.on_send is not None:
            self.on_send(payload)
        try:
            self._ws.send_binary(payload)
        except (OSError, websocket.WebSocketException) as exc:
            req._finish(None, f"send failed: {exc}")
        return req

    # ------------------------------------------------------------ receiving
    def _read_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        reason = "the server closed the socket"
        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.closed_code = _close_code(data)
                    reason = f"the server closed the socket (code {self.closed_code})"
                    break
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    self.handle_frame(data)
                else:
                    self.protocol_errors.append(f"unexpected frame opcode {opcode}")
        except (OSError, websocket.WebSocketException) as exc:
            reason = f"socket error: {exc}"
        finally:
            self.closed.set()
            with self._lock:
                pending, self._pending = self._pending, []
                self._stop_timers()
                self._changed.notify_all()
            for req in pending:
                req._finish(None, reason)

    def handle_frame(self, data: bytes) -> None:
        """Decode one binary frame and apply it; a frame that is not a ForwardMsg is
        recorded in ``protocol_errors`` and skipped, as the browser shows an error and
        carries on."""
        self.received_bytes += len(data)
        msg = ForwardMsg()
        try:
            msg.ParseFromString(data)
        except Exception as exc:  # protobuf's DecodeError, or worse: never kill the reader
            self.protocol_errors.append(f"undecodable ForwardMsg ({len(data)} bytes): {exc}")
            return
        with self._lock:
            for req in self._pending:
                req.bytes_received += len(data)
            try:
                ended = self._apply(msg)
            except Exception as exc:  # a message this client misreads: note it, go on
                self.protocol_errors.append(f"{msg.WhichOneof('type')}: {exc!r}")
                return
            if ended is not None:
                self._changed.notify_all()
        if ended is not None:
            for listener in self.listeners:
                listener(self, ended)

    def _apply(self, msg: ForwardMsg) -> RunEnd | None:
        """Apply one message (lock held); a RunEnd when it finished a run."""
        if msg.WhichOneof("type") == "ref_hash":
            entry = self._cache.get(msg.ref_hash)
            if entry is None:
                raise KeyError(f"cached ForwardMsg miss {msg.ref_hash}")
            entry[1] = self._run_count
            cached = ForwardMsg()
            cached.CopyFrom(entry[0])
            cached.metadata.CopyFrom(msg.metadata)
            msg = cached
        elif msg.metadata.cacheable and msg.hash:
            if msg.hash in self._cache:
                self._cache[msg.hash][1] = self._run_count  # seen again: keep it longer
            else:
                self._cache[msg.hash] = [msg, self._run_count, msg.delta.fragment_id]
        kind = msg.WhichOneof("type")
        if kind == "delta":
            self.view.apply_delta(
                tuple(msg.metadata.delta_path),
                msg.delta,
                self._run_id,
                msg.metadata.active_script_hash,
            )
        elif kind == "new_session":
            self._new_run(msg)
        elif kind == "script_finished":
            return self._run_finished(msg.script_finished)
        elif kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif kind == "navigation":
            self._show_page(msg.navigation.page_script_hash)
            self.pages = {
                ("" if p.is_default else p.url_pathname): p.page_script_hash
                for p in msg.navigation.app_pages
            }
        elif kind == "page_not_found":
            self.page_not_found = msg.page_not_found.page_name
        elif kind == "session_status_changed":
            self.running = msg.session_status_changed.script_is_running
        elif kind == "auto_rerun":
            self._start_timer(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fid in msg.stop_auto_rerun.fragment_ids:
                timer = self._timers.pop(fid, None)
                if timer:
                    timer[1].set()
        return None

    def _new_run(self, msg: ForwardMsg) -> None:
        ns = msg.new_session
        self._run_id = msg.metadata.run.script_run_id
        self._run_fragments = list(msg.metadata.run.fragment_ids)
        self.session_id = ns.initialize.session_id or self.session_id
        self.max_cached_age = ns.config.max_cached_message_age or self.max_cached_age
        if not self._run_fragments:  # a full run: the page may have changed
            self.main_script_hash = ns.main_script_hash
            # With st.navigation this is the entry script's hash; the page's own comes
            # in the `navigation` message that follows.
            self._show_page(ns.page_script_hash)
            self._stop_timers()  # the run's fragments will send auto_rerun again
        for req in self._pending:
            if (
                not req.fragment_id
                and not self._run_fragments
                or req.fragment_id
                and (not self._run_fragments or req.fragment_id in self._run_fragments)
            ):
                req.run_ids.add(self._run_id)

    def _show_page(self, page_hash: str) -> None:
        if self.page_script_hash and page_hash != self.page_script_hash:
            self.view.leave_page(self.main_script_hash)
        self.page_script_hash = page_hash

    def _run_finished(self, status: int) -> RunEnd | None:
        run_id, frags = self._run_id, self._run_fragments
        if status in (SUCCESS, FRAGMENT_SUCCESS):
            self.view.clear_stale(run_id, frags)
        if status == EARLY_FOR_RERUN:
            return None  # another run follows and serves the same requests
        self._age_cache(frags)
        done = [r for r in self._pending if run_id in r.run_ids]
        self._pending = [r for r in self._pending if run_id not in r.run_ids]
        for req in done:
            req._finish(status)
        return RunEnd(run_id, status, frags, time.perf_counter(), done)

    def _age_cache(self, fragment_ids: list[str]) -> None:
        """The browser's ForwardMsg cache after a finished run (``incrementRunCount``)."""
        self._run_count += 1
        for h, (_, seen, frag) in list(self._cache.items()):
            if fragment_ids and (not frag or frag not in fragment_ids):
                continue
            if self._run_count - seen > self.max_cached_age:
                del self._cache[h]

    # ------------------------------------------------------------ auto-rerun timers
    def _start_timer(self, fragment_id: str, interval: float) -> None:
        if not fragment_id or interval <= 0:
            return
        old = self._timers.get(fragment_id)
        if old is not None and old[0] == interval:
            return
        if old is not None:
            old[1].set()
        stop = threading.Event()
        self._timers[fragment_id] = (interval, stop)
        threading.Thread(
            target=self._tick, args=(fragment_id, interval, stop), name="st-timer", daemon=True
        ).start()

    def _tick(self, fragment_id: str, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                self._send_rerun(fragment_id=fragment_id, auto=True)
            except SessionClosed:
                return

    def _stop_timers(self) -> None:
        for _, stop in self._timers.values():
            stop.set()
        self._timers.clear()

    @property
    def auto_rerun_fragments(self) -> dict[str, float]:
        """Fragment id -> interval (s) of the auto-rerun timers running now."""
        with self._lock:
            return {f: t[0] for f, t in self._timers.items()}


def _state_for(w: Widget, value: Any) -> WidgetState:
    """The WidgetState a control sends when a person sets ``value`` (see set_value)."""
    st = WidgetState(id=w.id)
    if w.type == "checkbox":
        st.bool_value = bool(value)
    elif w.type in ("radio", "selectbox", "text_input", "text_area", "color_picker"):
        st.string_value = str(value)
    elif w.type in ("multiselect", "button_group") or w.type == "slider" and w.options:
        # a select_slider is a slider with options
        st.string_array_value.data.extend([value] if isinstance(value, str) else value)
    elif w.type == "slider":
        st.double_array_value.data.extend(value if isinstance(value, list | tuple) else [value])
    elif w.type == "number_input":
        if w.proto.data_type == type(w.proto).INT:
            st.int_value = int(value)
        else:
            st.double_value = float(value)
    else:
        raise ValueError(f"setting a {w.type} is not modelled (widget {w.key!r})")
    return st
