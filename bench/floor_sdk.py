"""Floor: a bare `mcp` SDK server with an echo tool (stdio, or HTTP with `http PORT`), and a naive `run` tool
that starts a shell command and waits for it (and `spawn`, the same for an argv, e.g. a bare bwrap): no record,
no supervisor, no output files, no sandbox of its own."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from mcp.server.mcpserver import MCPServer

server: MCPServer = MCPServer("floor")


@server.tool()
async def echo(text: str = "") -> str:
    """Echo the text back."""
    return text


@server.tool()
async def run(command: str) -> int:
    """Run a shell command; its exit code."""
    process = await asyncio.create_subprocess_shell(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return await process.wait()


@server.tool()
async def spawn(argv: list[str]) -> int:
    """Run a program with its arguments; its exit code."""
    process = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return await process.wait()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), stateless_http=True, json_response=True)
    else:
        server.run()
