"""Durable state of the local provider: session records, routine runs, tasks and events, in SQLite (one file
in the data directory, WAL) or PostgreSQL (shared by replicas); see database.py.

A session's own directory (job.json, result.json; see supervisor.py) is the truth about a local run; the
sessions table is the index every server reads, kept in step by whichever server on the session's machine sees
a change first (its `place`). Updates are conditional, so two servers recording the same end agree.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from providers.local.database import Connection, Database, PostgresDatabase, SQLiteDatabase, StoreError
from providers.models import fitting

SCHEMA_VERSION = 6
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    command TEXT NOT NULL,
    cwd TEXT NOT NULL,
    origin TEXT NOT NULL,
    owner TEXT,
    supervisor TEXT,
    pid INTEGER,
    timeout_s REAL,
    started_at REAL NOT NULL,
    ended_at REAL,
    exit_code INTEGER,
    end_reason TEXT,
    message TEXT,
    stdout_bytes INTEGER,
    stderr_bytes INTEGER,
    disk_bytes INTEGER,
    place TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_state ON sessions(state);
CREATE INDEX IF NOT EXISTS sessions_by_end ON sessions(ended_at);
CREATE TABLE IF NOT EXISTS routine_runs (
    id TEXT PRIMARY KEY,
    routine TEXT NOT NULL,
    idempotency_key TEXT,
    message_digest TEXT,
    session_id TEXT,
    metadata TEXT,
    created_at REAL NOT NULL,
    UNIQUE (routine, idempotency_key)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    sandbox_id TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_sandbox ON events(sandbox_id, timestamp);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    follow TEXT NOT NULL,
    ref TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    cancelled_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_by_session ON tasks(session_id);
CREATE TABLE IF NOT EXISTS call_tasks (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    owner TEXT NOT NULL,
    alive_at REAL NOT NULL,
    view TEXT NOT NULL,
    cancel_asked_at REAL
);
CREATE INDEX IF NOT EXISTS call_tasks_by_owner ON call_tasks(owner, status);
"""

SESSION_COLUMNS = (
    "id",
    "state",
    "command",
    "cwd",
    "origin",
    "owner",
    "supervisor",
    "pid",
    "timeout_s",
    "started_at",
    "ended_at",
    "exit_code",
    "end_reason",
    "message",
    "stdout_bytes",
    "stderr_bytes",
    "place",
)
SELECT_SESSION = f"SELECT rowid, {', '.join(SESSION_COLUMNS)} FROM sessions"
LIVE_STATES = ("running",)
FAILED_STATES = ("failed", "timed_out", "stopped", "lost")
# Background commits wait this long for company: in a burst of short runs one commit records many.
BACKGROUND_FLUSH_DELAY_S = 0.01
# The finished sessions of one place (a data directory on one machine); its parameter: the place.
ENDED_HERE = "state != 'running' AND (place = ? OR place IS NULL)"
MAX_KEPT_STATEMENTS = 100_000  # writes kept for a later commit while the store refuses them (the newest)
EVENT_ROW_BYTES = 100  # what an event row takes besides its data (ids, type, timestamp, index entries), roughly
logger = logging.getLogger(__name__)
# A write: SQL and its parameters, or a function run inside the commit's transaction.
Sql = tuple[str, tuple[Any, ...]]
Statement = Sql | Callable[[Connection], Any]
T = TypeVar("T")
__all__ = ["Store", "StoreError"]


@dataclass
class _Batch:
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


@dataclass
class SessionRow:
    rowid: int
    id: str
    state: str
    command: str
    cwd: str
    origin: str
    owner: str | None = None
    supervisor: str | None = None
    pid: int | None = None
    timeout_s: float | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    exit_code: int | None = None
    end_reason: str | None = None
    message: str | None = None
    stdout_bytes: int | None = None
    stderr_bytes: int | None = None
    place: str | None = None  # the machine and data directory it runs in (host:/path)

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in SESSION_COLUMNS)


@dataclass
class RunRow:
    id: str
    routine: str
    idempotency_key: str | None
    message_digest: str | None
    session_id: str | None
    metadata: dict[str, Any] | None
    created_at: float


@dataclass
class TaskRow:
    """An MCP task that follows a local run: `follow` names the runtime call that reads `ref`."""

    id: str
    follow: str
    ref: str
    session_id: str
    created_at: float
    cancelled_at: float | None = None
    ended_at: float | None = None  # its session's


