"""Requests the SDK's transports cannot read, answered as well as they can be: JSON that is valid but holds a
lone surrogate escape (no valid text; the SDK's reader refuses it) is mended (U+FFFD) and served; anything
else unreadable is answered with the request's own id when the text holds one, not with id null (JSON-RPC's
"if it cannot be determined"), so the client does not wait for an answer that never comes.

Shared by the stdio pipes (server/stdio_pipes.py) and, as ASGI middleware, the HTTP endpoint."""

from __future__ import annotations

import json
import re
from typing import Any

import mcp_types as types
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from providers.answers import safe_value
from server.bodies import HeldBody, hold_body
from tools.sdk import is_unreadable_body_answer

REQUEST_DEPTH = 200  # a mended request nested deeper than this is refused, as the transport's reader refuses
_ID_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')


def mended_message(text: str) -> Any:
    """`text` as a JSON-RPC message (its JSON value) with every string made valid, or None when it is not JSON,
    is nested deeper than REQUEST_DEPTH, or is not a JSON-RPC message even so."""
    try:
        mended = safe_value(json.loads(text), max_depth=REQUEST_DEPTH)
        types.jsonrpc_message_adapter.validate_python(mended, by_name=False)
    except (ValueError, RecursionError):
        return None
    return mended


def request_id(text: str) -> str | int | None:
    """The `id` of a JSON-RPC request that cannot be parsed whole (too deep, not valid text, cut short): the
    value of the top-level object's "id" key, when it is a string or an integer; else None. Strings are
    skipped as tokens, so an "id" inside params or inside a string does not count."""
    depth = 0
    for token in _ID_TOKENS.finditer(text):
        found = token.group()
        if found in ("{", "["):
            depth += 1
        elif found in ("}", "]"):
            depth -= 1
        elif depth == 1 and found == '"id"':
            rest = text[token.end() :].lstrip()
            if not rest.startswith(":"):
                continue  # a value "id", not the key
            try:
                value, _ = json.JSONDecoder().raw_decode(rest[1:].lstrip())
            except (ValueError, RecursionError):
                return None
            return value if isinstance(value, str | int) and not isinstance(value, bool) else None
        elif depth == 0:
            return None  # the text is not an object
    return None


def unreadable_requests(app: ASGIApp, path: str, max_body: int) -> ASGIApp:
    """ASGI middleware for POST requests to `path`: when the SDK answers a body with a parse error (400, id
    null), the body is mended and served again if it can be, else the error carries the request's id.
    Other requests pass as they are; only the body is held (the SDK holds it too)."""

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(path):
            await app(scope, receive, send)
            return
        request = await hold_body(receive, max_body)
        held = _HeldParseError(send)
        await app(scope, request.replay(receive), held)
        if held.status is None:
            return
        text = request.body.decode("utf-8", "replace")
        mended = mended_message(text) if not request.more else None
        if mended is not None:
            again = json.dumps(mended, ensure_ascii=False).encode()
            await app(scope, HeldBody(again, False, None).replay(receive), send)
            return
        await held.release(request_id(text) if not request.more else None)

    return served


class _HeldParseError:
    """A `send` that passes everything on, except a 400 JSON-RPC parse error with id null, which it holds."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._start: Message | None = None
        self._body = b""
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 400:
            self._start = message
            return
        if self._start is None:
            await self._send(message)
            return
        self._body += message.get("body", b"")
        if message.get("more_body", False):
            return
        if is_unreadable_body_answer(self._start["status"], self._body):
            self.status = 400
            return
        await self._flush()

    async def release(self, request_id: str | int | None) -> None:
        if request_id is not None:
            error = json.loads(self._body)
            self._body = json.dumps({**error, "id": request_id}).encode()
        await self._flush()

    async def _flush(self) -> None:
        assert self._start is not None
        headers = [(k, v) for k, v in self._start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(self._body)).encode()))
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": self._body, "more_body": False})
