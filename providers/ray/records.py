"""The ray provider's records, in the shared state: a session's node, state and owner, and the node each workspace
lives on. Every server on the same state (the data directory's SQLite, or PostgreSQL) lists, follows and stops every
session through them; the output and the processes stay on the node. Tables of our own, created here: the local
runtime's tables are not touched."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from providers.local.database import Connection, Database, PostgresDatabase, SQLiteDatabase, StoreError, Work

PROVIDER = "ray"
FILE = "ray.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS ray_sessions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    node_id TEXT NOT NULL,
    node_ip TEXT NOT NULL,
    namespace TEXT NOT NULL,
    agent TEXT NOT NULL,
    state TEXT NOT NULL,
    command TEXT NOT NULL,
    workspace TEXT,
    reservation TEXT,
    owner TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    exit_code INTEGER,
    end_reason TEXT,
    message TEXT
);
CREATE INDEX IF NOT EXISTS ray_sessions_by_state ON ray_sessions(state);
CREATE TABLE IF NOT EXISTS ray_workspaces (
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    node_id TEXT NOT NULL,
    node_ip TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, owner)
);
"""
T = TypeVar("T")
logger = logging.getLogger(__name__)


def postgres_schema() -> str:
    schema = SCHEMA.replace("seq INTEGER PRIMARY KEY AUTOINCREMENT", "seq BIGSERIAL PRIMARY KEY")
    return schema.replace(" REAL", " DOUBLE PRECISION").replace(" INTEGER", " BIGINT")


@dataclass
class RaySession:
    id: str
    node_id: str
    node_ip: str
    state: str
    command: str
    workspace: str | None = None
    reservation: str | None = None  # the placement group that holds its resources
    owner: str | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    exit_code: int | None = None
    end_reason: str | None = None
    message: str | None = None
    namespace: str = ""  # the Ray namespace and name of the agent that runs it
    agent: str = ""
    seq: int = 0


COLUMNS = tuple(f.name for f in fields(RaySession) if f.name != "seq")
SELECT = f"SELECT {', '.join(COLUMNS)}, seq FROM ray_sessions"


def _row(values: Sequence[Any]) -> RaySession:
    return RaySession(*values)