@dataclass
class CallTaskRow:
    """An MCP task that is a tool call running in one server process (`owner`, see owners.py): `view` is the
    task as tasks/get shows it (JSON), kept in step by its owner, which also beats (`alive_at`) while it runs."""

    id: str
    status: str
    created_at: float
    updated_at: float
    expires_at: float
    owner: str
    alive_at: float
    view: dict[str, Any]
    cancel_asked_at: float | None = None


CALL_TASK_COLUMNS = "id, status, created_at, updated_at, expires_at, owner, alive_at, view, cancel_asked_at"
RUNNING_CALL = "status IN ('working', 'input_required')"


@dataclass
class EventRow:
    id: str
    sandbox_id: str
    type: str
    data: dict[str, Any]
    timestamp: int


class Store:
    """The local state over a Database (database.py), used from the event loop.

    Writes are *submitted*, and `flush()` commits everything pending in one transaction (group commit):
    concurrent writers share a commit, a caller that needs durability awaits the flush (storeEvent, a finished
    run), bookkeeping rides along with the next one. Every database error leaves as a StoreError that says what
    to do.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._write_lock = anyio.Lock()
        # Writes to commit, each with the session whose record it writes: a session's record is kept for the
        # next commit when this one fails for now (the disk is full), anything else is dropped with the error.
        self._pending: list[tuple[Statement, str | None]] = []
        # Sessions whose latest state is not committed yet: reads include them, so that none disappears.
        self._unsaved: dict[str, SessionRow] = {}
        self._waiters: list[_Batch] = []
        self._flushing = False
        self._flush_scheduled = False
        self._after_flush: list[Callable[[], Awaitable[None]]] = []

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (and create or migrate) the SQLite file; sqlite3 errors pass through for the caller to word."""
        return cls(SQLiteDatabase.open(path, _migrate))

    @classmethod
    async def open_url(cls, url: str, replica: str) -> Store:
        """Open (and create or migrate) a PostgreSQL database; a StoreError says why it cannot be used."""
        return cls(await PostgresDatabase.open(url, replica, postgres_schema()))

    async def close(self) -> None:
        try:
            await self.flush()
        except StoreError:
            pass  # what could not be written is still in the session directories
        await self.db.close()

    # --- writing ----------------------------------------------------------------------------------
    def submit(self, sql: str, params: tuple[Any, ...], session: SessionRow | None = None) -> None:
        """Queue a write (of `session`'s record); the next flush (any caller's) commits it."""
        self._pending.append(((sql, params), self._keep(session)))

    def submit_work(self, work: Callable[[Connection], Any], session: SessionRow | None = None) -> None:
        """Queue a function to run inside the next flush's transaction."""
        self._pending.append((work, self._keep(session)))

    def _keep(self, session: SessionRow | None) -> str | None:
        if session is None:
            return None
        self._unsaved[session.id] = session
        return session.id

    async def flush(self, background: bool = False) -> None:
        """Commit everything submitted so far; return when it is durable (or raise a StoreError). `background`:
        the commit is made off the event loop (see Database.commit)."""
        if not self._pending and not self._flushing:
            return
        batch = _Batch()
        self._waiters.append(batch)
        if not self._flushing:
            self._flushing = True
            # Shielded: once statements are taken from the queue their waiters must hear how it went.
            with anyio.CancelScope(shield=True):
                try:
                    while self._waiters:
                        await anyio.lowlevel.checkpoint()  # every task ready to write joins this batch
                        pending, self._pending = self._pending, []
                        waiters, self._waiters = self._waiters, []
                        try:
                            await self._commit(_executing([statement for statement, _ in pending]), background)
                        except Exception as exc:
                            error = self.db.error(exc)
                            if error is None:
                                raise
                            if error.lasting:  # sessions' records are kept, in order, for the next commit
                                self._pending[:0] = [p for p in pending if p[1] is not None][-MAX_KEPT_STATEMENTS:]
                            for waiter in waiters:
                                waiter.error = error
                        else:
                            still = {session_id for _, session_id in self._pending}
                            for _, session_id in pending:
                                if session_id is not None and session_id not in still:
                                    self._unsaved.pop(session_id, None)
                        for waiter in waiters:
                            waiter.done.set()
                finally:
                    self._flushing = False
        await batch.done.wait()
        if batch.error is not None:
            raise batch.error

    def flush_soon(self, task_group: Any, after: Callable[[], Awaitable[None]] | None = None) -> None:
        """Commit what is pending a little later, in the background, together with whatever else comes in
        meanwhile (a burst of runs shares one commit); then run `after`. A failure is logged, not raised."""
        if after is not None:
            self._after_flush.append(after)
        if self._flush_scheduled:
            return
        self._flush_scheduled = True

        async def later() -> None:
            await anyio.sleep(BACKGROUND_FLUSH_DELAY_S)
            self._flush_scheduled = False
            callbacks, self._after_flush = self._after_flush, []
            try:
                await self.flush(background=True)
            except StoreError as exc:
                logger.warning("runtimes-mcp: %s", exc)
                return
            for callback in callbacks:
                await callback()

        task_group.start_soon(later)

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction of its own (after what is pending), and return its result."""
        await self.flush()
        try:
            return await self._commit(work)
        except Exception as exc:
            error = self.db.error(exc)
            if error is None:
                raise
            raise error from None

    async def _commit(self, work: Callable[[Connection], T], background: bool = False) -> T:
        async with self._write_lock:
            return await self.db.commit(work, background)

    async def _rows(
        self, sql: str, params: Sequence[Any] = (), convert: Callable[[Sequence[Any]], Any] | None = None
    ) -> list[Any]:
        try:
            return await self.db.rows(sql, tuple(params), convert)
        except Exception as exc:
            error = self.db.error(exc)
            if error is None:
                raise
            raise error from None

    # --- sessions ---------------------------------------------------------------------------------
    def save_session(self, row: SessionRow) -> None:
        """Insert or replace the whole record, unless it already ended (an end is never undone)."""
        columns = ", ".join(SESSION_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in SESSION_COLUMNS if c != "id")
        self.submit(
            f"INSERT INTO sessions ({columns}) VALUES ({', '.join('?' * len(SESSION_COLUMNS))})"
            f" ON CONFLICT(id) DO UPDATE SET {updates} WHERE sessions.state = 'running'",
            row.values(),
            row,
        )

    def set_pid(self, session_id: str, pid: int) -> None:
        self.submit("UPDATE sessions SET pid = ? WHERE id = ?", (pid, session_id))

    def save_end(self, row: SessionRow, event: EventRow) -> None:
        """Queue the end of a run (with its event, only if no server recorded the end before)."""
        self.submit_work(functools.partial(_end, row, event), row)

    async def record_end(self, row: SessionRow, event: EventRow | None) -> bool:
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

    async def get_session(self, session_id: str) -> SessionRow | None:
        await self._flush_for_reading()
        if session_id in self._unsaved:
            return self._unsaved[session_id]
        found = await self._rows(f"{SELECT_SESSION} WHERE id = ?", (session_id,))
        return SessionRow(*found[0]) if found else None

    async def list_sessions(
        self, states: Sequence[str], limit: int, before_rowid: int | None, launchers: bool = False
    ) -> list[SessionRow]:
        """Newest first; `launchers`: launchers' runs too (else they are left out)."""
        await self._flush_for_reading()
        rows = await self._list_sessions(states, limit, before_rowid, launchers)
        if not self._unsaved:
            return rows
        unsaved = [
            r
            for r in self._unsaved.values()
            if (not states or r.state in states) and (launchers or not r.origin.startswith("launcher:"))
        ]
        first = sorted(unsaved, key=lambda r: r.started_at, reverse=True) if before_rowid is None else []
        return (first + [r for r in rows if r.id not in self._unsaved])[:limit]

    async def _list_sessions(
        self, states: Sequence[str], limit: int, before_rowid: int | None, launchers: bool
    ) -> list[SessionRow]:
        where: list[str] = [] if launchers else ["origin NOT LIKE 'launcher:%'"]
        args: list[Any] = []
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(states)
        if before_rowid is not None:
            where.append("rowid < ?")
            args.append(before_rowid)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"{SELECT_SESSION} {clause} ORDER BY rowid DESC LIMIT ?"
        return [SessionRow(*r) for r in await self._rows(sql, (*args, limit))]

    async def latest_session(self, origin: str) -> SessionRow | None:
        await self._flush_for_reading()
        found = await self._rows(f"{SELECT_SESSION} WHERE origin = ? ORDER BY rowid DESC LIMIT 1", (origin,))
        return SessionRow(*found[0]) if found else None

    async def running_sessions(self, place: str) -> list[SessionRow]:
        """Running sessions of one place (records without a place predate places: they are this machine's)."""
        await self.flush()
        sql = f"{SELECT_SESSION} WHERE state = 'running' AND (place = ? OR place IS NULL)"
        return [SessionRow(*r) for r in await self._rows(sql, (place,))]

    async def session_ids(self, prefix: str, limit: int) -> list[str]:
        """Newest session ids starting with `prefix` (for argument completion)."""
        await self.flush()
        sql = "SELECT id FROM sessions WHERE id LIKE ? ESCAPE '!' ORDER BY rowid DESC LIMIT ?"
        return [r[0] for r in await self._rows(sql, (_like_prefix(prefix), limit))]

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

    async def oldest_ended(self, place: str, limit: int, before: float | None = None) -> list[tuple[str, int]]:
        """(id, disk_bytes) of the finished sessions of one place, oldest end first (`before`: ended earlier)."""
        await self.flush()
        where = ENDED_HERE + (" AND ended_at < ?" if before is not None else "")
        args = (place, before, limit) if before is not None else (place, limit)
        sql = f"SELECT id, COALESCE(disk_bytes, 0) FROM sessions WHERE {where} ORDER BY ended_at LIMIT ?"
        return [(r[0], int(r[1])) for r in await self._rows(sql, args)]

    def set_disk_bytes(self, session_id: str, size: int) -> None:
        self.submit("UPDATE sessions SET disk_bytes = ? WHERE id = ?", (size, session_id))

    def delete_sessions(self, ids: Sequence[str], running_too: bool = False) -> None:
        """Forget finished sessions (or ones that never started), and the routine runs (and so idempotency
        keys) that point at them."""
        condition = "" if running_too else " AND state != 'running'"
        for session_id in ids:
            self._unsaved.pop(session_id, None)
            self.submit(f"DELETE FROM sessions WHERE id = ?{condition}", (session_id,))
            self.submit("DELETE FROM routine_runs WHERE session_id = ?", (session_id,))
            self.submit("DELETE FROM tasks WHERE session_id = ?", (session_id,))

    async def delete_events_before(self, timestamp_ms: int) -> int:
        """Delete the events older than this; how many there were."""
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

    async def database_bytes(self) -> int:
        """Bytes of this machine's disk the database holds that retention can lower."""
        try:
            return await self.db.used_bytes()
        except Exception as exc:
            raise self.db.error(exc) or exc from None

    async def checkpoint(self) -> None:
        """Give back the space deleted rows took (SQLite: fold the WAL into the file)."""
        await self.flush()
        try:
            async with self._write_lock:
                await self.db.checkpoint()
        except Exception as exc:
            raise self.db.error(exc) or exc from None

    # --- routine runs -----------------------------------------------------------------------------
    async def claim_run(self, run: RunRow, stale_after_s: float) -> tuple[RunRow | None, str | None]:
        """Claim (routine, idempotency_key) for `run`, atomically across tasks and processes.

        Returns (None, None) when `run` now holds the key; (holder, holder's session state) when a run that
        has not failed holds it. A holder that failed, or never started within `stale_after_s`, gives the key
        up to `run` in the same transaction, so concurrent retries after a failure start exactly one run."""

        def work(db: Connection) -> tuple[RunRow | None, str | None]:
            self.db.serialize(db, f"routine-key:{run.routine}:{run.idempotency_key}")
            found = db.execute(
                f"SELECT {RUN_COLUMNS}, s.state FROM routine_runs r LEFT JOIN sessions s ON s.id = r.session_id"
                " WHERE r.routine = ? AND r.idempotency_key = ?",
                (run.routine, run.idempotency_key),
            ).fetchone()
            if found is not None:
                holder, state = _run_row(found[:-1]), found[-1]
                never_started = holder.session_id is None and run.created_at - holder.created_at > stale_after_s
                if state not in FAILED_STATES and not never_started:
                    return holder, state
                db.execute("UPDATE routine_runs SET idempotency_key = NULL WHERE id = ?", (holder.id,))
            db.execute(*_run_insert(run))
            return None, None

        return await self.transaction(work)

    def release_key(self, run_id: str) -> None:
        self.submit("UPDATE routine_runs SET idempotency_key = NULL WHERE id = ?", (run_id,))

    def set_run_session(self, run_id: str, session_id: str) -> None:
        self.submit("UPDATE routine_runs SET session_id = ? WHERE id = ?", (session_id, run_id))

    async def get_run(self, run_id: str) -> RunRow | None:
        await self.flush()
        found = await self._rows(f"SELECT {RUN_COLUMNS} FROM routine_runs r WHERE r.id = ?", (run_id,))
        return _run_row(found[0]) if found else None

    # --- tasks ------------------------------------------------------------------------------------
    async def save_task(self, task: TaskRow) -> None:
        """Committed before it returns: a task id handed to a client resolves on every server at once."""
        self.submit(
            "INSERT INTO tasks (id, follow, ref, session_id, created_at) VALUES (?, ?, ?, ?, ?)",
            (task.id, task.follow, task.ref, task.session_id, task.created_at),
        )
        await self.flush()

    async def get_task(self, task_id: str) -> TaskRow | None:
        await self.flush()
        found = await self._rows(
            "SELECT t.id, t.follow, t.ref, t.session_id, t.created_at, t.cancelled_at, s.ended_at FROM tasks t"
            " LEFT JOIN sessions s ON s.id = t.session_id WHERE t.id = ?",
            (task_id,),
        )
        return TaskRow(*found[0]) if found else None

    async def cancel_task(self, task_id: str, at: float) -> None:
        self.submit("UPDATE tasks SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL", (at, task_id))
        await self.flush()

    # --- tasks that are tool calls running in one server process -------------------------------------
    async def save_call_task(self, task: CallTaskRow) -> None:
        """Committed before it returns, as save_task; expired ones are let go on the way."""
        self.submit("DELETE FROM call_tasks WHERE expires_at < ?", (task.created_at,))
        self.submit(
            f"INSERT INTO call_tasks ({CALL_TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _call_task_values(task),
        )
        await self.flush()

    async def update_call_task(self, task_id: str, status: str, view: dict[str, Any], at: float) -> bool:
        """The task as it stands now, unless it has ended already (an end is never undone)."""
        sql = (
            f"UPDATE call_tasks SET status = ?, view = ?, updated_at = ?, alive_at = ? WHERE id = ? AND {RUNNING_CALL}"
        )
        params = (status, _json(view), at, at, task_id)
        return bool(await self.transaction(lambda db: db.execute(sql, params).rowcount))

    async def get_call_task(self, task_id: str) -> CallTaskRow | None:
        await self.flush()
        found = await self._rows(f"SELECT {CALL_TASK_COLUMNS} FROM call_tasks WHERE id = ?", (task_id,))
        return _call_task_row(found[0]) if found else None

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

    # --- events -----------------------------------------------------------------------------------
    def insert_event(self, event: EventRow) -> None:
        self.submit(*_event_insert(event))

    async def query_events(
        self, sandbox_id: str, type_: str | None, since: int | None, limit: int, max_chars: int
    ) -> tuple[list[EventRow], bool]:
        """Matching events, oldest first: the newest `limit` of them, or with `since` the first `limit` after it;
        fewer when their data would pass `max_chars`. Returns (events, whether some were left out for size).

        Two queries: the page is chosen from the events' sizes alone, and only its events' data is read. (One
        query with a running sum over the data made the database hold several copies of every candidate's data
        at once: a 1 MiB page took 8 MiB.)"""
        await self.flush()
        where: list[str] = ["sandbox_id = ?"]
        args: list[Any] = [sandbox_id]
        if type_ is not None:
            where.append("type = ?")
            args.append(type_)
        if since is not None:
            where.append("timestamp > ?")
            args.append(since)
        order = "ASC" if since is not None else "DESC"
        sizes = await self._rows(
            f"SELECT seq, length(data) FROM events WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?",
            (*args, limit),
        )
        chosen = sizes[: fitting((size for _, size in sizes), max_chars)]
        if not chosen:
            return [], False
        marks = ", ".join("?" * len(chosen))

        def parsed(r: Sequence[Any]) -> EventRow:
            return EventRow(r[0], r[1], r[2], json.loads(r[3]), r[4])

        rows = await self._rows(
            f"SELECT id, sandbox_id, type, data, timestamp FROM events WHERE seq IN ({marks}) ORDER BY seq ASC",
            tuple(seq for seq, _ in chosen),
            parsed,
        )
        return rows, len(chosen) < len(sizes)

    async def sandbox_ids(self, prefix: str, limit: int) -> list[str]:
        await self.flush()
        sql = "SELECT DISTINCT sandbox_id FROM events WHERE sandbox_id LIKE ? ESCAPE '!' ORDER BY sandbox_id LIMIT ?"
        return [r[0] for r in await self._rows(sql, (_like_prefix(prefix), limit))]


