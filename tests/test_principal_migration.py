"""Existing state gains owners: a SQLite database of schema 6 and a PostgreSQL database of schema 2 are migrated at
start (a `principal` column in every table, routine runs' idempotency keys per principal), and what they held
belongs to the owner the operator names (RUNTIMES_MCP_OAUTH_EARLIER_OWNER, `local` by default)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from providers.local.store import Store
from providers.local.tables import SCHEMA, SCHEMA_VERSION, RunRow
from providers.services import READ, RUN, Caller

ALICE = "https://idp.test#alice"
BOB = "https://idp.test#bob"


def schema_6() -> str:
    """SCHEMA as it was before principals (version 6; PostgreSQL's version 2 is the same tables)."""
    old = SCHEMA.replace(",\n    principal TEXT", "")
    new_key = (
        "    created_at REAL NOT NULL\n);\n"
        "CREATE UNIQUE INDEX IF NOT EXISTS routine_runs_by_key ON routine_runs(routine, idempotency_key, principal);"
    )
    assert new_key in old
    return old.replace(new_key, "    created_at REAL NOT NULL,\n    UNIQUE (routine, idempotency_key)\n);")


def postgres_schema_2() -> str:
    old = schema_6().replace("seq INTEGER PRIMARY KEY AUTOINCREMENT", "seq BIGSERIAL PRIMARY KEY")
    old = old.replace(" REAL", " DOUBLE PRECISION").replace(" INTEGER", " BIGINT")
    return old.replace("sessions (\n", "sessions (\n    rowid BIGSERIAL UNIQUE,\n", 1)


LEGACY = [
    "INSERT INTO sessions (id, state, command, cwd, origin, started_at, ended_at) "
    "VALUES ('ses_old', 'completed', 'echo old', '/', 'exec', 1, 2)",
    "INSERT INTO routine_runs (id, routine, idempotency_key, message_digest, session_id, created_at) "
    "VALUES ('run_old', 'echo', 'k1', 'd', 'ses_old', 1)",
    "INSERT INTO events (id, sandbox_id, type, data, timestamp) VALUES ('evt_old', 'box', 'note', '{}', 1)",
    "INSERT INTO tasks (id, follow, ref, session_id, created_at) VALUES ('task_old', 'get_session', 'ses_old', "
    "'ses_old', 1)",
]


async def who_sees_what(store: Store) -> dict[str, list[str]]:
    """For alice, bob and the local owner (none of them admin): which of the old records each sees."""
    seen: dict[str, list[str]] = {}
    for owner in ("local", ALICE, BOB):
        who = Caller(owner, frozenset({READ, RUN}))
        found = []
        if await store.get_session("ses_old", who):
            found.append("session")
        if await store.get_run("run_old", who):
            found.append("run")
        if (await store.query_events("box", None, None, 10, 100_000, who))[0]:
            found.append("event")
        if await store.get_task("task_old", who):
            found.append("task")
        seen[owner] = found
    return seen


async def keys_are_per_principal(store: Store, earlier: str) -> None:
    """The old run holds key k1 for its owner; another owner's k1 is a key of its own."""
    now = time.time()
    holder, _ = await store.claim_run(RunRow("run_e", "echo", "k1", "d", None, None, now, earlier), 60)
    assert holder is not None and holder.id == "run_old"
    other = BOB if earlier != BOB else ALICE
    holder, _ = await store.claim_run(RunRow("run_o", "echo", "k1", "d", None, None, now, other), 60)
    assert holder is None
    holder, _ = await store.claim_run(RunRow("run_o2", "echo", "k1", "d", None, None, now, other), 60)
    assert holder is not None and holder.id == "run_o"


@pytest.mark.parametrize("earlier", ["local", ALICE])
async def test_a_schema_6_sqlite_database_gains_principals(tmp_path: Path, earlier: str) -> None:
    path = tmp_path / "local.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(schema_6() + ";".join(LEGACY) + ";PRAGMA user_version = 6;")
    old.close()
    store = await Store.open(path)
    store.earlier_owner = earlier
    try:
        assert (await store.db.rows("PRAGMA user_version")) == [(SCHEMA_VERSION,)]
        for table in ("sessions", "routine_runs", "events", "tasks", "call_tasks"):
            assert "principal" in {r[1] for r in await store.db.rows(f"PRAGMA table_info({table})")}, table
        seen = await who_sees_what(store)
        assert seen[earlier] == ["session", "run", "event", "task"]
        assert all(found == [] for owner, found in seen.items() if owner != earlier)
        await keys_are_per_principal(store, earlier)
    finally:
        await store.close()


async def test_a_schema_2_postgres_database_gains_principals(state_url: str) -> None:
    with psycopg.connect(state_url) as conn:
        conn.execute(postgres_schema_2())
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (2)")
        for statement in LEGACY:
            conn.execute(statement)
    store = await Store.open_url(state_url, "replica-test")
    store.earlier_owner = ALICE
    try:
        assert await rows(state_url, "SELECT version FROM schema_version") == [(3,)]
        columns = await rows(
            state_url,
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'principal'"
            " AND table_schema = 'public'",
        )
        assert {c[0] for c in columns} == {"sessions", "routine_runs", "events", "tasks", "call_tasks"}
        unique = await rows(
            state_url, "SELECT conname FROM pg_constraint WHERE conrelid = 'routine_runs'::regclass AND contype = 'u'"
        )
        assert unique == []  # the key (routine, idempotency_key) is gone; routine_runs_by_key has the principal
        seen = await who_sees_what(store)
        assert seen == {"local": [], ALICE: ["session", "run", "event", "task"], BOB: []}
        await keys_are_per_principal(store, ALICE)
    finally:
        await store.close()
    again = await Store.open_url(state_url, "replica-test-2")  # a second start finds it migrated
    await again.close()


async def rows(url: str, sql: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()
