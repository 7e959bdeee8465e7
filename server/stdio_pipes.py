"""stdin and stdout pipes served by the event loop itself, with no worker thread.

The SDK's stdio transport reads stdin in a thread, which a cancelled task cannot interrupt (the server
would hang on SIGTERM until the client wrote again), and hands every write and flush of stdout to a
thread (two thread hops per message). When both ends are pipes or sockets, as MCP clients give them,
we attach them to the loop instead. A terminal or a file is left to the SDK: making a shared tty
non-blocking would upset the user's shell."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

MAX_LINE_BYTES = 64 * 1024 * 1024  # one JSON-RPC message per line; tool arguments can be large


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
    """stdout for the SDK's stdio_server(stdout=...): `write` queues, `flush` waits for the pipe to take it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        if not self._writer.transport.is_closing():
            self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        try:
            await self._writer.drain()
        except ConnectionError:
            pass  # the client has gone; its end of stdin closes too, and that ends the server


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
    once, -32700 (not JSON) or -32600 (JSON, but not a JSON-RPC message), with id null, as JSON-RPC asks; the
    SDK alone would drop them and leave the client waiting for ever. A wrapper, not a task in between, so the
    end of stdin reaches the session exactly as before."""

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


def _invalid_message_reply(error: Exception) -> Any:
    from mcp.shared.message import SessionMessage
    from mcp.types import ErrorData, JSONRPCError
    from pydantic import ValidationError

    kinds = {e["type"] for e in error.errors()} if isinstance(error, ValidationError) else set()
    code, what = (-32700, "Parse error") if not kinds or "json_invalid" in kinds else (-32600, "Invalid Request")
    data = ErrorData(code=code, message=f"{what}: not a JSON-RPC message")
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=data))
