"""Keeping the data directory bounded: finished sessions and events are deleted by age and by total size.

Never a running session. Oldest first. A finished session's size is measured once (nothing writes to it
again) and kept in its record, so a pass costs one query and the directories it deletes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import anyio
import anyio.to_thread

from providers.local.ids import place_of
from providers.local.store import Store, StoreError
from providers.local.supervisor.trees import remove_tree, tree_bytes
from providers.local.workspaces import Workspaces

logger = logging.getLogger(__name__)
DAY_S = 86_400
EVENT_BATCH = 1_000
# A pass runs after this many ended sessions, or this share of the cap written, or this long, whichever first.
PASS_AFTER_SESSIONS = 100
PASS_AFTER_SHARE = 0.1
PASS_AFTER_S = 600.0
MEASURE_BATCH = 1_000  # finished sessions measured in one pass (the newest are; the rest in the next passes)
DELETE_BATCH = 1_000  # sessions read at a time when choosing what to delete


class Retention:
    def __init__(
        self,
        store: Store,
        data_dir: Path,
        retention_days: float,
        max_data_mb: int,
        workspaces: Workspaces | None = None,
    ) -> None:
        self._store = store
        self._workspaces = workspaces
        self._sessions = data_dir / "sessions"
        self.place = place_of(data_dir)
        self.max_age_s = retention_days * DAY_S
        self.max_bytes = max_data_mb * 1024 * 1024
        self._lock = anyio.Lock()
        self._again = False
        self._ended = 0
        self._written = 0
        self._last = time.monotonic()

    def note_ended(self, written_bytes: int) -> bool:
        """Count a finished session; True when a pass is due."""
        self._ended += 1
        self._written += written_bytes
        due = (
            self._ended >= PASS_AFTER_SESSIONS
            or self._written >= self.max_bytes * PASS_AFTER_SHARE
            or time.monotonic() - self._last >= PASS_AFTER_S
        )
        if due:
            self._ended = self._written = 0
            self._last = time.monotonic()
        return due

    async def run_pass(self) -> tuple[int, int]:
        """One pass; (sessions deleted, events deleted). Failures are logged: retention never ends a server.

        A pass asked for while one runs is not dropped: the running one goes round once more when it ends, so
        what was written meanwhile is counted (under load a pass can take longer than the runs that call it)."""
        if self._lock.locked():
            self._again = True
            return 0, 0
        sessions = events = 0
        async with self._lock:
            self._again = True
            while self._again:
                self._again = False
                try:
                    done = await self._pass()
                except Exception as exc:  # retention never ends a server, whatever a run left behind
                    expected = isinstance(exc, StoreError | OSError)
                    logger.warning("runtimes-mcp: retention pass failed: %s", exc, exc_info=not expected)
                    break
                sessions, events = sessions + done[0], events + done[1]
        return sessions, events

    async def _pass(self) -> tuple[int, int]:
        store = self._store
        workspace_bytes = 0
        if self._workspaces is not None:  # unused ones go by age; the others count toward the cap
            await self._workspaces.prune()
            workspace_bytes = self._workspaces.total_bytes()
        unmeasured = await store.unmeasured_sessions(self.place, MEASURE_BATCH)
        if unmeasured:  # one trip to a worker thread for all of them
            measured = await anyio.to_thread.run_sync(self._measure, unmeasured)
            for session_id, size in measured.items():
                store.set_disk_bytes(session_id, size)
        known = await store.all_session_ids()
        running = [row.id for row in await store.running_sessions(self.place)]
        live_bytes = await anyio.to_thread.run_sync(self._live_bytes, known, running)
        total = live_bytes + workspace_bytes + await store.ended_bytes(self.place) + await store.database_bytes()
        doomed: list[str] = []
        cutoff = time.time() - self.max_age_s
        after, fits = (float("-inf"), 0), False
        while not fits and (batch := await store.oldest_ended(self.place, DELETE_BATCH, after)):
            after = batch[-1][2:]
            for session_id, size, ended_at, _ in batch:  # all past their age, then the oldest until the rest fits
                if fits := ended_at >= cutoff and total <= self.max_bytes:
                    break
                doomed.append(session_id)
                total -= size
        with anyio.CancelScope(shield=True):  # a record and its directory go together, even at shutdown
            await anyio.to_thread.run_sync(self._remove, doomed)  # one trip: under load each trip waits its turn
            store.delete_sessions(doomed)
            await store.flush()
        events = await self._prune_events(cutoff, total)
        await store.flush()
        if doomed or events:
            await store.checkpoint()
        return len(doomed), events

    async def _prune_events(self, cutoff: float, total: int) -> int:
        """Delete the events past their age, then the oldest until the total fits; how many went. (Counted as
        deleted, not as a difference of counts: events keep coming in meanwhile.)"""
        store = self._store
        deleted = await store.delete_events_before(int(cutoff * 1000))
        if total <= self.max_bytes:
            return deleted
        size = await store.database_bytes()
        await store.checkpoint()  # first fold the WAL back: the space it holds is not the events' to give
        after = await store.database_bytes()
        total -= max(0, size - after)
        while total > self.max_bytes:
            size = after
            gone = await store.delete_oldest_events(total - self.max_bytes, EVENT_BATCH)
            after = await store.database_bytes()
            deleted += gone
            total -= max(0, size - after)
            if not gone or after >= size:  # nothing freed: the rest is not events (or the database is elsewhere)
                break
        return deleted

    def _measure(self, session_ids: list[str]) -> dict[str, int]:
        return {session_id: tree_bytes(str(self._sessions / session_id)) for session_id in session_ids}

    def _remove(self, session_ids: list[str]) -> None:
        for session_id in session_ids:
            remove_tree(str(self._sessions / session_id))

    def _live_bytes(self, known: set[str], running: list[str]) -> int:
        """Bytes held by the directories of running sessions and of those with no record yet (spares made
        ahead, a run being recorded)."""
        total = sum(tree_bytes(str(self._sessions / session_id)) for session_id in running)
        try:
            names = os.listdir(self._sessions)
        except OSError:
            return total
        return total + sum(tree_bytes(str(self._sessions / name)) for name in names if name not in known)
