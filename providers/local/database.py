"""The two databases the local state can live in, behind one small interface the Store uses.

- SQLite (the default): one file in the data directory, WAL. Right for one user and for several server
  processes on one machine.
- PostgreSQL (`RUNTIMES_MCP_STATE_URL=postgresql://…`): shared by replicas on several machines. psycopg 3: its
  DB-API connections run the very same transaction code as sqlite3 (`work(db)` below), its pool keeps
  connections warm, and its async connection receives LISTEN/NOTIFY. Calls run in worker threads, so the
  event loop never waits on the network.

SQL is written once, in the dialect both accept (`?` placeholders are rewritten for psycopg).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio.to_thread

from providers.errors import Unavailable

LOCK_WAIT_MS = 10_000
T = TypeVar("T")
logger = logging.getLogger(__name__)


class StoreError(Unavailable):
    """The state store failed (disk full, read-only, corrupt, unreachable): the call fails, the server carries on.
    `lasting`: the writes that failed may succeed later, as they are (the disk was full, the server unreachable),
    so they are kept for the next commit."""

    kind = "state store unavailable"
    lasting = False


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What transaction code gets: `execute(sql, params)` with `?` placeholders."""

    def execute(self, sql: str, params: tuple[Any, ...] = ...) -> Cursor: ...


Work = Callable[[Connection], T]


class Database(Protocol):
    label: str  # names the store in errors

    async def rows(
        self, sql: str, params: tuple[Any, ...] = (), convert: Callable[[Any], Any] | None = None
    ) -> list[Any]:
        """The rows of a query; with `convert`, each row converted as it is read (and let go at once)."""
        ...

    async def commit(self, work: Work[T], background: bool = False) -> T:
        """Run `work` in one write transaction. `background`: no caller waits for it, so it need not be quick
        to start; it must not hold up the event loop."""
        ...

    def serialize(self, db: Connection, key: str) -> None:
        """Make transactions that pass the same key run one after the other (SQLite: they all do)."""

    def error(self, exc: BaseException) -> StoreError | None:
        """The StoreError for a failure of this database, or None if `exc` is not one."""

    async def used_bytes(self) -> int:
        """Bytes on this machine's disk that retention can lower (0 when the database lives elsewhere)."""

    async def checkpoint(self) -> None: ...

    async def close(self) -> None: ...


# --- SQLite ----------------------------------------------------------------------------------------


