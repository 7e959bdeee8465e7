"""Resource subscriptions: who watches which URI, and telling them when it changes."""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from tools.sdk import connection_of

MAX_WATCHERS_PER_URI = 256
logger = logging.getLogger(__name__)


class ResourceWatchers:
    """Legacy `resources/subscribe` connections plus `subscriptions/listen` buses (protocol 2026-07-28)."""

    def __init__(self) -> None:
        self._watchers: dict[str, dict[object, ServerSession]] = {}
        self._buses: list[SubscriptionBus] = []

    def add_bus(self, bus: SubscriptionBus) -> None:
        if all(b is not bus for b in self._buses):
            self._buses.append(bus)

    async def subscribe(self, ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        watchers = self._watchers.setdefault(str(params.uri), {})
        watchers[connection_of(ctx.session)] = ctx.session
        if len(watchers) > MAX_WATCHERS_PER_URI:  # connections that left without unsubscribing go first
            del watchers[next(iter(watchers))]
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        self._watchers.get(str(params.uri), {}).pop(connection_of(ctx.session), None)
        return EmptyResult()

    async def changed(self, uri: str) -> None:
        watchers = self._watchers.get(uri, {})
        for connection, session in list(watchers.items()):
            try:
                await session.send_resource_updated(uri)
            except Exception as exc:  # a closed connection simply stops being told
                logger.debug("resource watcher dropped (%s): %s", uri, exc)
                watchers.pop(connection, None)
        for bus in self._buses:
            await bus.publish(ResourceUpdated(uri=uri))
