"""Every part of uvicorn this server relies on beyond its documented settings, in one place: the HTTP protocol
class it guards, and how a signal stops the server. pyproject.toml pins uvicorn and h11 to the minors that
tests/test_uvicorn_internals.py checks.

HTTP connections a slow or hostile client cannot pile up (uvicorn's h11 protocol, guarded):
- A request's headers must arrive within `header_timeout_s`, and then its body within `body_timeout_s` (a client
  that trickles them, a byte every few seconds, is cut off; uvicorn alone waits for ever).
- A request answered before its body is in (401, 403, 413, 421...) closes its connection, gently (see _linger):
  reading the rest would let the client hold the connection as long as it trickles.
- At most `max_connections` are open, kept below the process's descriptor limit. When a new connection would
  pass it, one closing after an early answer is closed to make room, else the oldest still sending its headers
  or idle between requests, else the oldest still sending a body; only if every open connection is busy with an
  answer is the new one refused. So a flood of slow clients, signed in or not, cannot keep /healthz or a real
  client out.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

DESCRIPTORS_KEPT = 128  # for the database, session files, supervisors, logs
LINGER_S = 2.0  # how long the rest of a body answered early is read and dropped before the connection closes


def default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(4096, soft - DESCRIPTORS_KEPT))


class GuardedH11Protocol(H11Protocol):
    header_timeout_s = 10.0
    body_timeout_s = 30.0
    max_connections = 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._refused = False
        self._lingering = False
        self._timer: asyncio.TimerHandle | None = None
        self._timed: object = None  # the part of the request the timer is for: h11.IDLE (headers) or SEND_BODY
        self._waiting_since = time.monotonic()
        if len(self.connections) >= self.max_connections and not self._evict_one():
            self._refused = True
            transport.close()
            return
        super().connection_made(transport)
        send = self.conn.send

        def send_closing(event: Any) -> bytes | None:
            output: bytes | None = send(event)
            if isinstance(event, h11.Response) and self.conn.their_state is h11.SEND_BODY and output:
                # Answered before its body is in: said to close, so that no client sends a next request here. In
                # the bytes, not to h11, which would have uvicorn close at once, unread body and all (see _linger).
                output = output[:-2] + b"connection: close\r\n\r\n"
            return output

        setattr(self.conn, "send", send_closing)  # noqa: B010 (an instance's method, replaced)
        self._follow()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a body answered already: read, so that closing does not reset the answer away
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY:
            self._linger()  # answered before its body was in: the rest is not waited for
        super().on_response_complete()
        self._waiting_since = time.monotonic()
        self._disarm()
        self._follow()  # the next request on this connection gets the same deadlines

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._disarm()
        super().connection_lost(exc)

    def _waiting(self) -> bool:
        """Holding a connection without a whole request in: its headers or body not in yet, or idle keep-alive."""
        return self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing()

    def _follow(self) -> None:
        """Keep the deadline of the part of the request awaited now: its headers, its body, or none once it is in.
        Data arriving does not push a deadline back."""
        state = self.conn.their_state
        part = state if state in (h11.IDLE, h11.SEND_BODY) else None
        if part is self._timed:
            return
        self._disarm()
        if part is not None and not self.transport.is_closing():
            timeout = self.header_timeout_s if part is h11.IDLE else self.body_timeout_s
            self._timer, self._timed = self.loop.call_later(timeout, self._too_slow), part

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timed = None, None

    def _linger(self) -> None:
        """Close gently: the answer is sent with the write side's end, what the client still sends is read and
        dropped for a moment (a close with unread data would reset the connection, the answer with it)."""
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def _too_slow(self) -> None:
        if self._waiting():
            self.transport.close()

    def _evict_one(self) -> bool:
        waiting = [c for c in self.connections if isinstance(c, GuardedH11Protocol) and c._waiting()]
        if not waiting:
            return False
        # One answered already (lingering) goes first, then one that has not sent its headers, before one sending a
        # body: floods needing no token must not cut a signed-in upload short, nor keep a new client out.
        oldest = min(waiting, key=lambda c: (not c._lingering, c.conn.their_state is not h11.IDLE, c._waiting_since))
        oldest.transport.close()
        self.connections.discard(oldest)
        return True


def guarded_protocol(header_timeout_s: float, body_timeout_s: float, max_connections: int) -> type[Any]:
    """The protocol class for uvicorn.Config(http=...), with these limits."""
    limits = {
        "header_timeout_s": header_timeout_s,
        "body_timeout_s": body_timeout_s,
        "max_connections": max_connections,
    }
    return type("GuardedH11", (GuardedH11Protocol,), limits)


async def serve(
    app: ASGIApp,
    sockets: list[socket.socket],
    *,
    header_timeout_s: float,
    body_timeout_s: float,
    max_connections: int,
    grace_s: int,
    on_stop: Callable[[], None],
) -> None:
    """Serve `app` on `sockets` until SIGTERM or SIGINT, then stop gracefully: no new connections, requests in
    flight get `grace_s` seconds. `on_stop` runs (in the loop) as the stop begins."""
    config = uvicorn.Config(
        app,
        http=guarded_protocol(header_timeout_s, body_timeout_s, max_connections),
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=grace_s,
    )
    loop = asyncio.get_running_loop()

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            loop.call_soon_threadsafe(on_stop)
            super().handle_exit(sig, frame)

    # uvicorn re-raises the signal for the previous handler once it has stopped; ours absorbs it, so that the
    # caller can finish its own shutdown and exit 0.
    previous = {sig: signal.signal(sig, _absorb) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        await Server(config).serve(sockets=sockets)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _absorb(signum: int, frame: object) -> None:
    """The stop was already handled gracefully by uvicorn."""
