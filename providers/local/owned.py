"""The local store's records that belong to an owner (a principal), and its events.

Every record names its `principal` (whose it is, providers.services.Caller.owner). Reads made for a caller
(`who`) return only what it sees: its own records, or every record for an admin; `who=None` is the server's own
work (recovery, retention, launchers). A record of another owner is left out by the same query that finds one,
so an id of someone else's reads exactly as an id that does not exist, after the same work. Records made before
principals were recorded (NULL) belong to `earlier_owner`, whom the operator names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from providers.local.commits import GroupCommit
from providers.local.database import Connection
from providers.local.tables import EventRow, event_insert, like_prefix
from providers.models import fitting
from providers.services import LOCAL_OWNER, Caller

EVENT_ROW_BYTES = 100  # what an event row takes besides its data (ids, type, timestamp, index entries), roughly


class OwnedRecords(GroupCommit):
    """Whose records a caller sees, and the events (each in its owner's stream)."""

    earlier_owner: str = LOCAL_OWNER

    def mine(self, who: Caller | None, column: str = "principal") -> tuple[str, tuple[Any, ...]]:
        """The SQL condition (and its parameters) for the records `who` sees."""
        if who is None or who.admin:
            return "1 = 1", ()
        return f"COALESCE({column}, ?) = ?", (self.earlier_owner, who.owner)

    def sees(self, who: Caller | None, principal: str | None) -> bool:
        """The same as `mine`, for a record in hand."""
        return who is None or who.sees(principal or self.earlier_owner)

    # --- events -----------------------------------------------------------------------------------
    def insert_event(self, event: EventRow) -> None:
        self.submit(*event_insert(event))

    async def query_events(
        self,
        sandbox_id: str,
        type_: str | None,
        since: int | None,
        limit: int,
        max_chars: int,
        who: Caller | None = None,
    ) -> tuple[list[EventRow], bool, bool]:
        """Matching events, oldest first: the newest `limit` of them, or with `since` the first `limit` after it;
        fewer when their data would pass `max_chars`. Returns (events, whether some were left out for size, whether
        more match than `limit`).

        Two queries: the page is chosen from the events' sizes alone, and only its events' data is read. (One
        query with a running sum over the data made the database hold several copies of every candidate's data
        at once: a 1 MiB page took 8 MiB.)"""
        await self.flush()
        mine, params = self.mine(who)
        where: list[str] = ["sandbox_id = ?", mine]
        args: list[Any] = [sandbox_id, *params]
        if type_ is not None:
            where.append("type = ?")
            args.append(type_)
        if since is not None:
            where.append("timestamp > ?")
            args.append(since)
        order = "ASC" if since is not None else "DESC"
        sizes = await self._rows(
            f"SELECT seq, length(data) FROM events WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?",
            (*args, limit + 1),
        )
        more, sizes = len(sizes) > limit, sizes[:limit]
        chosen = sizes[: fitting((size for _, size in sizes), max_chars)]
        if not chosen:
            return [], False, more
        marks = ", ".join("?" * len(chosen))

        def parsed(r: Sequence[Any]) -> EventRow:
            return EventRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5])

        rows = await self._rows(
            f"SELECT id, sandbox_id, type, data, timestamp, principal FROM events WHERE seq IN ({marks})"
            " ORDER BY seq ASC",
            tuple(seq for seq, _ in chosen),
            parsed,
        )
        return rows, len(chosen) < len(sizes), more

    async def sandbox_ids(self, prefix: str, limit: int, who: Caller | None = None) -> list[str]:
        await self.flush()
        mine, params = self.mine(who)
        sql = (
            f"SELECT DISTINCT sandbox_id FROM events WHERE sandbox_id LIKE ? ESCAPE '!' AND {mine}"
            " ORDER BY sandbox_id LIMIT ?"
        )
        return [r[0] for r in await self._rows(sql, (like_prefix(prefix), *params, limit))]

    async def delete_events_before(self, timestamp_ms: int) -> int:
        sql = "DELETE FROM events WHERE timestamp < ?"
        return await self.transaction(lambda db: db.execute(sql, (timestamp_ms,)).rowcount)

    async def delete_oldest_events(self, free_bytes: int, most: int) -> int:
        """Delete the oldest events that hold about `free_bytes` (at least one, at most `most`); how many went."""

        def work(db: Connection) -> int:
            last, held = None, 0
            oldest = db.execute("SELECT seq, length(data) FROM events ORDER BY seq LIMIT ?", (most,)).fetchall()
            for seq, size in oldest:
                last, held = seq, held + size + EVENT_ROW_BYTES
                if held >= free_bytes:
                    break
            return 0 if last is None else db.execute("DELETE FROM events WHERE seq <= ?", (last,)).rowcount

        return await self.transaction(work)