RUN_COLUMNS = "r.id, r.routine, r.idempotency_key, r.message_digest, r.session_id, r.metadata, r.created_at"


def _run_row(row: Sequence[Any]) -> RunRow:
    metadata = json.loads(row[5]) if row[5] is not None else None
    return RunRow(row[0], row[1], row[2], row[3], row[4], metadata, row[6])


def _run_insert(run: RunRow) -> Sql:
    return (
        "INSERT INTO routine_runs (id, routine, idempotency_key, message_digest, session_id, metadata, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            run.id,
            run.routine,
            run.idempotency_key,
            run.message_digest,
            run.session_id,
            json.dumps(run.metadata) if run.metadata is not None else None,
            run.created_at,
        ),
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _call_task_values(task: CallTaskRow) -> tuple[Any, ...]:
    return (
        task.id,
        task.status,
        task.created_at,
        task.updated_at,
        task.expires_at,
        task.owner,
        task.alive_at,
        _json(task.view),
        task.cancel_asked_at,
    )


def _call_task_row(row: Sequence[Any]) -> CallTaskRow:
    return CallTaskRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]), row[8])


def _event_insert(event: EventRow) -> Sql:
    return (
        "INSERT INTO events (id, sandbox_id, type, data, timestamp) VALUES (?, ?, ?, ?, ?)",
        (
            event.id,
            event.sandbox_id,
            event.type,
            json.dumps(event.data, separators=(",", ":"), ensure_ascii=False),
            event.timestamp,
        ),
    )


