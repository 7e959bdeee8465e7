"""Durable state of the local provider: sessions, routine runs and events in one SQLite file (WAL)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    cwd TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER,
    owner_pid INTEGER NOT NULL,
    exit_code INTEGER,
    timeout_s REAL,
    started_at REAL NOT NULL,
    ended_at REAL,
    message TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_state ON sessions(state);
CREATE TABLE IF NOT EXISTS routine_runs (
    id TEXT PRIMARY KEY,
    routine TEXT NOT NULL,
    idempotency_key TEXT,
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
CREATE TABLE IF NOT EXISTS spare_slots (
    id TEXT PRIMARY KEY,
    owner_pid INTEGER NOT NULL
) WITHOUT ROWID;
"""

SESSION_COLUMNS = (
    "rowid, id, command, cwd, origin, state, pid, owner_pid, exit_code, timeout_s, started_at, ended_at, message"
)
LOCK_WAIT_MS = 10_000
Statement = tuple[str, tuple[Any, ...]]


@dataclass
class _Batch:
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


@dataclass
class SessionRow:
    rowid: int
    id: str
    command: str
    cwd: str
    origin: str
    state: str
    pid: int | None
    owner_pid: int
    exit_code: int | None
    timeout_s: float | None
    started_at: float
    ended_at: float | None
    message: str | None


@dataclass
class RunRow:
    id: str
    routine: str
    idempotency_key: str | None
    session_id: str | None
    metadata: dict[str, Any] | None
    created_at: float


@dataclass
class EventRow:
    id: str
    sandbox_id: str
    type: str
    data: dict[str, Any]
    timestamp: int


