"""stdin and stdout pipes served by the event loop itself, with no worker thread.

The SDK's stdio transport reads stdin in a thread, which a cancelled task cannot interrupt (the server
would hang on SIGTERM until the client wrote again), and hands every write and flush of stdout to a
thread (two thread hops per message). When both ends are pipes or sockets, as MCP clients give them,
we attach them to the loop instead. A terminal or a file is left to the SDK: making a shared tty
non-blocking would upset the user's shell."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from providers.answers import safe_value
from server.rows_wire import COMPACT, carried_rows, encoded_slices, event_rows_reply
from server.unreadable import mended_message, request_id

MAX_LINE_BYTES = 64 * 1024 * 1024  # one JSON-RPC message per line; tool arguments can be large
WRITE_SLICE = 64 * 1024  # a pipe's buffer: what one write hands over without the transport keeping a copy
STREAM_ABOVE_CHARS = 128 * 1024  # replies whose text passes this are encoded as they are written
STREAM_ENCODER = json.JSONEncoder(**COMPACT)


class PipeLines:
    """The lines of stdin, for the SDK's stdio_server(stdin=...). A line longer than MAX_LINE_BYTES is not
    read into memory: it is answered with a parse error (via `oversized`) and skipped, and serving goes on."""

    def __init__(self, reader: asyncio.StreamReader, oversized: Callable[[], Awaitable[None]]) -> None:
        self._reader = reader
        self._oversized = oversized

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        skipping = False
        while True:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as end:  # end of stdin, perhaps after a last unterminated line
                if not end.partial or skipping:
                    raise StopAsyncIteration from None
                line = end.partial
            except asyncio.LimitOverrunError as over:  # drop what is buffered of the long line, up to its end
                if not skipping:
                    await self._oversized()
                    skipping = True
                await self._reader.readexactly(over.consumed)
                continue
            if skipping:  # the end of the long line
                skipping = False
                continue
            return line.decode("utf-8", "replace")


class PipeWriter:
    """stdout on the event loop. `messages()` is the stream the server writes its JSON-RPC messages to: each
    goes out as one line, serialized straight to bytes and handed to the pipe a slice at a time, so a large
    reply is held once (not as text, then bytes, then the transport's copy of what the pipe did not take).
    `write` and `flush` serve the SDK's stdio_server(stdout=...) and the parse-error lines."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._lock = asyncio.Lock()  # one line at a time: a reply written in slices is never interleaved

    async def write(self, text: str) -> None:
        async with self._lock:
            await self._send(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._drain()

    @asynccontextmanager
    async def messages(self) -> AsyncIterator[Any]:
        """A send stream for SessionMessages, written out in order until it is closed (on leaving)."""
        import anyio

        send, receive = anyio.create_memory_object_stream[Any](0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._write_messages, receive)
            async with send:
                yield send

    async def _write_messages(self, receive: Any) -> None:
        async with receive:
            async for session_message in receive:
                message = session_message.message
                async with self._lock:
                    rows = _event_rows(message)
                    if rows is not None:
                        await self._send_event_rows(message, rows)
                    elif _text_chars(message) > STREAM_ABOVE_CHARS:
                        await self._send_streamed(message)
                    else:
                        await self._send(_serialized(message), b"\n")

    async def _send_streamed(self, message: Any) -> None:
        """A large reply, encoded piece by piece as it is written: a serializer building the whole line first
        holds it twice or more while its buffer grows. Its result is plain JSON data already (the SDK dumped it)."""
        head = json.dumps({"jsonrpc": message.jsonrpc, "id": message.id}, separators=(",", ":"))
        body = STREAM_ENCODER.iterencode(safe_value(message.result))  # mended first: a failure mid-line tears it
        for data in encoded_slices(itertools.chain([head[:-1], ',"result":'], body, ["}\n"]), slice_chars=WRITE_SLICE):
            await self._send(data)

    async def _send_event_rows(self, message: Any, rows: list[str]) -> None:
        """A page of events that came as JSON text (server.rows_wire), written from the rows a slice at a time."""
        for data in event_rows_reply(message.jsonrpc, message.id, message.result, rows):
            await self._send(data)
        await self._send(b"", b"\n")

    async def _send(self, data: bytes, end: bytes = b"") -> None:
        if len(data) <= WRITE_SLICE:
            self._write(data + end)
        else:
            view = memoryview(data)
            for start in range(0, len(view), WRITE_SLICE):
                self._write(view[start : start + WRITE_SLICE])
                await self._drain()
            self._write(end)
        await self._drain()

    def _write(self, data: bytes | memoryview) -> None:
        if data and not self._writer.transport.is_closing():
            self._writer.write(data)

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except ConnectionError:
            pass  # the client has gone; its end of stdin closes too, and that ends the server


def _serialized(message: Any) -> bytes:
    """A message as one line of JSON. Text that is not valid Unicode (a lone surrogate) is mended, not left to
    fail the serializer: that would end the server (tools mend their results already; this is the last check)."""
    try:
        data: bytes = message.__pydantic_serializer__.to_json(message, by_alias=True, exclude_unset=True)
    except ValueError:  # pydantic's serialization error
        dumped = safe_value(message.model_dump(mode="json", by_alias=True, exclude_unset=True))
        return json.dumps(dumped, **COMPACT).encode()
    return data


def _event_rows(message: Any) -> list[str] | None:
    """The events of a tool result that carries them as JSON text (tools.results.ROWS_META), else None."""
    rows = carried_rows(getattr(message, "result", None))
    return rows if isinstance(rows, list) else None


def _text_chars(message: Any) -> int:
    """How much text a tool result carries (its content blocks), 0 for any other message."""
    result = getattr(message, "result", None)
    content = result.get("content") if isinstance(result, dict) else None
    if not isinstance(content, list):
        return 0
    return sum(len(block.get("text", "")) for block in content if isinstance(block, dict))


def parse_error_line(detail: str) -> str:
    """A JSON-RPC parse error (-32700, id null) as one line of the stdio wire."""
    return (
        json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": f"Parse error: {detail}"}})
        + "\n"
    )


@dataclass
class Pipes:
    stdin: PipeLines
    stdout: PipeWriter


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
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    stdout = PipeWriter(writer)

    async def oversized() -> None:
        await stdout.write(parse_error_line(f"message longer than {MAX_LINE_BYTES // (1024 * 1024)} MB; not read"))
        await stdout.flush()

    try:
        yield Pipes(PipeLines(reader, oversized), stdout)
    finally:
        os.dup2(saved, fds[1])
        os.close(saved)
        transport.close()  # the SDK flushed every message; close() still writes out anything left


class AnsweringUnparsable:
    """The session's read stream, minus the lines the transport could not parse: each of those is answered at
    once, -32700 (not JSON) or -32600 (JSON, but not a JSON-RPC message, or nested deeper than the transport
    reads), with the request's id when it can be found in the line (else null, as JSON-RPC asks); the SDK alone
    would drop them and leave the client waiting for ever. A request the transport refused only for a lone
    surrogate escape (valid JSON, but no valid text) is mended (U+FFFD) and served. A wrapper, not a task in
    between, so the end of stdin reaches the session exactly as before."""

    def __init__(self, read_stream: Any, write_stream: Any) -> None:
        self._read = read_stream
        self._write = write_stream

    @property
    def last_context(self) -> Any:
        return getattr(self._read, "last_context", None)

    async def receive(self) -> Any:
        while True:
            item = await self._read.receive()
            if not isinstance(item, Exception):
                return item
            mended = _mended_request(item)
            if mended is not None:
                return mended
            await self._write.send(_invalid_message_reply(item))

    def __aiter__(self) -> AnsweringUnparsable:
        return self

    async def __anext__(self) -> Any:
        import anyio

        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._read.aclose()

    async def __aenter__(self) -> AnsweringUnparsable:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _unparsed_line(error: Exception) -> str | None:
    """The line the transport could not parse (pydantic keeps it as the error's input)."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return None
    given = error.errors(include_url=False)[0].get("input")
    return given if isinstance(given, str) else None


def _mended_request(error: Exception) -> Any:
    """The message of a line the transport refused only because a string in it is not valid text (a lone
    surrogate escape, which JSON allows): its strings mended, as a SessionMessage; None for any other line."""
    import mcp_types as types
    from mcp.shared.message import SessionMessage
    from pydantic import ValidationError

    line = _unparsed_line(error)
    if line is None or not isinstance(error, ValidationError) or error.errors()[0]["type"] != "json_invalid":
        return None
    message = mended_message(line)
    return None if message is None else SessionMessage(types.jsonrpc_message_adapter.validate_python(message))


def _invalid_message_reply(error: Exception) -> Any:
    from mcp.shared.message import SessionMessage
    from mcp.types import ErrorData, JSONRPCError
    from pydantic import ValidationError

    errors = error.errors() if isinstance(error, ValidationError) else []
    kinds = {e["type"] for e in errors}
    line = _unparsed_line(error)
    if kinds and "json_invalid" not in kinds:
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
