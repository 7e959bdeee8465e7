"""Keeping the data directory bounded: finished sessions and events are deleted by age and by total size.

Never a running session. Oldest first. A finished session's size is measured once (nothing writes to it
again) and kept in its record, so a pass costs one query and the directories it deletes.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import anyio
import anyio.to_thread

from providers.local.ids import place_of
from providers.local.store import Store, StoreError

logger = logging.getLogger(__name__)
DAY_S = 86_400
EVENT_BATCH = 1_000
# A pass runs after this many ended sessions, or this share of the cap written, or this long, whichever first.
PASS_AFTER_SESSIONS = 100
PASS_AFTER_SHARE = 0.1
PASS_AFTER_S = 600.0


def tree_bytes(path: Path) -> int:
    """Bytes a directory tree takes on disk (allocated blocks, so sparse files count as what they use)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += info.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return total


class Retention:
    def __init__(self, store: Store, data_dir: Path, retention_days: float, max_data_mb: int) -> None:
        self._store = store
        self._sessions = data_dir / "sessions"
        self.place = place_of(data_dir)
        self.max_age_s = retention_days * DAY_S
        self.max_bytes = max_data_mb * 1024 * 1024
        self._lock = anyio.Lock()
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
        """One pass; (sessions deleted, events deleted). Failures are logged: retention never ends a server."""
        if self._lock.locked():
            return 0, 0
        async with self._lock:
            try:
                return await self._pass()
            except (StoreError, OSError) as exc:
                logger.warning("runtimes-mcp: retention pass failed: %s", exc)
                return 0, 0

    async def _pass(self) -> tuple[int, int]:
        store = self._store
        ended = await store.ended_sessions(self.place)
        sizes = {session_id: size for session_id, _, size in ended if size is not None}
        unmeasured = [session_id for session_id, _, size in ended if size is None]
        if unmeasured:  # one trip to a worker thread for all of them
            measured = await anyio.to_thread.run_sync(self._measure, unmeasured)
            for session_id, size in measured.items():
                store.set_disk_bytes(session_id, size)
            sizes.update(measured)
        cutoff = time.time() - self.max_age_s
        doomed = [session_id for session_id, ended_at, _ in ended if ended_at < cutoff]
        live_bytes = await anyio.to_thread.run_sync(self._running_bytes, {s for s, _, _ in ended})
        total = live_bytes + sum(sizes.values()) + await store.database_bytes()
        total -= sum(sizes[s] for s in doomed)
        for session_id, _, _ in ended:  # oldest first, until the rest fits
            if total <= self.max_bytes:
                break
            if session_id not in doomed:
                doomed.append(session_id)
                total -= sizes[session_id]
        with anyio.CancelScope(shield=True):  # a record and its directory go together, even at shutdown
            for session_id in doomed:
                await anyio.to_thread.run_sync(shutil.rmtree, self._sessions / session_id, True)
            store.delete_sessions(doomed)
            await store.flush()
        events = await self._prune_events(cutoff, total)
        await store.flush()
        if doomed or events:
            await store.checkpoint()
        return len(doomed), events

    async def _prune_events(self, cutoff: float, total: int) -> int:
        store = self._store
        before = await store.event_count()
        store.delete_events_before(int(cutoff * 1000))
        await store.flush()
        while total > self.max_bytes and await store.event_count():
            size = await store.database_bytes()
            store.delete_oldest_events(EVENT_BATCH)
            await store.flush()
            after = await store.database_bytes()
            total -= max(0, size - after)
            if after >= size:  # nothing freed: the rest is not events (or the database is elsewhere)
                break
        return before - await store.event_count()

    def _measure(self, session_ids: list[str]) -> dict[str, int]:
        return {session_id: tree_bytes(self._sessions / session_id) for session_id in session_ids}

    def _running_bytes(self, finished: set[str]) -> int:
        """Bytes held by directories of sessions that are not finished (running ones, spares)."""
        total = 0
        try:
            entries = list(os.scandir(self._sessions))
        except OSError:
            return 0
        for entry in entries:
            if entry.name not in finished and entry.is_dir(follow_symlinks=False):
                total += tree_bytes(Path(entry.path))
        return total
