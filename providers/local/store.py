"""Durable state of the local provider: sessions, routine runs and events in one SQLite file (WAL)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

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
"""

SESSION_COLUMNS = (
    "rowid, id, command, cwd, origin, state, pid, owner_pid, exit_code, timeout_s, started_at, ended_at, message"
)


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
    """One long-lived connection; aiosqlite runs it on its own thread, so callers never block the loop."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=10000")
        await db.executescript(SCHEMA)
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    # --- sessions ---------------------------------------------------------------------------------
    async def insert_session(self, row: SessionRow) -> None:
        await self._db.execute(
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

    async def finish_session(
        self, session_id: str, state: str, exit_code: int | None, ended_at: float, message: str | None
    ) -> None:
        await self._db.execute(
            "UPDATE sessions SET state = ?, exit_code = ?, ended_at = ?, message = ? WHERE id = ?",
            (state, exit_code, ended_at, message, session_id),
        )

    async def get_session(self, session_id: str) -> SessionRow | None:
        async with self._db.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)) as cur:
            found = await cur.fetchone()
        return SessionRow(*found) if found else None

    async def list_sessions(self, states: Sequence[str], limit: int, before_rowid: int | None) -> list[SessionRow]:
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
        async with self._db.execute(sql, (*args, limit)) as cur:
            return [SessionRow(*r) for r in await cur.fetchall()]

    async def running_sessions(self) -> list[SessionRow]:
        async with self._db.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE state = 'running'") as cur:
            return [SessionRow(*r) for r in await cur.fetchall()]

    async def session_ids(self, prefix: str, limit: int) -> list[str]:
        """Newest session ids starting with `prefix` (for argument completion)."""
        async with self._db.execute(
            "SELECT id FROM sessions WHERE id LIKE ? ESCAPE '\\' ORDER BY rowid DESC LIMIT ?",
            (_like_prefix(prefix), limit),
        ) as cur:
            return [r[0] for r in await cur.fetchall()]

    async def sandbox_ids(self, prefix: str, limit: int) -> list[str]:
        async with self._db.execute(
            "SELECT DISTINCT sandbox_id FROM events WHERE sandbox_id LIKE ? ESCAPE '\\' ORDER BY sandbox_id LIMIT ?",
            (_like_prefix(prefix), limit),
        ) as cur:
            return [r[0] for r in await cur.fetchall()]

    # --- routine runs -----------------------------------------------------------------------------
    async def claim_run(self, run: RunRow) -> RunRow | None:
        """Insert the run; if its (routine, idempotency_key) is taken, return the run that holds it."""
        try:
            await self._db.execute(
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
            return None
        except sqlite3.IntegrityError:
            async with self._db.execute(
                "SELECT id FROM routine_runs WHERE routine = ? AND idempotency_key = ?",
                (run.routine, run.idempotency_key),
            ) as cur:
                found = await cur.fetchone()
            return await self.get_run(found[0]) if found else None

    async def release_key(self, run_id: str) -> None:
        await self._db.execute("UPDATE routine_runs SET idempotency_key = NULL WHERE id = ?", (run_id,))

    async def set_run_session(self, run_id: str, session_id: str) -> None:
        await self._db.execute("UPDATE routine_runs SET session_id = ? WHERE id = ?", (session_id, run_id))

    async def get_run(self, run_id: str) -> RunRow | None:
        async with self._db.execute(
            "SELECT id, routine, idempotency_key, session_id, metadata, created_at FROM routine_runs WHERE id = ?",
            (run_id,),
        ) as cur:
            found = await cur.fetchone()
        if not found:
            return None
        metadata = json.loads(found[4]) if found[4] is not None else None
        return RunRow(found[0], found[1], found[2], found[3], metadata, found[5])

    # --- events -----------------------------------------------------------------------------------
    async def insert_event(self, event: EventRow) -> None:
        await self._db.execute(
            "INSERT INTO events (id, sandbox_id, type, data, timestamp) VALUES (?, ?, ?, ?, ?)",
            (event.id, event.sandbox_id, event.type, json.dumps(event.data, separators=(",", ":")), event.timestamp),
        )

    async def query_events(self, sandbox_id: str, type_: str | None, since: int | None, limit: int) -> list[EventRow]:
        """The newest `limit` matching events, returned oldest first."""
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
        async with self._db.execute(sql, (*args, limit)) as cur:
            rows = list(await cur.fetchall())
        return [EventRow(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in reversed(rows)]


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
