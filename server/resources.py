"""The MCP resources providers serve (Provider.resources), and the requests about them that MCPServer 2.3 has no
public hook for: subscriptions, completion of their arguments, and logging/setLevel."""

from __future__ import annotations

import inspect
import re
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.types import (
    CompleteRequestParams,
    CompleteResult,
    Completion,
    EmptyResult,
    ResourceTemplateReference,
    SetLevelRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

from providers.errors import ProviderError
from providers.provider import Resource, load
from providers.registry import PROVIDERS
from providers.services import Completes
from server.config import Settings
from server.state import AppState
from tools import sdk


def register_resources(server: MCPServer[AppState], settings: Settings) -> None:
    for provider in PROVIDERS.values():
        for resource in provider.resources:
            if settings.is_set(resource.needs):
                _register(server, provider.name, resource)
    sdk.add_request_handler(server, "resources/subscribe", SubscribeRequestParams, _subscribe)
    sdk.add_request_handler(server, "resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)
    sdk.add_request_handler(server, "logging/setLevel", SetLevelRequestParams, _set_level)
    sdk.add_request_handler(server, "completion/complete", CompleteRequestParams, _complete)


def _register(server: MCPServer[AppState], provider: str, resource: Resource) -> None:
    async def read(**arguments: Any) -> str | bytes:
        ctx: Context[AppState, Any] = arguments.pop("ctx")
        try:
            client = await ctx.request_context.lifespan_context.provider(provider)
            content: str | bytes = await load(resource.read)(client, **arguments)
        except ProviderError as exc:
            raise ResourceError(str(exc)) from None
        return content

    parameters = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str)
        for name in re.findall(r"{[+#]?(\w+)}", resource.uri)
    ]
    sdk.with_signature(
        read, [*parameters, inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)], str | bytes
    )
    server.resource(
        resource.uri,
        name=resource.name,
        title=resource.title,
        description=resource.description,
        mime_type=resource.mime_type,
    )(read)


async def _subscribe(ctx: Any, params: SubscribeRequestParams) -> Any:
    return await ctx.lifespan_context.watchers.subscribe(ctx, params)


async def _unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> Any:
    return await ctx.lifespan_context.watchers.unsubscribe(ctx, params)


async def _set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    # Accepted so clients may set it; this server sends no log notifications (its logs go to stderr).
    return EmptyResult()


async def _complete(ctx: Any, params: CompleteRequestParams) -> CompleteResult:
    """Values for an argument of a provider's resource, from the provider (when it completes them)."""
    values: list[str] = []
    uri = params.ref.uri if isinstance(params.ref, ResourceTemplateReference) else None
    for name, provider in PROVIDERS.items():
        client = ctx.lifespan_context.opened.get(name)
        if isinstance(client, Completes) and uri in {r.uri for r in provider.resources}:
            values = await client.complete(params.argument.name, params.argument.value)
    return CompleteResult(completion=Completion(values=values, total=len(values), has_more=False))
