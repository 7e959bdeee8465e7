"""HTTP/1.1 over asyncio streams, framed by h11: one side of a connection with every wait bounded, and the
header rules a proxy follows (hop-by-hop headers stay on their hop)."""

from __future__ import annotations

import asyncio
import contextlib
import http
from dataclasses import dataclass
from typing import Any

import h11

Headers = list[tuple[bytes, bytes]]
READ_SIZE = 64 * 1024

# Meant for one hop only (RFC 9110 7.6.1), plus the proxy's own. Framing headers are kept: h11 frames each hop
# from them and checks them.
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authorization",
    b"proxy-authenticate",
    b"te",
    b"trailer",
    b"upgrade",
}
_NEVER_DROPPED = {b"host", b"content-length", b"transfer-encoding"}


@dataclass(frozen=True)
class Bounds:
    """What one proxy may hold: nothing waits, grows or multiplies without a limit."""

    max_connections: int = 256  # sandbox connections at once; past it, a 503
    max_head_bytes: int = 32 * 1024  # a request's (or response's) line and headers; past it, a 431
    idle_timeout: float = 120.0  # a connection with no byte either way this long is closed
    connect_timeout: float = 10.0  # name lookup, then TCP connect and TLS handshake to a server
    handshake_timeout: float = 10.0  # the sandbox's TLS handshake with the proxy
    max_rewritten_body: int = 1024 * 1024  # a body a secret is put in, held whole to give its new length


class PeerGone(Exception):
    """The other end closed, broke the protocol, or stayed silent past the idle timeout."""


class HttpStream:
    """One HTTP/1.1 connection: h11's state machine over a reader and a writer. `role` is h11.SERVER for the
    sandbox's side and h11.CLIENT for a server's."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        role: type[h11.CLIENT] | type[h11.SERVER],
        bounds: Bounds,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(role, max_incomplete_event_size=bounds.max_head_bytes)
        self.idle_timeout = bounds.idle_timeout

    async def next_event(self) -> Any:
        """The next h11 event (Request, Response, Data, EndOfMessage, ConnectionClosed, ...). Raises
        h11.RemoteProtocolError for a malformed or oversized message, PeerGone for silence past the timeout."""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        data = await self.reader.read(READ_SIZE)
                except TimeoutError:
                    raise PeerGone("idle timeout") from None
                except OSError as error:
                    raise PeerGone(str(error)) from None
                self.conn.receive_data(data)
                continue
            if event is h11.PAUSED:
                raise RuntimeError("read past the end of a message before answering it")
            return event

    async def send(self, *events: Any) -> None:
        """Write `events` and wait (bounded) until the peer has taken enough of them."""
        for event in events:
            data = self.conn.send(event)
            if data:
                self.writer.write(data)
        try:
            async with asyncio.timeout(self.idle_timeout):
                await self.writer.drain()
        except TimeoutError:
            raise PeerGone("idle timeout while writing") from None
        except OSError as error:
            raise PeerGone(str(error)) from None

    def reusable(self) -> bool:
        """Both directions finished their message cleanly: ready for the next exchange (and reset for it)."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
            return True
        return False

    def can_answer(self) -> bool:
        """Can a response still be sent to this (server-side) connection?"""
        return self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    def body_done(self) -> bool:
        """Has the request ended? (Pulls the end of a bodyless request, which needs no more data.)"""
        if self.conn.their_state is h11.SEND_BODY:
            with contextlib.suppress(h11.ProtocolError):
                if self.conn.next_event() is h11.NEED_DATA:
                    return False
        return self.conn.their_state is h11.DONE

    def pause_reading(self) -> None:
        """Leave what the peer sends next in the kernel's buffer until `resume_reading`."""
        transport = self.writer.transport
        if isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self.writer.transport
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
            transport.resume_reading()

    async def aclose(self, graceful: bool = True) -> None:
        """Close the connection; a peer that does not finish closing (a TLS close_notify never answered) within
        a second is cut off."""
        if not graceful:
            self.writer.transport.abort()
            return
        self.writer.close()
        try:
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()
        except (TimeoutError, OSError):
            self.writer.transport.abort()


def end_to_end(headers: Any) -> Headers:
    """The headers of `headers` (an h11 header list) meant for the next hop as well."""
    items: Headers = [(bytes(name).lower(), bytes(value)) for name, value in headers]
    listed = {
        token.strip().lower() for name, value in items if name == b"connection" for token in value.split(b",")
    } - _NEVER_DROPPED
    return [(name, value) for name, value in items if name not in HOP_BY_HOP and name not in listed]


def has_body(headers: Headers) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def header(headers: Headers, name: bytes) -> bytes | None:
    return next((value for key, value in headers if key == name), None)


def replace_header(headers: Headers, name: bytes, value: bytes | None) -> Headers:
    """`headers` without `name`, and with it set to `value` (first) unless that is None."""
    kept = [(key, old) for key, old in headers if key != name]
    return kept if value is None else [(name, value), *kept]


def plain_response(status: int, message: str, proxy_error: str, close: bool) -> list[Any]:
    """A response the proxy writes itself: `message` as one line of text, and a Proxy-Status (RFC 9209)
    naming the error, so a client can tell it from the server's own."""
    body = (message + "\n").encode()
    headers: Headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"proxy-status", b"runtimes-mcp; error=" + proxy_error.encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    reason = http.HTTPStatus(status).phrase.encode()
    return [h11.Response(status_code=status, headers=headers, reason=reason), h11.Data(data=body), h11.EndOfMessage()]
