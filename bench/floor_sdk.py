"""Floor: a bare `mcp` SDK server with one echo tool (stdio, or HTTP with `http PORT`)."""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer

server: MCPServer = MCPServer("floor")


@server.tool()
async def echo(text: str = "") -> str:
    """Echo the text back."""
    return text


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), stateless_http=True, json_response=True)
    else:
        server.run()