def _executing(statements: list[Statement]) -> Callable[[Connection], None]:
    def work(db: Connection) -> None:
        for statement in statements:
            if callable(statement):
                statement(db)
            else:
                db.execute(*statement)

    return work


def _end(row: SessionRow, event: EventRow | None, db: Connection) -> bool:
    """Record a session's end unless a server did before (the event too, only then): the conditional UPDATE
    decides, so the end and its event are stored once however many servers see it."""
    columns, marks = ", ".join(SESSION_COLUMNS), ", ".join("?" * len(SESSION_COLUMNS))
    db.execute(
        f"INSERT INTO sessions ({columns}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
        (*row.values()[:1], "running", *row.values()[2:]),
    )
    updates = ", ".join(f"{c} = ?" for c in SESSION_COLUMNS if c != "id")
    changed = db.execute(
        f"UPDATE sessions SET {updates} WHERE id = ? AND state = 'running'", (*row.values()[1:], row.id)
    ).rowcount
    if changed and event is not None:
        db.execute(*_event_insert(event))
    return bool(changed)


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an older database to SCHEMA_VERSION (version 1: the first release; sessions were re-shaped)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "sessions" in tables and 2 <= version < 5:
            db.execute("ALTER TABLE sessions ADD COLUMN place TEXT")
        if "sessions" in tables and version < 2:
            db.execute("ALTER TABLE sessions RENAME TO sessions_v1")
        if "routine_runs" in tables and version < 3:
            db.execute("ALTER TABLE routine_runs RENAME TO routine_runs_v1")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        if "sessions" in tables and version < 2:
            db.execute(
                "INSERT INTO sessions (id, state, command, cwd, origin, pid, timeout_s, started_at, ended_at,"
                " exit_code, message) SELECT id, CASE state WHEN 'detached' THEN 'lost' ELSE state END, command, cwd,"
                " origin, pid, timeout_s, started_at, coalesce(ended_at, started_at), exit_code, message"
                " FROM sessions_v1 ORDER BY rowid"
            )
            db.execute("UPDATE sessions SET state = 'lost' WHERE state = 'running'")
            db.execute("DROP TABLE sessions_v1")
            db.execute("DROP TABLE IF EXISTS spare_slots")
        if "routine_runs" in tables and version < 3:
            db.execute(
                "INSERT INTO routine_runs (id, routine, idempotency_key, session_id, metadata, created_at)"
                " SELECT id, routine, idempotency_key, session_id, metadata, created_at FROM routine_runs_v1"
            )
            db.execute("DROP TABLE routine_runs_v1")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def postgres_schema() -> str:
    """SCHEMA in PostgreSQL's words: the same tables and indexes, PostgreSQL's types, and the sessions' rowid
    (implicit in SQLite) made a column."""
    schema = SCHEMA.replace("seq INTEGER PRIMARY KEY AUTOINCREMENT", "seq BIGSERIAL PRIMARY KEY")
    schema = schema.replace(" REAL", " DOUBLE PRECISION").replace(" INTEGER", " BIGINT")
    return schema.replace("sessions (\n", "sessions (\n    rowid BIGSERIAL UNIQUE,\n", 1)


def _like_prefix(prefix: str) -> str:
    return prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
