"""stdin as async lines without a worker thread, so that a signal can really stop the stdio server."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator

MAX_LINE_BYTES = 64 * 1024 * 1024  # one JSON-RPC message per line; tool arguments can be large


class PipeLines:
    """The lines of a pipe, read by the event loop. The SDK's default reads stdin in a thread, which a
    cancelled task cannot interrupt: the server would hang on SIGTERM until the client wrote again."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", "replace")


async def open_stdin_lines() -> PipeLines | None:
    """Non-blocking lines of stdin when it is a pipe or socket (what MCP clients give us); None otherwise.
    A terminal or a file is left to the SDK: making a shared tty non-blocking would upset the user's shell."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    pipe = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return PipeLines(reader)
