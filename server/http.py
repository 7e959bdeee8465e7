"""Streamable HTTP serving: one shared state for every MCP session, /mcp plus /healthz."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.app import create_server, version
from server.config import Settings
from server.state import AppState


def build_http_app(server: MCPServer[Any], *, host: str, stateless: bool, json_response: bool) -> Starlette:
    @server.custom_route("/healthz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": version()})

    return server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=stateless,
        json_response=json_response,
        host=host,
    )


async def serve_http(settings: Settings, host: str, port: int, stateless: bool, json_response: bool) -> int:
    import uvicorn

    async with AppState.open(settings) as state:
        server = create_server(settings, state)
        app = build_http_app(server, host=host, stateless=stateless, json_response=json_response)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        await uvicorn.Server(config).serve()
    return 0
