"""Resource subscriptions: who watches which URI, and telling them when it changes.

A legacy subscription (`resources/subscribe`) belongs to its connection and ends with it (an MCP session deleted or
expired, a stdio client gone, a stateless request answered), so what it holds goes with it. A connection watches at
most MAX_SUBSCRIPTIONS_PER_CONNECTION URIs of at most MAX_URI_CHARS characters; past either, the subscription is
refused. Nobody's subscription is ever dropped to make room for another's.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from tools.sdk import connection_of, on_connection_end

MAX_URI_CHARS = 1024
MAX_SUBSCRIPTIONS_PER_CONNECTION = 64
logger = logging.getLogger(__name__)


class ResourceWatchers:
    """Legacy `resources/subscribe` connections plus `subscriptions/listen` buses (protocol 2026-07-28)."""

    def __init__(self) -> None:
        # connection -> a session of it (any of them reaches the connection), and the URIs it watches
        self._watching: dict[object, tuple[ServerSession, set[str]]] = {}
        self._buses: list[SubscriptionBus] = []

    def add_bus(self, bus: SubscriptionBus) -> None:
        if all(b is not bus for b in self._buses):
            self._buses.append(bus)

    async def subscribe(self, ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        uri, connection = str(params.uri), connection_of(ctx.session)
        if len(uri) > MAX_URI_CHARS:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"resources/subscribe: the URI has {len(uri)} characters, more than this server watches "
                f"({MAX_URI_CHARS}). Next: subscribe to a resource's URI as resources/list or a template gives it.",
            )
        if connection not in self._watching:
            self._watching[connection] = (ctx.session, set())
            on_connection_end(ctx.session, lambda: self._forget(connection))
        uris = self._watching[connection][1]
        if uri not in uris and len(uris) >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"resources/subscribe: this connection already watches {len(uris)} URIs, the most it may "
                f"({MAX_SUBSCRIPTIONS_PER_CONNECTION}). Next: unsubscribe from one it no longer needs first.",
            )
        uris.add(uri)
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        watching = self._watching.get(connection_of(ctx.session))
        if watching is not None:
            watching[1].discard(str(params.uri))
        return EmptyResult()

    async def changed(self, uri: str) -> None:
        for session, uris in list(self._watching.values()):
            if uri not in uris:
                continue
            try:
                await session.send_resource_updated(uri)
            except Exception as exc:  # a closed connection simply stops being told
                logger.debug("resource watcher dropped (%s): %s", uri, exc)
                uris.discard(uri)
        for bus in self._buses:
            await bus.publish(ResourceUpdated(uri=uri))

    def _forget(self, connection: object) -> None:
        """The connection ended: its subscriptions go, and with them the session they held."""
        self._watching.pop(connection, None)