class Records:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    async def open(cls, data_dir: Path, state_url: str | None, replica: str) -> Records:
        """Our tables in PostgreSQL at `state_url`, else in the data directory's ray.sqlite3; a StoreError says why
        they cannot be used."""
        try:
            if state_url:
                return cls(await _open_postgres(state_url, replica))
            return cls(await anyio.to_thread.run_sync(_open_sqlite, data_dir))
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                PROVIDER,
                f"its records in {data_dir / FILE} cannot be used ({exc})",
                hint="Set RUNTIMES_MCP_DATA_DIR to a directory this user can write, or move ray.sqlite3 aside.",
            ) from None

    async def close(self) -> None:
        await self.db.close()

    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return await self.db.rows(sql, params)
        except Exception as exc:
            raise self._error(exc) from None

    async def _write(self, work: Work[T]) -> T:
        try:
            return await self.db.commit(work)
        except Exception as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> Exception:
        error = self.db.error(exc)
        if error is None:
            return exc
        error.provider = PROVIDER
        return error

    # --- sessions ---------------------------------------------------------------------------------------
    async def add(self, session: RaySession) -> None:
        values = tuple(getattr(session, name) for name in COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)

        def insert(db: Connection) -> None:
            db.execute(f"INSERT INTO ray_sessions ({', '.join(COLUMNS)}) VALUES ({marks})", values)

        await self._write(insert)

    async def get(self, session_id: str, owner: str | None = None) -> RaySession | None:
        """The session, if `owner` may see it (None: any)."""
        where, params = _visible(owner)
        rows = await self._read(f"{SELECT} WHERE id = ?{where}", (session_id, *params))
        return _row(rows[0]) if rows else None

    async def page(
        self, states: Sequence[str], limit: int, before: int | None, owner: str | None = None
    ) -> list[RaySession]:
        """Newest first: at most `limit` sessions in `states` (all when empty) older than cursor `before`."""
        conditions: list[str] = ["1 = 1"]
        params: list[Any] = []
        if states:
            conditions.append(f"state IN ({', '.join('?' for _ in states)})")
            params += list(states)
        if before is not None:
            conditions.append("seq < ?")
            params.append(before)
        where, visible = _visible(owner)
        sql = f"{SELECT} WHERE {' AND '.join(conditions)}{where} ORDER BY seq DESC LIMIT ?"
        return [_row(r) for r in await self._read(sql, (*params, *visible, limit))]

    async def running_per_node(self) -> dict[str, int]:
        rows = await self._read("SELECT node_id, count(*) FROM ray_sessions WHERE state = 'running' GROUP BY node_id")
        return {str(node): int(count) for node, count in rows}

    async def end(self, session: RaySession) -> bool:
        """Record how a running session ended (state, exit code, reason); False when another server did first."""
        values = (session.state, session.ended_at, session.exit_code, session.end_reason, session.message, session.id)

        def update(db: Connection) -> int:
            cursor = db.execute(
                "UPDATE ray_sessions SET state = ?, ended_at = ?, exit_code = ?, end_reason = ?, message = ? "
                "WHERE id = ? AND state = 'running'",
                values,
            )
            return cursor.rowcount

        return bool(await self._write(update))

    # --- workspaces -------------------------------------------------------------------------------------
    async def workspace_node(self, name: str, owner: str | None) -> tuple[str, str] | None:
        """(node id, node ip) of the node a workspace lives on, if it has been used."""
        rows = await self._read(
            "SELECT node_id, node_ip FROM ray_workspaces WHERE name = ? AND owner = ?", (name, owner or "")
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    async def place_workspace(self, name: str, owner: str | None, node_id: str, node_ip: str, now: float) -> None:
        def insert(db: Connection) -> None:
            db.execute(
                "INSERT INTO ray_workspaces (name, owner, node_id, node_ip, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name, owner) DO NOTHING",
                (name, owner or "", node_id, node_ip, now),
            )

        await self._write(insert)

    async def forget_workspace(self, name: str, owner: str | None) -> None:
        def delete(db: Connection) -> None:
            db.execute("DELETE FROM ray_workspaces WHERE name = ? AND owner = ?", (name, owner or ""))

        await self._write(delete)

    async def workspaces(self, owner: str | None) -> list[tuple[str, str, str]]:
        """(name, node id, node ip) of the workspaces `owner` sees (None: every one)."""
        where, params = ("", ()) if owner is None else (" WHERE owner = ?", (owner,))
        rows = await self._read(f"SELECT name, node_id, node_ip FROM ray_workspaces{where} ORDER BY name", params)
        return [(str(name), str(node_id), str(node_ip)) for name, node_id, node_ip in rows]


def _open_sqlite(data_dir: Path) -> SQLiteDatabase:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SQLiteDatabase.open(data_dir / FILE, _create)


def _create(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


def _visible(owner: str | None) -> tuple[str, tuple[Any, ...]]:
    """The condition that keeps rows to those `owner` may see (None: every row)."""
    return ("", ()) if owner is None else (" AND owner = ?", (owner,))


async def _open_postgres(url: str, replica: str) -> PostgresDatabase:
    """A small pool of our own and our tables (the local store's migration, with its version row, is its own)."""
    import psycopg
    from psycopg_pool import ConnectionPool

    def connect() -> Any:
        with psycopg.connect(url, connect_timeout=5, application_name=replica) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(7254)")  # one creation at a time
            conn.execute(postgres_schema())
        pool = ConnectionPool(
            url,
            min_size=1,
            max_size=4,
            kwargs={"application_name": replica, "connect_timeout": 5},
            timeout=2,
            open=False,
            reconnect_timeout=0,
        )
        pool.open(wait=True, timeout=10)
        return pool

    try:
        pool = await anyio.to_thread.run_sync(connect)
    except Exception as exc:  # psycopg.Error, PoolTimeout, a malformed URL
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(
            PROVIDER,
            f"its tables in PostgreSQL cannot be used ({cause})",
            hint="Check that PostgreSQL is up and RUNTIMES_MCP_STATE_URL is right, then restart the server.",
        ) from None
    return PostgresDatabase(url, pool, replica)
