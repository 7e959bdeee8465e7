"""MCP tasks that are tool calls, each running in one server process, kept in the store where every server on the
same state (data directory or PostgreSQL) reads them (providers.services.CallTasks)."""

from __future__ import annotations

import time
from typing import Any

from providers.local import owners
from providers.local.store import Store
from providers.local.tables import CallTaskRow
from providers.services import CallTaskRecord, caller

# A process on another machine running a task has stopped when its heartbeat (server.tasks.BEAT_S) has not been
# heard for this long; on this machine it is known at once.
SILENT_FOR_S = 15.0


class StoredCallTasks:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._owner = owners.this_process()

    async def record(self, task_id: str, status: str, created_at: float, expires_at: float, view: Any) -> None:
        now = time.time()
        row = CallTaskRow(
            task_id, status, created_at, now, expires_at, self._owner, now, view, principal=caller().owner
        )
        await self._store.save_call_task(row)

    async def update(self, task_id: str, status: str, view: Any) -> None:
        await self._store.update_call_task(task_id, status, view, time.time())

    async def read(self, task_id: str) -> CallTaskRecord | None:
        """The caller's task (anyone's, for an admin); another owner's reads as one that does not exist."""
        row = await self._store.get_call_task(task_id, caller())
        if row is None or row.expires_at < time.time():
            return None
        return CallTaskRecord(row.view, owners.describe(row.owner) if _stopped(row) else None, row.cancel_asked_at)

    async def ask_cancel(self, task_id: str) -> None:
        await self._store.ask_to_cancel_call_task(task_id, time.time())

    async def beat(self) -> list[str]:
        return await self._store.beat_call_tasks(self._owner, time.time())


def _stopped(row: CallTaskRow) -> bool:
    ended = owners.ended(row.owner)
    return ended if ended is not None else time.time() - row.alive_at > SILENT_FOR_S
