"""MCP tasks that are remote calls, run in one server process, yet known to every worker and replica: recorded in
the shared state (SQLite in the data directory for `--workers`, PostgreSQL for replicas) with their result, a
tasks/cancel sent to any of them reaches the process running the call, and a task whose process died reads
`failed`, saying so."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.load_http import free_port
from tests.fakes import FakeAPI, Reply, fake_api
from tests.test_http import http_server
from tests.test_tasks_e2e import Wire
from tests.test_workers import alive, health_pid, start_workers, wait_for, worker_pids

QUICK = {"provider": "xano", "project_id": "quick", "doc": "job x {}"}
SLOW = {"provider": "xano", "project_id": "slow", "doc": "job x {}"}
ANSWER = {"session_id": "s-1", "state": "complete", "response": "hi"}


@pytest.fixture
def xano(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    """A Xano whose exec answers after 1.5 s (project `quick`) or not within the test (`slow`)."""
    with fake_api() as api:
        api.routes[("POST", "/xano/project/quick/run/exec")] = Reply(body=ANSWER, delay_s=1.5)
        api.routes[("POST", "/xano/project/slow/run/exec")] = Reply(body=ANSWER, delay_s=60)
        monkeypatch.setenv("XANO_ACCESS_TOKEN", "tok-xano")
        monkeypatch.setenv("XANO_RUN_BASE_URL", api.url("/xano"))
        yield api


def statuses(wire: Wire, task_id: str, times: int) -> list[Any]:
    """tasks/get `times` times, each on a new connection (the kernel spreads them over the workers)."""
    return [wire.task("tasks/get", task_id).get("result", {}).get("status", "unknown") for _ in range(times)]


def until(wire: Wire, task_id: str, status: str, within_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        task: dict[str, Any] = wire.task("tasks/get", task_id)["result"]
        if task["status"] == status:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} is not {status} after {within_s} s: {task}")


def test_every_worker_answers_for_a_remote_call_made_as_a_task(xano: FakeAPI, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    parent = start_workers(port, "--stateless", "--json-response", "--workers", "2")
    try:
        wait_for(lambda: len(worker_pids(parent.pid)) == 2 and health_pid(base) is not None)
        wire = Wire(base)
        created = wire.call("execRun", QUICK)
        assert created["resultType"] == "task", created
        seen = statuses(wire, created["taskId"], 10)
        assert set(seen) <= {"working", "completed"}, seen  # never "no task": every worker knows it
        done = until(wire, created["taskId"], "completed")
        assert done["result"]["structuredContent"]["session_id"] == "s-1"
        assert set(statuses(wire, created["taskId"], 10)) == {"completed"}  # and its result

        # Its worker dies: every worker (the new ones too) says so, instead of not knowing the task.
        slow = wire.call("execRun", SLOW)["taskId"]
        assert set(statuses(wire, slow, 6)) == {"working"}
        workers = worker_pids(parent.pid)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(alive(pid) for pid in workers))
        wait_for(lambda: len(worker_pids(parent.pid)) == 2 and health_pid(base) is not None)
        failed = until(wire, slow, "failed")
        assert "stopped before the call ended" in failed["statusMessage"] and failed["error"]["code"] == -32603
        assert set(statuses(wire, slow, 6)) == {"failed"}
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(60)


def test_replicas_on_postgresql_answer_for_each_others_tasks(xano: FakeAPI, state_url: str, tmp_path: Path) -> None:
    one = {"RUNTIMES_MCP_DATA_DIR": str(tmp_path / "one")}
    two = {"RUNTIMES_MCP_DATA_DIR": str(tmp_path / "two")}
    with (
        http_server("--stateless", env=one) as (first, first_process),
        http_server("--stateless", env=two) as (
            second,
            _,
        ),
    ):
        a, b = Wire(first), Wire(second)
        quick = a.call("execRun", QUICK)["taskId"]
        assert b.task("tasks/get", quick)["result"]["status"] == "working"
        done = until(b, quick, "completed")
        assert done["result"]["structuredContent"]["response"] == "hi"

        # Cancelled through the other replica: the one running the call cancels it.
        cancelled = a.call("execRun", SLOW)["taskId"]
        assert b.task("tasks/cancel", cancelled)["result"]["resultType"] == "complete"
        assert until(a, cancelled, "cancelled", within_s=15)["statusMessage"] == "cancelled by the client"
        assert b.task("tasks/get", cancelled)["result"]["status"] == "cancelled"

        # The replica running a call dies: the other says so.
        orphan = a.call("execRun", SLOW)["taskId"]
        first_process.kill()
        first_process.wait(10)
        failed = until(b, orphan, "failed", within_s=10)
        assert "stopped before the call ended" in failed["statusMessage"]
        assert b.task("tasks/get", "task_nope")["error"]["code"] == -32602  # unknown stays unknown


async def test_a_version_5_database_gains_the_call_tasks_table(tmp_path: Path) -> None:
    import sqlite3

    from providers.local.store import Store
    from providers.local.tables import SCHEMA

    path = tmp_path / "local.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(SCHEMA.split("CREATE TABLE IF NOT EXISTS call_tasks")[0] + "PRAGMA user_version = 5;")
    old.close()
    store = await Store.open(path)
    try:
        assert await store.beat_call_tasks("nobody", 1.0) == []  # the table is there
    finally:
        await store.close()


async def test_a_version_1_postgresql_schema_gains_the_call_tasks_table(state_url: str) -> None:
    import psycopg

    from providers.local.database import PG_TRIGGER
    from providers.local.store import Store
    from providers.local.tables import postgres_schema

    with psycopg.connect(state_url, autocommit=True) as conn:
        conn.execute(postgres_schema().split("CREATE TABLE IF NOT EXISTS call_tasks")[0] + PG_TRIGGER)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)")
    store = await Store.open_url(state_url, "replica-test")
    try:
        assert await store.beat_call_tasks("nobody", 1.0) == []
    finally:
        await store.close()
