"""Streamable HTTP serving: bearer auth (a static token, or signing in with the team's identity provider),
Host/Origin checks, limits, /healthz, one shared state."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import anyio
import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from server import uvicorn_adapter
from server.app import create_server, freeze_startup_objects, version
from server.config import LOOPBACK_HOSTS, ConfigError, Settings
from server.host_check import exact_host_check
from server.sign_in import ASKED_SCOPES, Verifier, sign_in_requests
from server.state import AppState
from server.tasks import task_routing_headers
from server.tokens import TIMEOUT, Keys, TokenChecker, Unavailable, discover_jwks_uri
from server.unreadable import unreadable_requests
from tools import sdk

MCP_PATH = "/mcp"
WORKER_PORT_ENV = "RUNTIMES_MCP_WORKER_PORT"  # set by server/workers.py: a worker of --workers on this port


@dataclass(frozen=True)
class Access:
    """Who may call the HTTP server: a bearer token (the operator's, or one made for this run), or nobody
    checked at all (--insecure-no-auth, for a proxy that authenticates in front of it)."""

    token: str | None
    generated: bool
    local_code: bool  # offer the tools that run commands on this machine
    issuer: str | None = None  # users sign in with this identity provider (RUNTIMES_MCP_OAUTH_ISSUER)


def decide_access(settings: Settings, insecure_no_auth: bool, unauthenticated_exec: bool) -> Access:
    """Authentication is on unless the operator turns it off; without RUNTIMES_MCP_HTTP_TOKEN a token is made
    for this run (and printed, Jupyter-style). Without authentication, tools that run commands on this machine
    are not offered unless the operator opts in once more (--unauthenticated-local-exec)."""
    if unauthenticated_exec and not insecure_no_auth:
        raise ConfigError("--unauthenticated-local-exec only makes sense with --insecure-no-auth")
    if settings.oauth.issuer is not None:  # no token is made up then: users sign in, the operator may add one
        if insecure_no_auth:
            raise ConfigError(
                "--insecure-no-auth and RUNTIMES_MCP_OAUTH_ISSUER contradict each other. Next: drop "
                "--insecure-no-auth to sign users in, or unset the issuer to serve without authentication"
            )
        token = settings.http_token.get_secret_value() if settings.http_token is not None else None
        return Access(token, False, True, settings.oauth.issuer)
    if settings.http_token is not None:
        if insecure_no_auth:
            raise ConfigError("--insecure-no-auth and RUNTIMES_MCP_HTTP_TOKEN contradict each other: choose one")
        return Access(settings.http_token.get_secret_value(), False, True)
    if insecure_no_auth:
        return Access(None, False, unauthenticated_exec)
    return Access(secrets.token_urlsafe(32), True, True)


def announce(access: Access, host: str, port: int, stream: TextIO) -> None:
    """Say where the server is and how to reach it, in a few lines a person can copy from."""
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}{MCP_PATH}"
    if access.issuer is not None:
        static = " (or the static token RUNTIMES_MCP_HTTP_TOKEN)" if access.token is not None else ""
        print(f"runtimes-mcp: serving MCP at {url}; users sign in with {access.issuer}{static}", file=stream)
    elif access.token is None:
        exec_note = "" if access.local_code else "; tools that run commands on this machine are off"
        print(f"runtimes-mcp: serving MCP at {url} without authentication (--insecure-no-auth{exec_note})", file=stream)
    elif not access.generated:
        print(f"runtimes-mcp: serving MCP at {url}; clients send the bearer token RUNTIMES_MCP_HTTP_TOKEN", file=stream)
    else:
        config = {
            "mcpServers": {
                "runtimes": {"type": "http", "url": url, "headers": {"Authorization": f"Bearer {access.token}"}}
            }
        }
        print(
            f"runtimes-mcp: serving MCP at {url} with a bearer token made for this run (set RUNTIMES_MCP_HTTP_TOKEN "
            f"to choose one):\n    {access.token}\n  client config:\n    {json.dumps(config)}",
            file=stream,
        )
    stream.flush()


def bind(host: str, port: int, *, listen: bool, shared: bool = True) -> socket.socket:
    """A socket on host:port; `shared`: other processes of this user can bind it too (SO_REUSEPORT, for
    --workers). The parent's is not listening: it only holds the port (a listening one would get its share of
    the connections). A port in use is a ConfigError naming it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off only for sockets that say they are TCP (else 40 ms stalls)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port, or stop what uses it"
        ) from None
    return sock


