"""A minimal client of Streamlit's websocket protocol (the browser's side of
``/_stcore/stream``), for the tests that send crafted protocol messages and for
bench/class_poll.py. Not a browser: it sends ``BackMsg.rerun_script`` requests (a query
string, a page, widget states, a fragment id) and reads the ``ForwardMsg`` replies until
the run has finished. Streamlit 1.67's protocol, as DESIGN.md describes it.

It reports no cached messages, so the server always sends whole elements (never
``ref_hash`` references), and it reads the widget ids (``$$ID-<hash>-<key>``) and the
polling fragments (``auto_rerun``: id and interval) from what the server sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

FINISHED = (
    ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY,
    ForwardMsg.ScriptFinishedStatus.FINISHED_FRAGMENT_RUN_SUCCESSFULLY,
)


def widget_key(widget_id: str) -> str:
    """The user key at the end of a widget id ("$$ID-1a2b...-class_reveal"), or ""."""
    parts = widget_id.split("-", 2)
    return parts[2] if widget_id.startswith("$$ID-") and len(parts) == 3 else ""


def widget_ids(msgs: list[ForwardMsg]) -> dict[str, str]:
    """Widget key -> widget id, for every keyed widget in these messages' new elements."""
    out = {}
    for msg in msgs:
        if msg.WhichOneof("type") != "delta" or not msg.delta.HasField("new_element"):
            continue
        element = msg.delta.new_element
        kind = element.WhichOneof("type")
        wid = getattr(getattr(element, kind), "id", "") if kind else ""
        if isinstance(wid, str) and widget_key(wid):
            out[widget_key(wid)] = wid
    return out


@dataclass
class StreamSession:
    """One session on the server, as one browser tab holds it.

    Args:
        base: the app's address, "http://127.0.0.1:8501".
        timeout: seconds to wait for a message before giving up.
    """

    base: str
    timeout: float = 90.0
    raw: list[bytes] = field(default_factory=list)  # every frame received, as sent
    widgets: dict[str, str] = field(default_factory=dict)  # key -> id, as last drawn
    fragments: dict[str, float] = field(default_factory=dict)  # polling fragment -> s

    def __post_init__(self) -> None:
        url = self.base.replace("http", "ws", 1).rstrip("/") + "/_stcore/stream"
        self.ws = connect(url, subprotocols=["streamlit"], max_size=None)

    def rerun(
        self,
        query: str = "",
        page: str = "",
        widgets: list | None = None,
        fragment_id: str = "",
    ) -> list[ForwardMsg]:
        """Ask for a run and read the replies until it has finished (through any reruns
        the script asks for, e.g. ``st.switch_page``).

        Args:
            query: the address's query string ("join=K7RX4M").
            page: the page's url path ("class"; "" for the one the session is on).
            widgets: ``WidgetState`` protos to send (e.g. a button's trigger).
            fragment_id: rerun only this fragment (what a ``run_every`` timer sends).

        Returns:
            Every message received until the run finished.
        """
        back = BackMsg()
        state = back.rerun_script
        state.query_string = query
        state.page_name = page
        state.fragment_id = fragment_id
        state.is_auto_rerun = bool(fragment_id)
        for w in widgets or []:
            state.widget_states.widgets.append(w)
        self.ws.send(back.SerializeToString())
        return self.read_until_finished()

    def read_until_finished(self) -> list[ForwardMsg]:
        msgs: list[ForwardMsg] = []
        while True:
            frame = self.ws.recv(timeout=self.timeout)
            self.raw.append(frame)
            msg = ForwardMsg.FromString(frame)
            msgs.append(msg)
            kind = msg.WhichOneof("type")
            if kind == "auto_rerun":
                self.fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
            if kind == "script_finished" and msg.script_finished in FINISHED:
                self.widgets.update(widget_ids(msgs))
                return msgs

    def close(self) -> None:
        self.ws.close()
