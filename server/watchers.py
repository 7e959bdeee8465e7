"""Resource subscriptions: who watches which URI, and telling them when it changes."""

from __future__ import annotations

import weakref
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams


class ResourceWatchers:
    """Legacy `resources/subscribe` sessions plus `subscriptions/listen` buses (protocol 2026-07-28)."""

    def __init__(self) -> None:
        self._sessions: dict[str, weakref.WeakSet[ServerSession]] = {}
        self._buses: list[SubscriptionBus] = []

    def add_bus(self, bus: SubscriptionBus) -> None:
        if all(b is not bus for b in self._buses):
            self._buses.append(bus)

    async def subscribe(self, ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        self._sessions.setdefault(str(params.uri), weakref.WeakSet()).add(ctx.session)
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        watchers = self._sessions.get(str(params.uri))
        if watchers is not None:
            watchers.discard(ctx.session)
        return EmptyResult()

    def watched(self, uri: str) -> int:
        return len(self._sessions.get(uri, ()))

    async def changed(self, uri: str) -> None:
        for session in list(self._sessions.get(uri, ())):
            try:
                await session.send_resource_updated(uri)
            except Exception:
                self._sessions[uri].discard(session)
        for bus in self._buses:
            await bus.publish(ResourceUpdated(uri=uri))
