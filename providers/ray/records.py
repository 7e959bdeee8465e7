"""The ray provider's records, in the shared state: a session's node, state and owner, and the node each workspace
lives on. Every server on the same state (the data directory's SQLite, or PostgreSQL) lists, follows and stops every
session through them; the output and the processes stay on the node. Tables of our own, created here: the local
runtime's tables are not touched."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from providers.local.database import Connection, Database, PostgresDatabase, SQLiteDatabase, StoreError, Work
from providers.services import LOCAL_OWNER, Caller

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


class Records:
    """Every read is made for a caller (providers.services.Caller): its own records, or every one for an admin
    (`who=None`: the server's own work). A record made before owners were recorded belongs to `earlier_owner`."""

    def __init__(self, db: Database, earlier_owner: str = LOCAL_OWNER) -> None:
        self.db = db
        self.earlier_owner = earlier_owner

    @classmethod
    async def open(
        cls, data_dir: Path, state_url: str | None, replica: str, earlier_owner: str = LOCAL_OWNER
    ) -> Records:
        """Our tables in PostgreSQL at `state_url`, else in the data directory's ray.sqlite3; a StoreError says why
        they cannot be used."""
        try:
            if state_url:
                return cls(await _open_postgres(state_url, replica), earlier_owner)
            return cls(await anyio.to_thread.run_sync(SQLiteDatabase.open, data_dir / FILE, _create), earlier_owner)
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

    def _visible(self, who: Caller | None) -> tuple[str, tuple[Any, ...]]:
        """The condition that keeps rows to those `who` sees: its own, or every one for an admin (or None)."""
        if who is None or who.admin:
            return "", ()
        return " AND COALESCE(owner, ?) = ?", (self.earlier_owner, who.owner)

    async def get(self, session_id: str, who: Caller | None) -> RaySession | None:
        """The session, if `who` sees it (another owner's reads as one that does not exist)."""
        where, params = self._visible(who)
        rows = await self._read(f"{SELECT} WHERE id = ?{where}", (session_id, *params))
        return RaySession(*rows[0]) if rows else None

    async def page(self, states: Sequence[str], limit: int, before: int | None, who: Caller | None) -> list[RaySession]:
        """Newest first: at most `limit` sessions in `states` (all when empty) older than cursor `before`."""
        conditions: list[str] = ["1 = 1"]
        params: list[Any] = []
        if states:
            conditions.append(f"state IN ({', '.join('?' for _ in states)})")
            params += list(states)
        if before is not None:
            conditions.append("seq < ?")
            params.append(before)
        where, visible = self._visible(who)
        sql = f"{SELECT} WHERE {' AND '.join(conditions)}{where} ORDER BY seq DESC LIMIT ?"
        return [RaySession(*r) for r in await self._read(sql, (*params, *visible, limit))]

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
    async def workspace_node(self, name: str, owner: str) -> tuple[str, str] | None:
        """(node id, node ip) of the node `owner`'s workspace lives on (names are per owner), if it has been used."""
        rows = await self._read(
            "SELECT node_id, node_ip FROM ray_workspaces WHERE name = ? AND owner = ?", (name, owner)
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    async def place_workspace(self, name: str, owner: str, node_id: str, node_ip: str, now: float) -> None:
        def insert(db: Connection) -> None:
            db.execute(
                "INSERT INTO ray_workspaces (name, owner, node_id, node_ip, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name, owner) DO NOTHING",
                (name, owner, node_id, node_ip, now),
            )

        await self._write(insert)

    async def forget_workspace(self, name: str, owner: str) -> None:
        def delete(db: Connection) -> None:
            db.execute("DELETE FROM ray_workspaces WHERE name = ? AND owner = ?", (name, owner))

        await self._write(delete)

    async def workspaces(self, who: Caller | None) -> list[tuple[str, str, str, str]]:
        """(name, owner, node id, node ip) of the workspaces `who` sees (every owner's for an admin)."""
        where, params = self._visible(who)
        sql = f"SELECT name, owner, node_id, node_ip FROM ray_workspaces WHERE 1 = 1{where} ORDER BY name, owner"
        return [(str(n), str(o), str(node), str(ip)) for n, o, node, ip in await self._read(sql, params)]


def _create(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


async def _open_postgres(url: str, replica: str) -> PostgresDatabase:
    """A small pool of our own and our tables (the local store's migration, with its version row, is its own)."""
    schema = PostgresDatabase.dialect(SCHEMA)
    return await PostgresDatabase.open(
        url, replica, lambda conn: conn.execute(schema), lock=7254, max_size=4, provider=PROVIDER
    )
