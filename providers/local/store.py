"""Durable state of the local provider: session records, routine runs, tasks and events, in SQLite (one file
in the data directory, WAL) or PostgreSQL (shared by replicas); see database.py, and tables.py for the schema.

A session's own directory (job.json, result.json; see supervisor/) is the truth about a local run; the
sessions table is the index every server reads, kept in step by whichever server on the session's machine sees
a change first (its `place`). Updates are conditional, so two servers recording the same end agree.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from providers.local.database import Connection, PostgresDatabase, SQLiteDatabase, StoreError, pg_migrate
from providers.local.owned import OwnedRecords
from providers.local.tables import (
    CALL_TASK_COLUMNS,
    RUN_COLUMNS,
    RUNNING_CALL,
    SAVE_SESSION,
    SELECT_SESSION,
    CallTaskRow,
    EventRow,
    RunRow,
    SessionRow,
    TaskRow,
    call_task_row,
    compact_json,
    event_insert,
    insert,
    like_prefix,
    migrate,
    postgres_schema,
    run_insert,
    run_row,
)
from providers.services import Caller

FAILED_STATES = ("failed", "timed_out", "stopped", "lost")
# The finished sessions of one place (a data directory on one machine); its parameter: the place.
ENDED_HERE = "state != 'running' AND (place = ? OR place IS NULL)"
DELETE_CHUNK = 500  # ids in one DELETE (SQLite binds at most 32,766 parameters)
__all__ = ["Store", "StoreError"]


class Store(OwnedRecords):
    """The local state over a Database (database.py), used from the event loop; writes are committed in groups
    (commits.py); reads made for a caller see only its own records (owned.py)."""

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (and create or migrate) the SQLite file; sqlite3 errors pass through for the caller to word."""
        return cls(SQLiteDatabase.open(path, migrate))

    @classmethod
    async def open_url(cls, url: str, replica: str) -> Store:
        """Open (and create or migrate) a PostgreSQL database; a StoreError says why it cannot be used."""
        return cls(await PostgresDatabase.open(url, replica, lambda conn: pg_migrate(conn, postgres_schema())))

    async def close(self) -> None:
        with contextlib.suppress(StoreError):  # what could not be written is still in the session directories
            await self.flush()
        await self.db.close()

    # --- sessions ---------------------------------------------------------------------------------
    def save_session(self, row: SessionRow) -> None:
        """Insert or replace the whole record, unless it already ended (an end is never undone)."""
        self.submit(SAVE_SESSION, row.values(), row)

    def set_pid(self, session_id: str, pid: int) -> None:
        self.submit("UPDATE sessions SET pid = ? WHERE id = ?", (pid, session_id))

    def save_end(self, row: SessionRow, event: EventRow) -> None:
        """Queue the end of a run (with its event, only if no server recorded the end before)."""
        self.submit_work(functools.partial(_end, row, event), row)

    async def record_end(self, row: SessionRow, event: EventRow) -> bool:
        """Record a session's end if nobody has yet (several servers may see it); the event only if we did."""
        return await self.transaction(functools.partial(_end, row, event))

    async def _flush_for_reading(self) -> None:
        """Commit what is pending before a read; when that fails for now, the read still includes it (see
        _unsaved): a full disk must not make sessions disappear from listings."""
        try:
            await self.flush()
        except StoreError as exc:
            if not exc.lasting:
                raise

    async def get_session(self, session_id: str, who: Caller | None = None) -> SessionRow | None:
        await self._flush_for_reading()
        unsaved = self._unsaved.get(session_id)
        if unsaved is not None and self.sees(who, unsaved.principal):
            return unsaved
        mine, params = self.mine(who)
        found = await self._rows(f"{SELECT_SESSION} WHERE id = ? AND {mine}", (session_id, *params))
        return SessionRow(*found[0]) if found else None

    async def list_sessions(
        self,
        states: Sequence[str],
        limit: int,
        before_rowid: int | None,
        launchers: bool = False,
        who: Caller | None = None,
    ) -> list[SessionRow]:
        """Newest first; `launchers`: launchers' runs too (else they are left out)."""
        await self._flush_for_reading()
        mine, params = self.mine(who)
        where: list[str] = [mine] if launchers else [mine, "origin NOT LIKE 'launcher:%'"]
        args: list[Any] = list(params)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(states)
        if before_rowid is not None:
            where.append("rowid < ?")
            args.append(before_rowid)
        sql = f"{SELECT_SESSION} WHERE {' AND '.join(where)} ORDER BY rowid DESC LIMIT ?"
        rows = [SessionRow(*r) for r in await self._rows(sql, (*args, limit))]
        if not self._unsaved:
            return rows
        unsaved = [
            r
            for r in self._unsaved.values()
            if (not states or r.state in states)
            and (launchers or not r.origin.startswith("launcher:"))
            and self.sees(who, r.principal)
        ]
        first = sorted(unsaved, key=lambda r: r.started_at, reverse=True) if before_rowid is None else []
        return (first + [r for r in rows if r.id not in self._unsaved])[:limit]

    async def latest_session(self, origin: str) -> SessionRow | None:
        await self._flush_for_reading()
        found = await self._rows(f"{SELECT_SESSION} WHERE origin = ? ORDER BY rowid DESC LIMIT 1", (origin,))
        return SessionRow(*found[0]) if found else None

    async def running_sessions(self, place: str) -> list[SessionRow]:
        """Running sessions of one place (records without a place predate places: they are this machine's)."""
        await self.flush()
        sql = f"{SELECT_SESSION} WHERE state = 'running' AND (place = ? OR place IS NULL)"
        return [SessionRow(*r) for r in await self._rows(sql, (place,))]

    async def session_ids(self, prefix: str, limit: int, who: Caller | None = None) -> list[str]:
        """Newest session ids starting with `prefix` (for argument completion)."""
        await self.flush()
        mine, params = self.mine(who)
        sql = f"SELECT id FROM sessions WHERE id LIKE ? ESCAPE '!' AND {mine} ORDER BY rowid DESC LIMIT ?"
        return [r[0] for r in await self._rows(sql, (like_prefix(prefix), *params, limit))]

    async def all_session_ids(self) -> set[str]:
        await self.flush()
        return {r[0] for r in await self._rows("SELECT id FROM sessions")}

    # --- retention ----------------------------------------------------------------------------------
    async def unmeasured_sessions(self, place: str, limit: int) -> list[str]:
        """Finished sessions of one place whose size on disk is not recorded yet (the newest ones)."""
        await self.flush()
        sql = f"SELECT id FROM sessions WHERE {ENDED_HERE} AND disk_bytes IS NULL LIMIT ?"
        return [r[0] for r in await self._rows(sql, (place, limit))]

    async def ended_bytes(self, place: str) -> int:
        """What the finished sessions of one place hold on disk, as measured."""
        await self.flush()
        sql = f"SELECT COALESCE(SUM(disk_bytes), 0) FROM sessions WHERE {ENDED_HERE}"
        return int((await self._rows(sql, (place,)))[0][0])

    async def oldest_ended(
        self, place: str, limit: int, after: tuple[float, int] = (float("-inf"), 0)
    ) -> list[tuple[str, int, float, int]]:
        """(id, disk_bytes, ended_at, rowid) of the finished sessions of one place, oldest end first, from just
        past `after` (the ended_at and rowid of the last one read)."""
        await self.flush()
        sql = (
            f"SELECT id, COALESCE(disk_bytes, 0), ended_at, rowid FROM sessions WHERE {ENDED_HERE}"
            " AND ended_at >= ? AND (ended_at > ? OR rowid > ?) ORDER BY ended_at, rowid LIMIT ?"
        )
        rows = await self._rows(sql, (place, after[0], after[0], after[1], limit))
        return [(r[0], int(r[1]), float(r[2]), int(r[3])) for r in rows]

    def set_disk_bytes(self, session_id: str, size: int) -> None:
        self.submit("UPDATE sessions SET disk_bytes = ? WHERE id = ?", (size, session_id))

    def delete_sessions(self, ids: Sequence[str], running_too: bool = False) -> None:
        """Forget finished sessions (or ones that never started), and the routine runs (and so idempotency
        keys) that point at them."""
        condition = "" if running_too else " AND state != 'running'"
        for session_id in ids:
            self._unsaved.pop(session_id, None)
        for start in range(0, len(ids), DELETE_CHUNK):
            chunk = tuple(ids[start : start + DELETE_CHUNK])
            marks = ", ".join("?" * len(chunk))
            self.submit(f"DELETE FROM sessions WHERE id IN ({marks}){condition}", chunk)
            self.submit(f"DELETE FROM routine_runs WHERE session_id IN ({marks})", chunk)
            self.submit(f"DELETE FROM tasks WHERE session_id IN ({marks})", chunk)

    async def database_bytes(self) -> int:
        """Bytes of this machine's disk the database holds that retention can lower."""
        with self.worded():
            return await self.db.used_bytes()

    async def checkpoint(self) -> None:
        """Give back the space deleted rows took (SQLite: fold the WAL into the file)."""
        await self.flush()
        with self.worded():
            async with self._write_lock:
                await self.db.checkpoint()

    # --- routine runs -----------------------------------------------------------------------------
    async def claim_run(self, run: RunRow, stale_after_s: float) -> tuple[RunRow | None, str | None]:
        """Claim (routine, idempotency_key) for `run`, atomically across tasks and processes.

        Returns (None, None) when `run` now holds the key; (holder, holder's session state) when a run that
        has not failed holds it. A holder that failed, or never started within `stale_after_s`, gives the key
        up to `run` in the same transaction, so concurrent retries after a failure start exactly one run."""

        def work(db: Connection) -> tuple[RunRow | None, str | None]:
            # Keys are per principal: another owner's key of the same name is not this one.
            self.db.serialize(db, f"routine-key:{run.principal}:{run.routine}:{run.idempotency_key}")
            found = db.execute(
                f"SELECT {RUN_COLUMNS}, s.state FROM routine_runs r LEFT JOIN sessions s ON s.id = r.session_id"
                " WHERE r.routine = ? AND r.idempotency_key = ? AND COALESCE(r.principal, ?) = ?",
                (run.routine, run.idempotency_key, self.earlier_owner, run.principal or self.earlier_owner),
            ).fetchone()
            if found is not None:
                holder, state = run_row(found[:-1]), found[-1]
                never_started = holder.session_id is None and run.created_at - holder.created_at > stale_after_s
                if state not in FAILED_STATES and not never_started:
                    return holder, state
                db.execute("UPDATE routine_runs SET idempotency_key = NULL WHERE id = ?", (holder.id,))
            db.execute(*run_insert(run))
            return None, None

        return await self.transaction(work)

    def release_key(self, run_id: str) -> None:
        self.submit("UPDATE routine_runs SET idempotency_key = NULL WHERE id = ?", (run_id,))

    def set_run_session(self, run_id: str, session_id: str) -> None:
        self.submit("UPDATE routine_runs SET session_id = ? WHERE id = ?", (session_id, run_id))

    async def get_run(self, run_id: str, who: Caller | None = None) -> RunRow | None:
        await self.flush()
        mine, params = self.mine(who, "r.principal")
        sql = f"SELECT {RUN_COLUMNS} FROM routine_runs r WHERE r.id = ? AND {mine}"
        found = await self._rows(sql, (run_id, *params))
        return run_row(found[0]) if found else None

    # --- tasks ------------------------------------------------------------------------------------
    async def save_task(self, task: TaskRow) -> None:
        """Committed before it returns: a task id handed to a client resolves on every server at once."""
        self.submit(
            "INSERT INTO tasks (id, follow, ref, session_id, created_at, principal) VALUES (?, ?, ?, ?, ?, ?)",
            (task.id, task.follow, task.ref, task.session_id, task.created_at, task.principal),
        )
        await self.flush()

    async def get_task(self, task_id: str, who: Caller | None = None) -> TaskRow | None:
        await self.flush()
        mine, params = self.mine(who, "t.principal")
        found = await self._rows(
            "SELECT t.id, t.follow, t.ref, t.session_id, t.created_at, t.cancelled_at, s.ended_at, t.principal"
            f" FROM tasks t LEFT JOIN sessions s ON s.id = t.session_id WHERE t.id = ? AND {mine}",
            (task_id, *params),
        )
        return TaskRow(*found[0]) if found else None

    async def cancel_task(self, task_id: str, at: float) -> None:
        self.submit("UPDATE tasks SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL", (at, task_id))
        await self.flush()

    # --- tasks that are tool calls running in one server process -------------------------------------
    async def save_call_task(self, task: CallTaskRow) -> None:
        """Committed before it returns, as save_task; expired ones are let go on the way."""
        self.submit("DELETE FROM call_tasks WHERE expires_at < ?", (task.created_at,))
        self.submit(*insert("call_tasks", task, view=compact_json(task.view)))
        await self.flush()

    async def update_call_task(self, task_id: str, status: str, view: dict[str, Any], at: float) -> bool:
        """The task as it stands now, unless it has ended already (an end is never undone)."""
        sql = (
            f"UPDATE call_tasks SET status = ?, view = ?, updated_at = ?, alive_at = ? WHERE id = ? AND {RUNNING_CALL}"
        )
        params = (status, compact_json(view), at, at, task_id)
        return bool(await self.transaction(lambda db: db.execute(sql, params).rowcount))

    async def get_call_task(self, task_id: str, who: Caller | None = None) -> CallTaskRow | None:
        await self.flush()
        mine, params = self.mine(who)
        sql = f"SELECT {CALL_TASK_COLUMNS} FROM call_tasks WHERE id = ? AND {mine}"
        found = await self._rows(sql, (task_id, *params))
        return call_task_row(found[0]) if found else None

    async def beat_call_tasks(self, owner: str, at: float) -> list[str]:
        """The owner's heartbeat for its running tasks; the ones a client asked (anywhere) to cancel."""

        def work(db: Connection) -> list[str]:
            db.execute(f"UPDATE call_tasks SET alive_at = ? WHERE owner = ? AND {RUNNING_CALL}", (at, owner))
            asked = db.execute(
                f"SELECT id FROM call_tasks WHERE owner = ? AND {RUNNING_CALL} AND cancel_asked_at IS NOT NULL",
                (owner,),
            ).fetchall()
            return [row[0] for row in asked]

        return await self.transaction(work)

    async def ask_to_cancel_call_task(self, task_id: str, at: float) -> None:
        self.submit(f"UPDATE call_tasks SET cancel_asked_at = ? WHERE id = ? AND {RUNNING_CALL}", (at, task_id))
        await self.flush()


def _end(row: SessionRow, event: EventRow, db: Connection) -> bool:
    """Record a session's end unless a server did before (the event too, only then): the conditional upsert
    decides, so the end and its event are stored once however many servers see it."""
    changed = db.execute(SAVE_SESSION, row.values()).rowcount
    if changed:
        db.execute(*event_insert(event))
    return bool(changed)
