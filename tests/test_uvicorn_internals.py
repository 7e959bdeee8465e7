"""What server/uvicorn_adapter.py relies on of uvicorn (and h11) beyond its documented settings is still there. When
an upgrade moves a part, the failing test names it and what to update."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from server.uvicorn_adapter import GuardedH11Protocol, guarded_protocol


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_the_h11_protocol_still_has_what_the_guard_overrides_and_reads() -> None:
    for name in ("connection_made", "data_received", "on_response_complete", "connection_lost"):
        assert callable(getattr(H11Protocol, name, None)), f"H11Protocol lost {name}: update GuardedH11Protocol"
    protocol = guarded_protocol(header_timeout_s=30, body_timeout_s=30, max_connections=1)
    config = uvicorn.Config(app, http=protocol, log_level="error")
    config.load()
    state = ServerState()
    first, second = (config.http_protocol_class(config=config, server_state=state, app_state={}) for _ in "12")
    assert isinstance(first, GuardedH11Protocol), "uvicorn.Config(http=class) no longer uses the class it is given"
    waiting, busy = Transport(), Transport()
    first.connection_made(waiting)
    missing = [name for name in ("conn", "connections", "transport", "loop") if not hasattr(first, name)]
    assert not missing and first in first.connections and first.transport is waiting, (
        f"H11Protocol no longer keeps {missing or 'its connection in server_state.connections'}: "
        "update server/uvicorn_adapter.GuardedH11Protocol"
    )
    assert isinstance(first.conn, h11.Connection) and first.conn.their_state is h11.IDLE, "update GuardedH11Protocol"
    second.connection_made(busy)  # past max_connections: the one still waiting for its headers makes room
    assert waiting.closed and first not in state.connections and second in state.connections
    second.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert second.conn.their_state is not h11.IDLE, "h11 no longer leaves IDLE once a request's headers are in"
    assert second._timer is None, "the header deadline is no longer disarmed once the headers are in"
    second.connection_lost(None)


async def test_a_request_answered_before_its_body_is_in_still_leaves_h11_waiting_for_the_body() -> None:
    """The guard closes such a connection in on_response_complete, which uvicorn calls once the answer is sent,
    with h11 still in SEND_BODY for the client; and a body in progress is SEND_BODY (the body deadline)."""
    config = uvicorn.Config(app, http=guarded_protocol(30, 30, 8), log_level="error")  # app: 204, reads nothing
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    assert protocol.conn.their_state is h11.SEND_BODY, "h11 no longer says SEND_BODY while a body is coming"
    assert protocol._timer is not None and protocol._timed is h11.SEND_BODY, "the body deadline is not armed"
    await asyncio.gather(*protocol.tasks)
    assert protocol.cycle.response_complete, "uvicorn did not send the app's answer"
    assert transport.closed, (
        "the connection of a request answered before its body was in stays open: uvicorn no longer calls "
        "on_response_complete once the answer is sent, or h11 left SEND_BODY: update GuardedH11Protocol"
    )
    protocol.connection_lost(None)


def test_a_signal_still_stops_uvicorn_through_handle_exit_and_is_raised_again_after() -> None:
    capture = inspect.getsource(uvicorn.Server.capture_signals)
    assert "signal.signal(sig, self.handle_exit)" in capture and "signal.raise_signal" in capture, (
        "uvicorn no longer stops on a signal through handle_exit, or no longer raises it again once stopped: "
        "update server/uvicorn_adapter.serve (its Server.handle_exit and _absorb)"
    )
