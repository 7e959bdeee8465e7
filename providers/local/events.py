"""Local events: the ComputeSDK event shape, stored in SQLite, with listeners told of each new one."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from providers.errors import InvalidInput
from providers.local.ids import PROVIDER, new_id
from providers.local.store import Store
from providers.local.tables import EventRow
from providers.models import (
    MAX_PAGE_CHARS,
    Event,
    EventList,
    StoredEvent,
    event_list,
    event_name_problem,
)
from providers.services import caller
from providers.values import now_ms

DEFAULT_SANDBOX = "local"
Listener = Callable[[str], Awaitable[None]]
logger = logging.getLogger(__name__)
# The same over stdio and HTTP: one event's data (a page, providers.models.MAX_PAGE_CHARS, holds one at least).
MAX_EVENT_CHARS = 256 * 1024


class EventLog:
    def __init__(self, store: Store) -> None:
        self._store = store
        # `listener(sandbox_id)` runs after each stored event; a failing listener never loses the event.
        self.listener: Listener | None = None

    async def record(
        self,
        type_: str,
        data: dict[str, Any],
        sandbox_id: str = DEFAULT_SANDBOX,
        *,
        durable: bool = False,
        principal: str | None = None,
    ) -> StoredEvent:
        """Queue an event (the runtime's own lifecycle events ride along with the next commit), in the event
        stream of `principal` (default: the caller's); with `durable`, return once it is committed (commits are
        shared with concurrent writers)."""
        if not type_.strip():
            raise InvalidInput(PROVIDER, "type is empty", hint="Name the event, e.g. 'build.finished'.")
        if not sandbox_id.strip():
            raise InvalidInput(PROVIDER, "sandbox_id is empty")
        if (problem := event_name_problem(type_, sandbox_id)) is not None:
            raise InvalidInput(PROVIDER, problem)
        try:
            size = len(json.dumps(data, separators=(",", ":"), allow_nan=False))
        except ValueError:  # NaN or Infinity: no JSON reader could read the event back
            raise InvalidInput(PROVIDER, "data holds NaN or an infinite number", hint="Send finite numbers.") from None
        if size > MAX_EVENT_CHARS:
            raise InvalidInput(
                PROVIDER,
                f"event data is {size:,} characters as JSON; an event holds at most {MAX_EVENT_CHARS:,}",
                hint="Store the large part elsewhere (a file, a session's output) and put a reference in data.",
            )
        row = EventRow(new_id("evt"), sandbox_id, type_, data, now_ms(), principal or caller().owner)
        self._store.insert_event(row)
        if durable:
            await self._store.flush()
        await self.notify(sandbox_id)
        return StoredEvent(
            provider=PROVIDER, event_id=row.id, sandbox_id=row.sandbox_id, type=row.type, timestamp=row.timestamp
        )

    async def notify(self, sandbox_id: str) -> None:
        if self.listener is None:
            return
        try:
            await self.listener(sandbox_id)
        except Exception:
            logger.exception("runtimes-mcp: an event listener failed for sandbox %s", sandbox_id)

    async def query(
        self,
        sandbox_id: str = DEFAULT_SANDBOX,
        type_: str | None = None,
        since: int | None = None,
        limit: int = 100,
    ) -> EventList:
        """A page of the caller's events (everyone's, for an admin), oldest first (see Store.query_events)."""
        if not 1 <= limit <= 1000:
            raise InvalidInput(PROVIDER, f"limit must be 1 to 1000, got {limit}")
        if (problem := event_name_problem(type_, sandbox_id)) is not None:
            raise InvalidInput(PROVIDER, problem)
        rows, cut, more = await self._store.query_events(sandbox_id, type_, since, limit, MAX_PAGE_CHARS, caller())
        events = [
            Event(id=r.id, sandbox_id=r.sandbox_id, type=r.type, data=r.data, timestamp=r.timestamp) for r in rows
        ]
        return event_list(PROVIDER, sandbox_id, events, cut, since, more)
