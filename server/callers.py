"""Who each MCP request is served for (providers.services.caller): the caller an HTTP request signed in as
(server/sign_in.py), or LOCAL (stdio, in-process clients, the static token, no authentication). A request, and
whatever it starts that outlives it (an MCP task), runs as its caller; tools/list shows it the tools its scopes
allow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST

from providers.services import LOCAL, READ, RUN, Caller, acting_as
from tools import scopes, sdk


class CallerToken(AccessToken):
    """An access token as this server took it: the SDK's AccessToken (its transport binds a stateful MCP session to
    it, see sdk.sign_in) and the caller it stands for."""

    caller: Caller


async def serve_as_caller(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware (the outermost): the request runs as its caller."""
    token = sdk.access_token_of(ctx)
    who = token.caller if isinstance(token, CallerToken) else LOCAL
    every_tool = READ in who.scopes and RUN in who.scopes
    with acting_as(who):
        if not every_tool:
            _refuse_beyond_scopes(ctx, who)
        result = await call_next(ctx)
    listed = sdk.wire_result(result) if ctx.method == "tools/list" and not every_tool else None
    if listed is not None:
        tools = [
            t for t in listed.get("tools") or [] if isinstance(t, Mapping) and scopes.allowed(t["name"], who.scopes)
        ]
        result = {**listed, "tools": tools}
    return result


def _refuse_beyond_scopes(ctx: ServerRequestContext[Any, Any], who: Caller) -> None:
    """A request its scopes do not allow never reaches its handler. (Over HTTP it was answered with 403 before it
    got here; this stands in case it did not.)"""
    scope = scopes.needed(ctx.method, ctx.params)
    if scope is not None and scope not in who.scopes:
        raise MCPError(
            code=INVALID_REQUEST,
            message=f"{ctx.method} needs scope {scope}, which this caller's token does not grant. Next: sign in "
            f"again asking for {scope}.",
        )
