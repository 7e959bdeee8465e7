"""The shared state backend on a real PostgreSQL server: replicas (server processes with their own data
directories, as on two machines) share events, idempotency keys, routine runs and session records; events
stored on one reach subscribers of another; a database restart is survived without a server restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ResourceUpdatedNotification

from server.config import ConfigError, load_settings
from tests.conftest import connect, error_text, structured
from tests.test_http import TOKEN, http_server

ROUTINE_CONFIG = """
[local.routines.slow-echo]
command = "sleep 1; cat"
"""


def replica(tmp_path: Path, name: str, state_url: str, config: Path | None = None, stateless: bool = True) -> Any:
    """An HTTP server process with a data directory of its own on the shared database (stateless, as behind a
    load balancer, unless it must push notifications on a session's stream)."""
    env = {
        "RUNTIMES_MCP_DATA_DIR": str(tmp_path / name),
        "RUNTIMES_MCP_STATE_URL": state_url,
        "RUNTIMES_MCP_TOOLSETS": "all",
    }
    args = (("--stateless", "--json-response") if stateless else ()) + (("--config", str(config)) if config else ())
    return http_server(*args, env=env)


def client(base: str, **options: Any) -> Client:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = streamable_http_client(f"{base}/mcp", http_client=httpx2.AsyncClient(headers=headers, timeout=30))
    return Client(transport, **options)


def table(url: str, sql: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


async def test_the_local_state_lives_in_postgres(state_url: str) -> None:
    async with connect() as session:
        stored = structured(await session.call_tool("storeEvent", {"type": "build.done", "data": {"n": 1}}))
        run = structured(await session.call_tool("execRun", {"command": "echo hi"}))
    assert table(state_url, "SELECT id, type, data FROM events WHERE type = 'build.done'") == [
        (stored["event_id"], "build.done", '{"n":1}')
    ]
    [(state, exit_code, place)] = table(
        state_url, f"SELECT state, exit_code, place FROM sessions WHERE id = '{run['session_id']}'"
    )
    assert (state, exit_code) == ("completed", 0) and place.endswith(str(load_settings().data_dir.resolve()))


async def test_replicas_share_events_and_subscribers_hear_of_the_other_replicas_events(
    state_url: str, tmp_path: Path
) -> None:
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    with replica(tmp_path, "a", state_url) as (a, _), replica(tmp_path, "b", state_url, stateless=False) as (b, _):
        async with client(b, mode="legacy", message_handler=on_message) as on_b:
            await on_b.subscribe_resource("events://shared")
            async with client(a) as on_a:
                stored = structured(
                    await on_a.call_tool("storeEvent", {"type": "t", "data": {}, "sandbox_id": "shared"})
                )
            with anyio.fail_after(10):
                while "events://shared" not in updates:
                    await anyio.sleep(0.05)
            seen = structured(await on_b.call_tool("getEvents", {"sandbox_id": "shared"}, read_timeout_seconds=None))
    assert [e["id"] for e in seen["events"]] == [stored["event_id"]]


async def test_one_idempotency_key_gives_one_run_across_replicas(state_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(ROUTINE_CONFIG)
    arguments = {"routine": "slow-echo", "message": "once", "idempotency_key": "k-1", "wait_s": 0}
    run_ids: list[str] = []
    with replica(tmp_path, "a", state_url, config) as (a, _), replica(tmp_path, "b", state_url, config) as (b, _):

        async def invoke(base: str) -> None:
            async with client(base) as session:
                run_ids.append(structured(await session.call_tool("invokeRoutine", arguments))["run_id"])

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(invoke, a if i % 2 else b)
    assert len(run_ids) == 8 and len(set(run_ids)) == 1
    assert table(state_url, "SELECT count(*) FROM routine_runs") == [(1,)]


async def test_a_session_on_another_machine_is_read_from_the_record_and_stopped_where_it_runs(
    state_url: str, tmp_path: Path
) -> None:
    with replica(tmp_path, "a", state_url) as (a, _), replica(tmp_path, "b", state_url) as (b, _):
        async with client(a) as on_a, client(b) as on_b:
            started = structured(await on_a.call_tool("execRun", {"command": "sleep 30", "wait": False}))
            session_id = started["session_id"]
            listed = structured(await on_b.call_tool("listSessions", {"status": "running"}))
            seen = structured(await on_b.call_tool("getSession", {"session_id": session_id}))
            refused = error_text(await on_b.call_tool("stopSession", {"session_id": session_id}))
            stopped = structured(await on_a.call_tool("stopSession", {"session_id": session_id}))
            after = structured(await on_b.call_tool("getSession", {"session_id": session_id}))
    assert session_id in [s["id"] for s in listed["sessions"]]
    assert seen["state"] == "running" and str(tmp_path / "a") in (seen.get("message") or "")
    assert "runs on" in refused and str(tmp_path / "a") in refused and "stopSession" in refused
    assert stopped["stopped"] is True
    assert after["state"] == "stopped"


async def test_a_database_restart_under_load_fails_calls_clearly_then_recovers_losing_nothing_acknowledged(
    state_url: str, postgres_server: Any
) -> None:
    acknowledged: list[str] = []
    errors: list[str] = []
    async with connect() as session:

        async def store(n: int) -> None:
            result = await session.call_tool("storeEvent", {"type": "load", "data": {"n": n}})
            if result.is_error:
                errors.append(error_text(result))
            else:
                acknowledged.append(structured(result)["event_id"])

        async def keep_storing(worker: int, stop: anyio.Event) -> None:
            n = 0
            while not stop.is_set():
                await store(worker * 100_000 + n)
                n += 1

        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            for worker in range(4):  # 4 callers storing all along
                tg.start_soon(keep_storing, worker, stop)
            await anyio.sleep(0.5)
            before_outage = len(acknowledged)
            await anyio.to_thread.run_sync(postgres_server.stop)
            await anyio.sleep(1)
            await anyio.to_thread.run_sync(postgres_server.start)
            with anyio.fail_after(30):  # recovers by itself: no server restart
                while len(acknowledged) < before_outage + 50:
                    await anyio.sleep(0.05)
            stop.set()
    assert before_outage > 0 and errors, "calls before the outage succeed, calls during it fail"
    assert all("state store unavailable" in e and "PostgreSQL" in e and "Retry" in e for e in errors), errors[:2]
    stored = {row[0] for row in table(state_url, "SELECT id FROM events WHERE type = 'load'")}
    assert set(acknowledged) <= stored, f"{len(set(acknowledged) - stored)} acknowledged events are missing"


def test_a_state_url_that_is_not_postgres_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_STATE_URL", "mysql://db/state")
    with pytest.raises(ConfigError, match=r"RUNTIMES_MCP_STATE_URL.*postgresql://"):
        load_settings()


def test_an_unreachable_database_stops_start_up_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    monkeypatch.setenv("RUNTIMES_MCP_STATE_URL", "postgresql://nobody:hunter2@127.0.0.1:9/state")
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "call", "listSessions"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "RUNTIMES_MCP_STATE_URL" in result.stderr
    assert "hunter2" not in result.stderr