class Store:
    """Two long-lived connections to one WAL database, both used from the event loop.

    Reads run inline: a WAL reader never waits for writers, and our reads are small indexed queries, cheaper
    than a hop to a thread. Writes are *submitted*, and `flush()` commits everything pending in one
    transaction (group commit): concurrent writers share a commit, a caller that needs durability awaits the
    flush (storeEvent, a finished run), bookkeeping rides along with the next one. A commit also runs inline,
    without waiting for the write lock; only when another process holds that lock does a worker thread wait
    for it, so the loop never blocks on a lock."""

    def __init__(self, reader: sqlite3.Connection, writer: sqlite3.Connection) -> None:
        self._reader = reader
        self._writer = writer
        self._write_lock = anyio.Lock()
        self._pending: list[Statement] = []
        self._waiters: list[_Batch] = []
        self._flushing = False

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        writer.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA synchronous=NORMAL")
        writer.executescript(SCHEMA)
        reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA busy_timeout=1000")
        return cls(reader, writer)

    async def close(self) -> None:
        await self.flush()
        self._reader.close()
        self._writer.close()

    # --- writing ----------------------------------------------------------------------------------
    def submit(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue a write; the next flush (any caller's) commits it."""
        self._pending.append((sql, params))

    async def flush(self) -> None:
        """Commit everything submitted so far; return when it is durable (or raise what the commit raised)."""
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
                        statements, self._pending = self._pending, []
                        waiters, self._waiters = self._waiters, []
                        try:
                            await self._commit(statements)
                        except sqlite3.Error as exc:
                            for waiter in waiters:
                                waiter.error = exc
                        for waiter in waiters:
                            waiter.done.set()
                finally:
                    self._flushing = False
        await batch.done.wait()
        if batch.error is not None:
            raise batch.error

    async def _commit(self, statements: list[Statement]) -> None:
        if not statements:
            return
        async with self._write_lock:
            try:
                self._run(statements, busy_ms=0)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                await anyio.to_thread.run_sync(self._run, statements, LOCK_WAIT_MS)

    def _run(self, statements: list[Statement], busy_ms: int) -> None:
        self._writer.execute(f"PRAGMA busy_timeout={busy_ms}")
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                self._writer.execute(sql, params)
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise
        self._writer.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._reader.execute(sql, tuple(params)).fetchall()

    # --- sessions ---------------------------------------------------------------------------------
    def insert_session(self, row: SessionRow) -> None:
        self.submit(
            "INSERT INTO sessions (id, command, cwd, origin, state, pid, owner_pid, timeout_s, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.command,
                row.cwd,
                row.origin,
                row.state,
                row.pid,
                row.owner_pid,
                row.timeout_s,
                row.started_at,
            ),
        )

    def finish_session(
        self, session_id: str, state: str, exit_code: int | None, ended_at: float, message: str | None
    ) -> None:
        self.submit(
            "UPDATE sessions SET state = ?, exit_code = ?, ended_at = ?, message = ? WHERE id = ?",
            (state, exit_code, ended_at, message, session_id),
        )

    async def get_session(self, session_id: str) -> SessionRow | None:
        await self.flush()
        found = self._rows(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
        return SessionRow(*found[0]) if found else None

    async def list_sessions(self, states: Sequence[str], limit: int, before_rowid: int | None) -> list[SessionRow]:
        await self.flush()
        where: list[str] = []
        args: list[Any] = []
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(states)
        if before_rowid is not None:
            where.append("rowid < ?")
            args.append(before_rowid)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {SESSION_COLUMNS} FROM sessions {clause} ORDER BY rowid DESC LIMIT ?"
        return [SessionRow(*r) for r in self._rows(sql, (*args, limit))]

    def add_spare_slot(self, session_id: str, owner_pid: int) -> None:
        self.submit("INSERT INTO spare_slots (id, owner_pid) VALUES (?, ?)", (session_id, owner_pid))

    def drop_spare_slot(self, session_id: str) -> None:
        self.submit("DELETE FROM spare_slots WHERE id = ?", (session_id,))

    async def spare_slots(self) -> list[tuple[str, int]]:
        """(session id, owner pid) of slots made ahead and not (yet) used."""
        await self.flush()
        return [(r[0], r[1]) for r in self._rows("SELECT id, owner_pid FROM spare_slots")]

    async def running_sessions(self) -> list[SessionRow]:
        await self.flush()
        return [SessionRow(*r) for r in self._rows(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE state = 'running'")]

    async def session_ids(self, prefix: str, limit: int) -> list[str]:
        """Newest session ids starting with `prefix` (for argument completion)."""
        await self.flush()
        sql = "SELECT id FROM sessions WHERE id LIKE ? ESCAPE '\\' ORDER BY rowid DESC LIMIT ?"
        return [r[0] for r in self._rows(sql, (_like_prefix(prefix), limit))]

    async def sandbox_ids(self, prefix: str, limit: int) -> list[str]:
        await self.flush()
        sql = "SELECT DISTINCT sandbox_id FROM events WHERE sandbox_id LIKE ? ESCAPE '\\' ORDER BY sandbox_id LIMIT ?"
        return [r[0] for r in self._rows(sql, (_like_prefix(prefix), limit))]

    # --- routine runs -----------------------------------------------------------------------------
    async def claim_run(self, run: RunRow) -> RunRow | None:
        """Insert the run; if its (routine, idempotency_key) is taken, return the run that holds it."""
        await self.flush()
        insert = (
            "INSERT INTO routine_runs (id, routine, idempotency_key, session_id, metadata, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                run.id,
                run.routine,
                run.idempotency_key,
                run.session_id,
                json.dumps(run.metadata) if run.metadata is not None else None,
                run.created_at,
            ),
        )
        try:
            await self._commit([insert])  # alone: its own outcome decides the answer
            return None
        except sqlite3.IntegrityError:
            found = self._rows(
                "SELECT id FROM routine_runs WHERE routine = ? AND idempotency_key = ?",
                (run.routine, run.idempotency_key),
            )
            return await self.get_run(found[0][0]) if found else None

    async def release_key(self, run_id: str) -> None:
        self.submit("UPDATE routine_runs SET idempotency_key = NULL WHERE id = ?", (run_id,))
        await self.flush()

    async def set_run_session(self, run_id: str, session_id: str) -> None:
        self.submit("UPDATE routine_runs SET session_id = ? WHERE id = ?", (session_id, run_id))
        await self.flush()

    async def get_run(self, run_id: str) -> RunRow | None:
        await self.flush()
        found = self._rows(
            "SELECT id, routine, idempotency_key, session_id, metadata, created_at FROM routine_runs WHERE id = ?",
            (run_id,),
        )
        if not found:
            return None
        row = found[0]
        metadata = json.loads(row[4]) if row[4] is not None else None
        return RunRow(row[0], row[1], row[2], row[3], metadata, row[5])

    # --- events -----------------------------------------------------------------------------------
    def insert_event(self, event: EventRow) -> None:
        self.submit(
            "INSERT INTO events (id, sandbox_id, type, data, timestamp) VALUES (?, ?, ?, ?, ?)",
            (event.id, event.sandbox_id, event.type, json.dumps(event.data, separators=(",", ":")), event.timestamp),
        )

    async def query_events(self, sandbox_id: str, type_: str | None, since: int | None, limit: int) -> list[EventRow]:
        """The newest `limit` matching events, returned oldest first."""
        await self.flush()
        where: list[str] = ["sandbox_id = ?"]
        args: list[Any] = [sandbox_id]
        if type_ is not None:
            where.append("type = ?")
            args.append(type_)
        if since is not None:
            where.append("timestamp > ?")
            args.append(since)
        sql = (
            f"SELECT id, sandbox_id, type, data, timestamp FROM events WHERE {' AND '.join(where)}"
            " ORDER BY seq DESC LIMIT ?"
        )
        rows = self._rows(sql, (*args, limit))
        return [EventRow(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in reversed(rows)]


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
