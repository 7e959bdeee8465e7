"""The local provider's tables: their schema (SQLite, and the same in PostgreSQL's words), the records read from
them and the statements that write them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from providers.local.database import PostgresDatabase

Sql = tuple[str, tuple[Any, ...]]
# 7: `principal`, the owner a record belongs to (providers.services.Caller.owner), in every table; routine runs'
# idempotency keys are per principal. (`owner` in sessions and call_tasks is the server process that runs it.)
SCHEMA_VERSION = 7
PRINCIPAL_TABLES = ("sessions", "routine_runs", "events", "tasks", "call_tasks")
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
    place TEXT,
    principal TEXT
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
    principal TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS routine_runs_by_key ON routine_runs(routine, idempotency_key, principal);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    sandbox_id TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    principal TEXT
);
CREATE INDEX IF NOT EXISTS events_by_sandbox ON events(sandbox_id, timestamp);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    follow TEXT NOT NULL,
    ref TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    cancelled_at REAL,
    principal TEXT
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
    cancel_asked_at REAL,
    principal TEXT
);
CREATE INDEX IF NOT EXISTS call_tasks_by_owner ON call_tasks(owner, status);
"""


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
    principal: str | None = None  # whose it is (None: made before owners were recorded)

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
    principal: str | None = None


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
    principal: str | None = None


@dataclass
class CallTaskRow:
    """An MCP task that is a tool call running in one server process (`owner`, see call_tasks.py): `view` is the
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
    principal: str | None = None


RUNNING_CALL = "status IN ('working', 'input_required')"


@dataclass
class EventRow:
    id: str
    sandbox_id: str
    type: str
    data: dict[str, Any]
    timestamp: int
    principal: str | None = None


# The columns are the records' fields, in order (a session's rowid is SQLite's own, a column in PostgreSQL).
SESSION_COLUMNS = tuple(f.name for f in fields(SessionRow))[1:]
SELECT_SESSION = f"SELECT rowid, {', '.join(SESSION_COLUMNS)} FROM sessions"
# Insert or replace a session's whole record, unless it has ended (an end is never undone): changes no row then.
SAVE_SESSION = (
    f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES ({', '.join('?' * len(SESSION_COLUMNS))})"
    f" ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in SESSION_COLUMNS if c != 'id')}"
    " WHERE sessions.state = 'running'"
)
RUN_COLUMNS = ", ".join(f"r.{f.name}" for f in fields(RunRow))
CALL_TASK_COLUMNS = ", ".join(f.name for f in fields(CallTaskRow))


def insert(table: str, row: Any, **encoded: Any) -> Sql:
    """The INSERT of a record, its fields in `encoded` as given there (encoded for their column)."""
    values = {f.name: getattr(row, f.name) for f in fields(row)} | encoded
    return f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", tuple(values.values())


def run_row(row: Sequence[Any]) -> RunRow:
    return RunRow(*[*row[:5], json.loads(row[5]) if row[5] is not None else None, *row[6:]])


def run_insert(run: RunRow) -> Sql:
    return insert("routine_runs", run, metadata=json.dumps(run.metadata) if run.metadata is not None else None)


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def call_task_row(row: Sequence[Any]) -> CallTaskRow:
    return CallTaskRow(*[*row[:7], json.loads(row[7]), *row[8:]])


def event_insert(event: EventRow) -> Sql:
    return insert("events", event, data=compact_json(event.data))


def migrate(db: sqlite3.Connection) -> None:
    """Bring an older database to SCHEMA_VERSION (version 1: the first release; sessions were re-shaped). Records
    made before version 7 keep `principal` NULL: they belong to the owner the operator names (Store.earlier_owner)."""
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
        if "routine_runs" in tables and 3 <= version < 7:  # its UNIQUE (routine, idempotency_key) goes: a rebuild
            db.execute("ALTER TABLE routine_runs RENAME TO routine_runs_v6")
        for table in ("sessions", "events", "tasks", "call_tasks"):
            if table in tables and (table != "sessions" or version >= 2) and "principal" not in _columns(db, table):
                db.execute(f"ALTER TABLE {table} ADD COLUMN principal TEXT")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        if "routine_runs" in tables and 3 <= version < 7:
            columns = "id, routine, idempotency_key, message_digest, session_id, metadata, created_at"
            db.execute(f"INSERT INTO routine_runs ({columns}) SELECT {columns} FROM routine_runs_v6")
            db.execute("DROP TABLE routine_runs_v6")
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


# What tables made by an earlier PostgreSQL schema lack (each statement harmless when they have it already).
POSTGRES_UPGRADE = "".join(
    f"ALTER TABLE IF EXISTS {t} ADD COLUMN IF NOT EXISTS principal TEXT;\n" for t in PRINCIPAL_TABLES
)
POSTGRES_UPGRADE += (
    "ALTER TABLE IF EXISTS routine_runs DROP CONSTRAINT IF EXISTS routine_runs_routine_idempotency_key_key;\n"
)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def postgres_schema() -> str:
    """SCHEMA in PostgreSQL's words: the same tables and indexes, PostgreSQL's types, and the sessions' rowid
    (implicit in SQLite) made a column; preceded by POSTGRES_UPGRADE for a database an earlier version made."""
    schema = PostgresDatabase.dialect(SCHEMA)
    return POSTGRES_UPGRADE + schema.replace("sessions (\n", "sessions (\n    rowid BIGSERIAL UNIQUE,\n", 1)


def like_prefix(prefix: str) -> str:
    return prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