class SQLiteDatabase:
    """Two long-lived connections to one WAL file, both used from the event loop. Reads run inline: a WAL
    reader never waits for writers, and our reads are small indexed queries, cheaper than a hop to a thread.
    A commit also runs inline, without waiting for the write lock; only when another process holds that lock
    does a worker thread wait for it, so the loop never blocks on a lock."""

    def __init__(self, path: Path, reader: sqlite3.Connection, writer: sqlite3.Connection) -> None:
        self.path = path
        self.label = path.name
        self.reader = reader
        self.writer = writer

    @classmethod
    def open(cls, path: Path, migrate: Callable[[sqlite3.Connection], None]) -> SQLiteDatabase:
        """Open (and create or migrate) the file; sqlite3 errors pass through for the caller to word."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            writer.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
            writer.execute("PRAGMA journal_mode=WAL")
            writer.execute("PRAGMA synchronous=NORMAL")
            migrate(writer)
            reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            reader.execute("PRAGMA busy_timeout=1000")
            # A small page cache (64 KiB, not 2 MB): a page of large events read once would stay in it, and
            # the system caches the file anyway. Our other reads are small indexed queries.
            reader.execute("PRAGMA cache_size=-64")
        except BaseException:
            writer.close()
            raise
        for suffix in ("", "-wal", "-shm"):
            target = Path(f"{path}{suffix}")
            if target.exists():
                target.chmod(0o600)
        return cls(path, reader, writer)

    async def rows(
        self, sql: str, params: tuple[Any, ...] = (), convert: Callable[[Any], Any] | None = None
    ) -> list[Any]:
        cursor = self.reader.execute(sql, params)
        return cursor.fetchall() if convert is None else [convert(row) for row in cursor]

    async def commit(self, work: Work[T], background: bool = False) -> T:
        if background:  # nobody waits: a worker thread commits while the loop serves calls (sqlite3 lets go of the GIL)
            return await anyio.to_thread.run_sync(_sqlite_transaction, self.writer, work, LOCK_WAIT_MS)
        try:
            return _sqlite_transaction(self.writer, work, busy_ms=0)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        return await anyio.to_thread.run_sync(_sqlite_transaction, self.writer, work, LOCK_WAIT_MS)

    def serialize(self, db: Connection, key: str) -> None:
        pass  # BEGIN IMMEDIATE: one writer at a time

    def error(self, exc: BaseException) -> StoreError | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        cause, where = str(exc), self.path.parent
        if "full" in cause:
            hint = f"Free space on the disk of RUNTIMES_MCP_DATA_DIR ({where}), or lower local.max_data_mb, then retry."
        elif "readonly" in cause or "read-only" in cause:
            hint = f"Make {self.path} writable by the server's user (RUNTIMES_MCP_DATA_DIR), then retry."
        elif "malformed" in cause or "not a database" in cause:
            hint = f"{self.path} is damaged: stop the servers, move it aside (RUNTIMES_MCP_DATA_DIR) and restart."
        else:
            hint = "Retry in a moment; if it persists, check RUNTIMES_MCP_DATA_DIR."
        error = StoreError("local", f"{cause} ({self.label})", hint=hint)
        error.lasting = isinstance(exc, sqlite3.OperationalError)
        return error

    async def used_bytes(self) -> int:
        """Pages in use (free pages are reused, so this is what retention can lower) plus the WAL."""
        pages = (await self.rows("PRAGMA page_count"))[0][0] - (await self.rows("PRAGMA freelist_count"))[0][0]
        size = int(pages * (await self.rows("PRAGMA page_size"))[0][0])
        wal = Path(f"{self.path}-wal")
        return size + (wal.stat().st_size if wal.exists() else 0)

    async def checkpoint(self) -> None:
        """Fold the WAL back into the database file so that it does not keep the space it took. It copies pages
        and truncates a file (milliseconds to tens of them): in a worker thread, not on the event loop. The
        store's write lock keeps our own commits off the writer meanwhile."""
        await anyio.to_thread.run_sync(_checkpoint, self.writer)

    async def close(self) -> None:
        self.reader.close()
        self.writer.close()


def _checkpoint(db: sqlite3.Connection) -> None:
    # Its row is read here: a statement left unfinished (a cursor the caller never reads, kept alive a while)
    # makes the connection's next COMMIT fail with "SQL statements in progress".
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _sqlite_transaction(db: sqlite3.Connection, work: Work[T], busy_ms: int) -> T:
    db.execute(f"PRAGMA busy_timeout={busy_ms}")
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)  # type: ignore[arg-type]
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # a failed COMMIT too: the connection never stays inside a transaction
            db.execute("ROLLBACK")
        raise
    return result


# --- PostgreSQL ------------------------------------------------------------------------------------

EVENTS_CHANNEL = "runtimes_mcp_events"
PG_SCHEMA_VERSION = 3  # 2: call_tasks; 3: principal (tables.POSTGRES_UPGRADE)
PG_TRIGGER = f"""
CREATE OR REPLACE FUNCTION runtimes_mcp_event_stored() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{EVENTS_CHANNEL}', current_setting('application_name') || '|' || NEW.sandbox_id);
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS event_stored ON events;
CREATE TRIGGER event_stored AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION runtimes_mcp_event_stored();
"""