def build_http_app(
    server: MCPServer[Any],
    settings: Settings,
    *,
    host: str,
    stateless: bool,
    json_response: bool,
    token: str | None,
    verifier: Verifier | None = None,
) -> ASGIApp:
    @server.custom_route("/healthz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": version(), "pid": os.getpid()})

    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        # loopback stays allowed next to the operator's names (a local client, a health check on the box)
        allowed_hosts=list(dict.fromkeys([*settings.allowed_hosts, *LOOPBACK_HOSTS])),
        allowed_origins=list(settings.allowed_origins),
    )
    app: Starlette = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=stateless,
        json_response=json_response,
        host=host,
        transport_security=security,
        max_request_body_size=settings.max_request_bytes,
        # stateful sessions: a cap (more get 503) and idle expiry (an expired id gets 404: initialize again)
        max_sessions=settings.max_sessions,
        session_idle_timeout=settings.session_idle_timeout_s,
    )
    limit = settings.max_request_bytes
    routed = exact_host_check(
        unreadable_requests(task_routing_headers(app, limit), MCP_PATH, limit),
        MCP_PATH,
        security.allowed_hosts,
        security.allowed_origins,
    )
    metadata_url = None
    if verifier is not None and settings.resource_url is not None and settings.oauth.issuer is not None:
        resource = settings.resource_url
        app.router.routes.extend(
            sdk.protected_resource_routes(resource, settings.oauth.issuer, list(ASKED_SCOPES), "runtimes-mcp")
        )
        metadata_url = sdk.resource_metadata_url(resource)
    if verifier is None and token is None:
        return routed
    return sign_in_requests(routed, verifier or Verifier(None, token), metadata_url, MCP_PATH, limit)


async def token_checker(settings: Settings, client: httpx.AsyncClient) -> TokenChecker:
    """The checker of the issuer's access tokens, its keys found by discovery now: an issuer that cannot be used is
    a ConfigError naming RUNTIMES_MCP_OAUTH_ISSUER."""
    oauth, audience = settings.oauth, settings.audience
    assert oauth.issuer is not None and audience is not None
    try:
        jwks_uri = await discover_jwks_uri(oauth.issuer, client)
    except Unavailable as exc:
        raise ConfigError(
            f"RUNTIMES_MCP_OAUTH_ISSUER: no usable metadata for {oauth.issuer} ({exc}). Next: check the issuer URL "
            "(exactly as the identity provider names itself in `iss`) and that this machine reaches it"
        ) from None
    if jwks_uri is None and oauth.introspection_url is None:
        raise ConfigError(
            f"RUNTIMES_MCP_OAUTH_ISSUER: {oauth.issuer} publishes no jwks_uri, so its tokens cannot be checked here. "
            "Next: set RUNTIMES_MCP_OAUTH_INTROSPECTION_URL (with its client id and secret) to check them by "
            "introspection"
        )
    keys = Keys(jwks_uri, client) if jwks_uri is not None else None
    introspection = None
    if oauth.introspection_url is not None and oauth.client_id is not None and oauth.client_secret is not None:
        introspection = (oauth.introspection_url, oauth.client_id, oauth.client_secret.get_secret_value())
    return TokenChecker(oauth.issuer, audience, keys, client, introspection)


def check_issuer(settings: Settings) -> None:
    """Read the issuer's metadata once, now (a ConfigError says why it cannot be used): the parent of --workers
    does, so that a wrong issuer stops it with one line instead of failing every worker at its start."""

    async def check() -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as client:
            await token_checker(settings, client)

    anyio.run(check)


async def serve_http(
    settings: Settings,
    host: str,
    port: int,
    stateless: bool,
    json_response: bool,
    insecure_no_auth: bool = False,
    unauthenticated_exec: bool = False,
) -> int:
    access = decide_access(settings, insecure_no_auth, unauthenticated_exec)
    # The port first: one in use is a one-line error before anything starts.
    worker_port = os.environ.pop(WORKER_PORT_ENV, None)  # a worker of --workers: the parent announced
    sockets = [bind(host, int(worker_port or port), listen=True, shared=worker_port is not None)]
    port = sockets[0].getsockname()[1]
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as client:
        verifier = None
        if access.issuer is not None:  # before anything starts: an issuer that cannot be used stops start-up
            verifier = Verifier(await token_checker(settings, client), access.token)
        async with AppState.open(settings, listening=(port,)) as state:
            server = create_server(settings, state, local_code=access.local_code)
            app = build_http_app(
                server,
                settings,
                host=host,
                stateless=stateless,
                json_response=json_response,
                token=access.token,
                verifier=verifier,
            )
            freeze_startup_objects()
            if worker_port is None:
                announce(access, host, port, sys.stderr)
            await uvicorn_adapter.serve(
                app,
                sockets,
                header_timeout_s=settings.header_timeout_s,
                body_timeout_s=settings.body_timeout_s,
                max_connections=settings.max_connections or uvicorn_adapter.default_max_connections(),
                grace_s=settings.shutdown_grace_s,
                # calls in flight answer now, not at the grace's end
                on_stop=state.stop_calls,
            )
    return 0
