"""Streamable HTTP serving: bearer auth, Host/Origin checks, limits, /healthz, one shared state."""

from __future__ import annotations

import hmac
import ipaddress
import json
import signal
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.app import create_server, freeze_startup_objects, version
from server.config import ConfigError, Settings
from server.state import AppState

MCP_PATH = "/mcp"


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str, insecure_no_auth: bool) -> None:
    """Refuse to serve beyond this machine without a token, unless the user insists."""
    if settings.http_token is None and not is_loopback(host) and not insecure_no_auth:
        raise ConfigError(
            f"refusing to serve on {host} without authentication: set RUNTIMES_MCP_HTTP_TOKEN "
            "(clients then send 'Authorization: Bearer <token>'), bind to 127.0.0.1, or pass --insecure-no-auth "
            "if something in front of this server already authenticates"
        )


def local_code_allowed(settings: Settings, host: str) -> bool:
    """Tools that run commands on this machine are offered over HTTP only with a token or on loopback."""
    return settings.http_token is not None or is_loopback(host)


class BearerAuth:
    """ASGI middleware: every request to /mcp needs `Authorization: Bearer <token>` (constant-time compare)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(MCP_PATH):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization")
        if given is not None and hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        challenge = 'Bearer realm="runtimes-mcp"' + ("" if given is None else ', error="invalid_token"')
        body = {
            "error": "unauthorized",
            "message": "send Authorization: Bearer <RUNTIMES_MCP_HTTP_TOKEN>"
            if given is None
            else "the bearer token is not valid",
        }
        response = Response(
            json.dumps(body), status_code=401, media_type="application/json", headers={"WWW-Authenticate": challenge}
        )
        await response(scope, receive, send)


def build_http_app(
    server: MCPServer[Any], settings: Settings, *, host: str, stateless: bool, json_response: bool
) -> ASGIApp:
    @server.custom_route("/healthz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": version()})

    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(settings.allowed_hosts),
        allowed_origins=list(settings.allowed_origins),
    )
    app: Starlette = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=stateless,
        json_response=json_response,
        host=host,
        transport_security=security,
        max_request_body_size=settings.max_request_bytes,
    )
    if settings.http_token is None:
        return app
    return BearerAuth(app, settings.http_token.get_secret_value())


async def serve_http(
    settings: Settings, host: str, port: int, stateless: bool, json_response: bool, insecure_no_auth: bool = False
) -> int:
    import uvicorn

    check_exposure(settings, host, insecure_no_auth)
    async with AppState.open(settings) as state:
        server = create_server(settings, state, local_code=local_code_allowed(settings, host))
        app = build_http_app(server, settings, host=host, stateless=stateless, json_response=json_response)
        freeze_startup_objects()
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=settings.shutdown_grace_s,
        )
        # uvicorn turns SIGTERM/SIGINT into a graceful stop: no new connections, in-flight calls get the
        # grace period. It then re-raises the signal for the previous handler; ours absorbs it so that
        # AppState can stop every local process and the command can exit 0.
        previous = {sig: signal.signal(sig, _absorb) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            await uvicorn.Server(config).serve()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0


def _absorb(signum: int, frame: object) -> None:
    """The stop was already handled gracefully by uvicorn."""