class _PgConnection:
    """A psycopg connection that takes `?` placeholders."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Cursor:
        cursor: Cursor = self._conn.execute(sql.replace("%", "%%").replace("?", "%s"), params)
        return cursor


class PostgresDatabase:
    """A pool of psycopg connections, used from worker threads; `replica` names this process in the
    notifications it causes (application_name), so it can tell its own events from other replicas'."""

    def __init__(self, url: str, pool: Any) -> None:
        self.url = url
        self.label = "PostgreSQL"
        self._pool = pool

    @classmethod
    async def open(
        cls,
        url: str,
        replica: str,
        prepare: Callable[[Any], None],
        *,
        lock: int = 7253,
        max_size: int = 8,
        provider: str = "local",
    ) -> PostgresDatabase:
        """Connect, and `prepare` the tables (create or migrate them) in a transaction that holds the advisory
        `lock`, one process at a time; then open a pool of up to `max_size` connections."""
        import psycopg
        from psycopg_pool import ConnectionPool

        def connect() -> Any:
            with psycopg.connect(url, connect_timeout=5, application_name=replica) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                prepare(conn)
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=max_size,
                kwargs={"application_name": replica, "connect_timeout": 5},
                timeout=2,  # a call waits this long for a connection, then fails with "retry"
                open=False,
                reconnect_timeout=0,  # keep trying: a restarted database is found again
            )
            pool.open(wait=True, timeout=10)
            return pool

        try:
            pool = await anyio.to_thread.run_sync(connect)
        except Exception as exc:  # psycopg.Error, PoolTimeout, a malformed URL
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(provider, f"PostgreSQL at {_safe(url)} cannot be used ({cause})", hint=_PG_HINT) from None
        return cls(url, pool)

    @staticmethod
    def dialect(schema: str) -> str:
        """A SQLite schema in PostgreSQL's words: its types, and BIGSERIAL for an AUTOINCREMENT key."""
        schema = schema.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        return schema.replace(" REAL", " DOUBLE PRECISION").replace(" INTEGER", " BIGINT")

    async def rows(
        self, sql: str, params: tuple[Any, ...] = (), convert: Callable[[Any], Any] | None = None
    ) -> list[Any]:
        def read() -> list[Any]:
            with self._pool.connection() as conn:
                rows = _PgConnection(conn).execute(sql, params).fetchall()  # the client holds the result anyway
                return rows if convert is None else [convert(row) for row in rows]

        return await anyio.to_thread.run_sync(read)

    async def commit(self, work: Work[T], background: bool = False) -> T:
        def run() -> T:
            with self._pool.connection() as conn, conn.transaction():
                return work(_PgConnection(conn))

        return await anyio.to_thread.run_sync(run)

    def serialize(self, db: Connection, key: str) -> None:
        db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))

    def error(self, exc: BaseException) -> StoreError | None:
        import psycopg
        from psycopg_pool import PoolTimeout

        if not isinstance(exc, psycopg.Error | PoolTimeout):
            return None
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        error = StoreError("local", f"PostgreSQL at {_safe(self.url)}: {cause}", hint=_PG_HINT)
        error.lasting = isinstance(exc, psycopg.OperationalError | PoolTimeout)
        return error

    async def used_bytes(self) -> int:
        return 0  # the database's own disk is the database server's business

    async def checkpoint(self) -> None:
        pass

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._pool.close)


_PG_HINT = "Retry in a moment; if it persists, check that PostgreSQL is up and RUNTIMES_MCP_STATE_URL is right."


def _safe(url: str) -> str:
    """The URL without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def pg_migrate(conn: Any, schema: str) -> None:
    """The Store's `prepare`: create or migrate its tables (`schema`, in PostgreSQL's words)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    found = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    if found is not None and found >= PG_SCHEMA_VERSION:
        return
    conn.execute(schema + PG_TRIGGER)
    conn.execute("DELETE FROM schema_version")
    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (PG_SCHEMA_VERSION,))


async def listen_for_events(url: str, replica: str, on_event: Callable[[str], Any]) -> None:
    """Call `on_event(sandbox_id)` for every event another replica stores, until cancelled; reconnects with
    backoff when the database goes away (events stored meanwhile are in the table; only the nudge is lost)."""
    import psycopg

    from providers.backoff import keep_running

    async def listen_once() -> bool:
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, application_name=f"{replica}-listen", connect_timeout=5
            ) as conn:
                await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                async for notification in conn.notifies():
                    origin, _, sandbox_id = notification.payload.partition("|")
                    if origin != replica:
                        await on_event(sandbox_id)
        except psycopg.Error as exc:
            logger.warning("runtimes-mcp: event notifications from PostgreSQL paused (%s); reconnecting", exc)
            return False
        return True

    await keep_running(listen_once, start_s=0.5, max_s=10.0, running=lambda: True)
