"""HTTP replies that carry a page of events as it is stored (server.rows_wire), written into the body a slice
at a time.

The SDK's HTTP transport dumps each reply whole (a string, then bytes, then an SSE event), after its result
pipeline has copied it: a page of events would be held several times over. So a tool answering an HTTP
request hands its rows to this middleware (tools.results.RowsHandoff) and the SDK frames a reply of a few
hundred bytes that marks where they go; the rows are written in its place as the body goes out, in JSON and
in SSE mode alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.rows_wire import carried_rows, event_rows_reply
from tools.results import ROWS_WIRE, RowsHandoff


class EventRowsReplies:
    """ASGI middleware: every POST gets a RowsHandoff for its tool call (the SDK runs the handler in this task's
    context), and the reply that marks the handed rows is written out with them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        handoff = RowsHandoff()
        token = ROWS_WIRE.set(handoff)
        try:
            await self.app(scope, receive, _RowsWriter(send, handoff))
        finally:
            ROWS_WIRE.reset(token)


class _RowsWriter:
    def __init__(self, send: Send, handoff: RowsHandoff) -> None:
        self._send = send
        self._handoff = handoff

    async def __call__(self, message: Message) -> None:
        rows = self._handoff.rows
        if rows is None:
            await self._send(message)
        elif message["type"] == "http.response.start":  # JSON mode: the length of the short reply is not the body's
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
            await self._send({**message, "headers": headers})
        elif message["type"] == "http.response.body" and (parts := _with_rows(message.get("body", b""), rows)):
            self._handoff.rows = None
            more = message.get("more_body", False)
            head, slices, tail = parts
            await self._send({"type": "http.response.body", "body": head, "more_body": True})
            for data in slices:
                await self._send({"type": "http.response.body", "body": data, "more_body": True})
            await self._send({"type": "http.response.body", "body": tail, "more_body": more})
        else:
            await self._send(message)


def _with_rows(body: bytes, rows: list[str]) -> tuple[bytes, Iterator[bytes], bytes] | None:
    """(what comes before the reply, the reply with `rows` in place, what follows it) when `body` is the JSON
    reply (JSON mode) or one SSE event (SSE mode) that marks these rows; None for anything else."""
    span = (0, len(body)) if body.startswith(b"{") else _data_line(body)
    if span is None:
        return None
    start, end = span
    try:
        reply: Any = json.loads(body[start:end])
    except ValueError:
        return None
    result = reply.get("result") if isinstance(reply, dict) else None
    if not isinstance(result, dict) or carried_rows(result) != len(rows):
        return None
    return body[:start], event_rows_reply(reply.get("jsonrpc", "2.0"), reply.get("id"), result, rows), body[end:]


def _data_line(body: bytes) -> tuple[int, int] | None:
    """Where the data of an SSE event starts and ends in `body` (a JSON-RPC message is one line), or None."""
    if body.startswith(b"data: "):
        start = 6
    elif (line := body.find(b"\ndata: ")) >= 0:
        start = line + 7
    else:
        return None
    ends = [i for i in (body.find(b"\r", start), body.find(b"\n", start)) if i >= 0]
    return start, min(ends, default=len(body))
