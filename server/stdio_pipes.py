"""stdin and stdout pipes served by the event loop itself, with no worker thread.

The SDK's stdio transport reads stdin in a thread, which a cancelled task cannot interrupt (the server
would hang on SIGTERM until the client wrote again), and hands every write and flush of stdout to a
thread (two thread hops per message). When both ends are pipes or sockets, as MCP clients give them,
we attach them to the loop instead. A terminal or a file is left to the SDK: making a shared tty
non-blocking would upset the user's shell."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

MAX_LINE_BYTES = 64 * 1024 * 1024  # one JSON-RPC message per line; tool arguments can be large


class PipeLines:
    """The lines of stdin, for the SDK's stdio_server(stdin=...)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
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
    try:
        yield Pipes(PipeLines(reader), PipeWriter(writer))
    finally:
        os.dup2(saved, fds[1])
        os.close(saved)
        transport.close()  # the SDK flushed every message; close() still writes out anything left
