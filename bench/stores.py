"""storeEvent throughput: the local store on SQLite against plain WAL inserts, and on PostgreSQL against bare
psycopg inserts (skipped without PostgreSQL server binaries)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import anyio

from bench.common import Rounds, Row, info, owned, ratio_row, skipped


def _store_events(data_dir: Path, count: int, callers: int, state_url: str | None = None) -> float:
    """Events per second that `callers` concurrent storeEvent callers achieve, `count` events in all."""
    from providers.local.config import LocalConfig
    from providers.local.startup import open_runtime

    async def run() -> float:
        async with open_runtime(LocalConfig(), data_dir, state_url=state_url, run_launchers=False) as runtime:
            per_task = count // callers

            async def writer(k: int) -> None:
                for i in range(per_task):
                    await runtime.store_event("bench", {"i": i, "k": k})

            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for k in range(callers):
                    tg.start_soon(writer, k)
            return per_task * callers / (time.perf_counter() - started)

    return anyio.run(run)


def sqlite_events(quick: bool) -> list[Row]:
    n = 500 if quick else 2000
    with owned() as mine:
        db = sqlite3.connect(mine.directory("wal") / "floor.sqlite3", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT, sandbox_id TEXT, type TEXT, data TEXT, timestamp "
            "INTEGER)"
        )
        started = time.perf_counter()
        for i in range(n):
            db.execute(
                "INSERT INTO events (id, sandbox_id, type, data, timestamp) VALUES (?, ?, ?, ?, ?)",
                (f"e{i}", "local", "bench", json.dumps({"i": i}), i),
            )
        floor = n / (time.perf_counter() - started)
        db.close()
        one = _store_events(mine.directory("events1"), n, 1)
        many = _store_events(mine.directory("events32"), n, 32)
    return [
        info("storeEvent (local) events/s, 1 caller (vs plain WAL inserts)", one, "ev/s", floor),
        info("storeEvent (local) events/s, 32 callers (vs plain WAL inserts)", many, "ev/s", floor),
    ]


def postgres_events(quick: bool) -> list[Row]:
    """storeEvent on the PostgreSQL backend against bare psycopg inserts, 32 callers each."""
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    from tests import postgres

    metric = "storeEvent (PostgreSQL) events/s, 32 callers (vs bare psycopg inserts, 32 connections)"
    if postgres.server_binaries() is None:
        return [skipped(metric, "no PostgreSQL server binaries")]
    n, callers, rounds = (640 if quick else 1600), 32, (2 if quick else 5)
    measured = Rounds()
    with owned() as mine:  # outside: it ends what is left once PostgreSQL is removed
        server = postgres.start_postgres()
        try:
            floor_url, ours_url = server.database("bench_floor"), server.database("bench_ours")
            with psycopg.connect(floor_url, autocommit=True) as conn:
                conn.execute(
                    "CREATE TABLE events (seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE, sandbox_id TEXT, type TEXT, "
                    "data TEXT, timestamp BIGINT)"
                )

            def bare(k: int, r: int) -> None:
                with psycopg.connect(floor_url, autocommit=True) as conn:
                    for i in range(n // callers):
                        conn.execute(
                            "INSERT INTO events (id, sandbox_id, type, data, timestamp) VALUES (%s, %s, %s, %s, %s)",
                            (f"e{r}-{k}-{i}", "local", "bench", json.dumps({"i": i}), i),
                        )

            for r in range(rounds):  # interleaved: the host's noise falls on both alike
                started = time.perf_counter()
                with ThreadPoolExecutor(callers) as pool:
                    list(pool.map(bare, range(callers), [r] * callers))
                measured.add("floor", [n / (time.perf_counter() - started)])
                measured.add("ours", [_store_events(mine.directory("pg"), n, callers, state_url=ours_url)])
        finally:
            postgres.remove(server)
    ours, floor = measured.p50("ours"), measured.p50("floor")
    spread = measured.spread("ours", "floor")
    return [ratio_row(metric, ours, floor, "ev/s", 0.7, higher_is_better=True, spread=spread)]
