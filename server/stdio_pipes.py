"""MCP over stdin and stdout pipes, served by the event loop itself, with no worker thread.

The SDK's stdio transport reads stdin in a thread, which a cancelled task cannot interrupt (the server would
hang on SIGTERM until the client wrote again). When both ends are pipes or sockets, as MCP clients give them,
we attach them to the loop instead. A terminal or a file is left to the SDK: making a shared tty non-blocking
would upset the user's shell. Either way, a line that is not a JSON-RPC message is answered
(AnsweringUnparsable), and a message with text that is not valid Unicode is mended, not fatal."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.shared.message import SessionMessage
from mcp.types import ErrorData, JSONRPCError
from pydantic import ValidationError

from providers.answers import safe_value
from server.unreadable import mended_message, request_id
from tools.sdk import parse_line, unparsed_line

MAX_LINE_BYTES = 64 * 1024 * 1024  # one JSON-RPC message per line; tool arguments can be large
Incoming = SessionMessage | Exception  # what a transport hands the session: a message, or why a line was not one


class Oversized(Exception):
    """A line longer than MAX_LINE_BYTES: skipped unread, and answered in its turn with a parse error."""


async def pipe_lines(reader: asyncio.StreamReader) -> AsyncIterator[str | Oversized]:
    """The lines of stdin. A line longer than MAX_LINE_BYTES is not read into memory: it comes as Oversized."""
    skipping = False
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as end:  # end of stdin, perhaps after a last unterminated line
            if not end.partial and not skipping:
                return
            line = end.partial
        except asyncio.LimitOverrunError as over:  # drop what is buffered of the long line, up to its end
            skipping = True
            await reader.readexactly(over.consumed)
            continue
        if skipping:  # the end of the long line
            skipping = False
            yield Oversized(f"message longer than {MAX_LINE_BYTES // (1024 * 1024)} MB; not read")
        else:
            yield line.decode("utf-8", "replace")


def serialized(message: Any) -> bytes:
    """A message as one line of JSON. Text that is not valid Unicode (a lone surrogate) is mended, not left to
    fail the serializer: that would end the server (tools mend their results already; this is the last check)."""
    try:
        text: str = message.model_dump_json(by_alias=True, exclude_unset=True)
    except ValueError:  # pydantic's serialization error
        dumped = safe_value(message.model_dump(mode="json", by_alias=True, exclude_unset=True))
        text = json.dumps(dumped, ensure_ascii=False, separators=(",", ":"))
    return text.encode() + b"\n"


@dataclass
class Pipes:
    """stdin's lines, and stdout on the event loop: each `send` is one line of the wire, written whole (never
    interleaved)."""

    stdin: AsyncIterator[str | Oversized]
    stdout: asyncio.StreamWriter

    async def send(self, line: bytes) -> None:
        if not self.stdout.transport.is_closing():
            self.stdout.write(line)
        try:
            await self.stdout.drain()
        except ConnectionError:
            pass  # the client has gone; its end of stdin closes too, and that ends the server


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@asynccontextmanager
async def open_stdio_pipes() -> AsyncIterator[Pipes | None]:
    """stdin and stdout on the event loop when both are pipes or sockets; None otherwise.

    The wire moves to private descriptors, and fd 1 points at stderr meanwhile (as the SDK does), so a
    stray print cannot corrupt the protocol stream."""
    try:
        fds = sys.stdin.fileno(), sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        yield None
        return
    if sys.platform == "win32" or not all(_is_pipe(fd) for fd in fds):
        yield None
        return
    import fcntl

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    stdin = os.fdopen(fcntl.fcntl(fds[0], fcntl.F_DUPFD_CLOEXEC, 3), "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    sys.stdout.flush()
    wire = fcntl.fcntl(fds[1], fcntl.F_DUPFD_CLOEXEC, 3)
    saved = fcntl.fcntl(fds[1], fcntl.F_DUPFD_CLOEXEC, 3)  # the transport closes `wire` if the client goes
    os.dup2(sys.stderr.fileno(), fds[1])
    # A StreamReaderProtocol is the public protocol with the flow control a StreamWriter needs; its reader
    # stays unused on a write pipe.
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), os.fdopen(wire, "wb", buffering=0)
    )
    stdout = asyncio.StreamWriter(transport, protocol, None, loop)

    try:
        yield Pipes(pipe_lines(reader), stdout)
    finally:
        os.dup2(saved, fds[1])
        os.close(saved)
        transport.close()  # every message was written; close() still writes out anything left


@asynccontextmanager
async def pipe_streams(pipes: Pipes) -> AsyncIterator[tuple[ObjectReceiveStream[Incoming], ObjectSendStream[Any]]]:
    """The session's read and write streams over the pipes: each line read as the SDK's stdio transport reads it
    (a message, or the error saying why it is none), each message written as one line."""
    read_in, read = anyio.create_memory_object_stream[Incoming](0)
    write, write_out = anyio.create_memory_object_stream[SessionMessage](0)

    async def read_lines() -> None:
        async with read_in:
            async for line in pipes.stdin:
                await read_in.send(line if isinstance(line, Oversized) else parse_line(line))

    async def write_lines() -> None:
        async with write_out:
            async for session_message in write_out:
                await pipes.send(serialized(session_message.message))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_lines)
        tg.start_soon(write_lines)
        yield read, write
        tg.cancel_scope.cancel()


class AnsweringUnparsable(ObjectReceiveStream[SessionMessage]):
    """The session's read stream, minus the lines the transport could not parse: each of those is answered at
    once, -32700 (not JSON) or -32600 (JSON, but not a JSON-RPC message, or nested deeper than the transport
    reads), with the request's id when it can be found in the line (else null, as JSON-RPC asks); the SDK alone
    would drop them and leave the client waiting for ever. A request the transport refused only for a lone
    surrogate escape (valid JSON, but no valid text) is mended (U+FFFD) and served. A wrapper, not a task in
    between, so the end of stdin reaches the session exactly as before."""

    def __init__(self, read_stream: ObjectReceiveStream[Incoming], write_stream: ObjectSendStream[Any]) -> None:
        self._read = read_stream
        self._write = write_stream

    async def receive(self) -> SessionMessage:
        while True:
            item = await self._read.receive()
            if not isinstance(item, Exception):
                return item
            mended = _mended_request(item)
            if mended is not None:
                return mended
            await self._write.send(_invalid_message_reply(item))

    async def __anext__(self) -> SessionMessage:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):  # closed here too (anyio's own ends on EndOfStream only)
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._read.aclose()


def _mended_request(error: Exception) -> SessionMessage | None:
    """The message of a line the transport refused only because a string in it is not valid text (a lone
    surrogate escape, which JSON allows): its strings mended, as a SessionMessage; None for any other line."""
    line = unparsed_line(error)
    if line is None or not isinstance(error, ValidationError) or error.errors()[0]["type"] != "json_invalid":
        return None
    message = mended_message(line)
    return None if message is None else SessionMessage(types.jsonrpc_message_adapter.validate_python(message))


def _invalid_message_reply(error: Exception) -> SessionMessage:
    errors = error.errors() if isinstance(error, ValidationError) else []
    kinds = {e["type"] for e in errors}
    line = unparsed_line(error)
    if isinstance(error, Oversized):
        code, what = -32700, f"Parse error: {error}"
    elif kinds and "json_invalid" not in kinds:
        code, what = -32600, "Invalid Request: not a JSON-RPC message"
    elif any("recursion limit" in e["msg"] for e in errors):
        code, what = -32600, "Invalid Request: nested deeper than the server reads"
    else:
        code, what = -32700, "Parse error: not a JSON-RPC message"
    found = request_id(line) if line is not None else None
    if found is None and errors and isinstance(errors[0].get("input"), dict):  # JSON, not a JSON-RPC message
        given = errors[0]["input"].get("id")
        found = given if isinstance(given, str | int) and not isinstance(given, bool) else None
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=found, error=ErrorData(code=code, message=what)))
