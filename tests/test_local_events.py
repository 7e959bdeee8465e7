"""Local events: the ComputeSDK shape in SQLite, concurrent writers, lifecycle events, subscriptions."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import ResourceUpdatedNotification

from server import watchers
from server.app import create_server
from server.config import load_settings
from server.state import AppState
from tests.conftest import connect, error_text, structured


@pytest.fixture(autouse=True)
def events_toolset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "events")


async def test_store_event_returns_the_computesdk_shape_and_get_events_filters() -> None:
    before = int(time.time() * 1000)
    async with connect() as client:
        stored = structured(
            await client.call_tool("storeEvent", {"type": "build.done", "data": {"ok": True}, "sandbox_id": "ci"})
        )
        await client.call_tool("storeEvent", {"type": "build.started", "data": {}, "sandbox_id": "ci"})
        await client.call_tool("storeEvent", {"type": "build.done", "data": {"ok": False}, "sandbox_id": "other"})
        done = structured(await client.call_tool("getEvents", {"sandbox_id": "ci", "type": "build.done"}))
        everything = structured(await client.call_tool("getEvents", {"sandbox_id": "ci"}))
        later = structured(await client.call_tool("getEvents", {"sandbox_id": "ci", "since": 4_102_444_800_000}))
        bad_limit = error_text(await client.call_tool("getEvents", {"limit": 5000}))
        empty_type = error_text(await client.call_tool("storeEvent", {"type": " ", "data": {}}))
    assert set(stored) == {"provider", "event_id", "sandbox_id", "type", "timestamp"}
    assert stored["sandbox_id"] == "ci" and stored["type"] == "build.done" and stored["timestamp"] >= before
    assert done["count"] == 1 and done["events"][0]["data"] == {"ok": True}
    assert done["events"][0]["id"] == stored["event_id"]
    assert [e["type"] for e in everything["events"]] == ["build.done", "build.started"]
    assert later["count"] == 0
    assert "less than or equal to 1000" in bad_limit
    assert "type is empty" in empty_type


async def test_a_page_that_does_not_hold_every_match_says_how_to_read_on() -> None:
    async with connect() as client:
        for n in range(5):
            await client.call_tool("storeEvent", {"type": "step", "data": {"n": n}, "sandbox_id": "pages"})
        newest = structured(await client.call_tool("getEvents", {"sandbox_id": "pages", "limit": 2}))
        first = structured(await client.call_tool("getEvents", {"sandbox_id": "pages", "since": 0, "limit": 3}))
        rest = structured(
            await client.call_tool("getEvents", {"sandbox_id": "pages", "since": first["events"][-1]["timestamp"]})
        )
        every = structured(await client.call_tool("getEvents", {"sandbox_id": "pages", "limit": 5}))
    assert [e["data"]["n"] for e in newest["events"]] == [3, 4] and "since=0" in newest["message"], newest
    assert [e["data"]["n"] for e in first["events"]] == [0, 1, 2], first
    assert f"since={first['events'][-1]['timestamp']}" in first["message"], first
    assert {e["data"]["n"] for e in rest["events"]} <= {3, 4} and "message" not in rest, rest
    assert every["count"] == 5 and "message" not in every and not every.get("truncated"), every


async def test_default_sandbox_is_local() -> None:
    async with connect() as client:
        stored = structured(await client.call_tool("storeEvent", {"type": "note", "data": {"n": 1}}))
        notes = structured(await client.call_tool("getEvents", {"type": "note"}))
    assert stored["sandbox_id"] == "local" and notes["sandbox_id"] == "local" and notes["count"] == 1


async def test_a_thousand_concurrent_store_event_calls_all_land() -> None:
    async with connect() as client:

        async def store(i: int) -> None:
            structured(await client.call_tool("storeEvent", {"type": "bulk", "data": {"i": i}, "sandbox_id": "load"}))

        async with anyio.create_task_group() as tg:
            for i in range(1000):
                tg.start_soon(store, i)
        landed = structured(await client.call_tool("getEvents", {"sandbox_id": "load", "limit": 1000}))
    assert landed["count"] == 1000
    assert sorted(e["data"]["i"] for e in landed["events"]) == list(range(1000))
    assert len({e["id"] for e in landed["events"]}) == 1000


async def test_events_and_sessions_survive_a_restart() -> None:
    async with connect() as client:
        stored = structured(await client.call_tool("storeEvent", {"type": "kept", "data": {"v": 1}}))
        run = structured(await client.call_tool("execRun", {"command": "echo persisted"}))
    async with connect() as client:
        kept = structured(await client.call_tool("getEvents", {"type": "kept"}))
        sessions = structured(await client.call_tool("listSessions", {}))
    assert [e["id"] for e in kept["events"]] == [stored["event_id"]]
    assert sessions["sessions"][0]["id"] == run["session_id"]
    assert sessions["sessions"][0]["status"] == "completed"


async def test_the_runtime_records_session_lifecycle_events() -> None:
    async with connect() as client:
        ok = structured(await client.call_tool("execRun", {"command": "true"}))
        bad = structured(await client.call_tool("execRun", {"command": "false"}))
        events = structured(await client.call_tool("getEvents", {"sandbox_id": "local"}))
    by_type: dict[str, list[str]] = {}
    for event in events["events"]:
        by_type.setdefault(event["type"], []).append(event["data"]["session_id"])
    assert by_type["session.started"] == [ok["session_id"], bad["session_id"]]
    assert by_type["session.completed"] == [ok["session_id"]]
    assert by_type["session.failed"] == [bad["session_id"]]


async def test_events_resource_reads_recent_events() -> None:
    async with connect() as client:
        await client.call_tool("storeEvent", {"type": "seen", "data": {}, "sandbox_id": "res"})
        read = await client.read_resource("events://res")
    body = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert body["sandbox_id"] == "res" and [e["type"] for e in body["events"]] == ["seen"]


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_legacy_subscribers_are_told_when_an_event_arrives() -> None:
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    async with connect(mode="legacy", message_handler=on_message) as client:
        await client.subscribe_resource("events://watched")
        await client.call_tool("storeEvent", {"type": "x", "data": {}, "sandbox_id": "watched"})
        await client.call_tool("storeEvent", {"type": "x", "data": {}, "sandbox_id": "unwatched"})
        await client.unsubscribe_resource("events://watched")
        await client.call_tool("storeEvent", {"type": "x", "data": {}, "sandbox_id": "watched"})
        # Notifications arrive in order: once the marker's has come, an update for the above would have too.
        await client.subscribe_resource("events://marker")
        await client.call_tool("storeEvent", {"type": "x", "data": {}, "sandbox_id": "marker"})
        with anyio.fail_after(3):
            while "events://marker" not in updates:
                await anyio.sleep(0.02)
    assert updates == ["events://watched", "events://marker"]


async def test_listen_subscribers_are_told_when_an_event_arrives() -> None:
    async with connect() as client, client.listen(resource_subscriptions=["events://live"]) as subscription:
        await client.call_tool("storeEvent", {"type": "x", "data": {}, "sandbox_id": "live"})
        with anyio.fail_after(3):
            event = await subscription.__aiter__().__anext__()
    assert getattr(event, "uri", None) == "events://live"


async def test_large_events_are_refused_and_pages_are_cut_by_size_with_a_way_on() -> None:
    from providers.local.events import MAX_EVENT_CHARS, MAX_PAGE_CHARS

    big = "x" * (60 * 1024)
    async with connect(mode="legacy") as client:
        too_big = error_text(
            await client.call_tool("storeEvent", {"type": "t", "data": {"b": "y" * MAX_EVENT_CHARS}, "sandbox_id": "s"})
        )
        stored = [
            structured(
                await client.call_tool("storeEvent", {"type": "t", "data": {"n": n, "b": big}, "sandbox_id": "s"})
            )
            for n in range(12)
        ]
        newest = structured(await client.call_tool("getEvents", {"sandbox_id": "s"}))
        first = structured(await client.call_tool("getEvents", {"sandbox_id": "s", "since": 0}))
    assert "an event holds at most" in too_big and "reference" in too_big
    assert newest["truncated"] and "smaller limit" in newest["message"]
    assert 1 < newest["count"] < 12 and newest["count"] * len(big) <= MAX_PAGE_CHARS  # never over the cap
    assert [e["data"]["n"] for e in newest["events"]] == list(range(12 - newest["count"], 12))  # the newest, in order
    assert [e["data"]["n"] for e in first["events"]] == list(range(first["count"]))  # from the oldest on
    assert first["truncated"] and f"since={first['events'][-1]['timestamp']}" in first["message"]
    assert len(stored) == 12


@asynccontextmanager
async def shared_server() -> AsyncIterator[tuple[MCPServer[AppState], AppState]]:
    """One server whose state outlives its connections, as over HTTP (each test's client connects to it)."""
    settings = load_settings()
    async with AppState.open(settings, services=False) as state:
        yield create_server(settings, state, services=False), state


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_a_subscription_ends_with_its_connection_or_its_unsubscribe_and_keeps_nothing() -> None:
    async with shared_server() as (server, state):
        async with Client(server, mode="legacy") as client:
            for n in range(3):
                await client.subscribe_resource(f"events://kept-{n}")
            await client.unsubscribe_resource("events://kept-0")
            assert [sorted(uris) for _, uris in state.watchers._watching.values()] == [
                ["events://kept-1", "events://kept-2"]
            ]
        assert state.watchers._watching == {}  # the connection ended


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_a_uri_too_long_or_one_subscription_too_many_is_refused_with_what_to_do() -> None:
    async with shared_server() as (server, _), Client(server, mode="legacy") as client:
        with pytest.raises(MCPError) as too_long:
            await client.subscribe_resource("events://" + "x" * 3_000_000)
        for n in range(watchers.MAX_SUBSCRIPTIONS_PER_CONNECTION):
            await client.subscribe_resource(f"events://box-{n}")
        await client.subscribe_resource("events://box-0")  # again: not one more
        with pytest.raises(MCPError) as too_many:
            await client.subscribe_resource("events://one-more")
        await client.unsubscribe_resource("events://box-0")
        await client.subscribe_resource("events://one-more")
    assert f"more than this server watches ({watchers.MAX_URI_CHARS})" in str(too_long.value)
    assert f"the most it may ({watchers.MAX_SUBSCRIPTIONS_PER_CONNECTION})" in str(too_many.value)
    assert "Next: unsubscribe" in str(too_many.value) and "Next:" in str(too_long.value)


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_every_connection_watching_a_uri_is_told_however_many_there_are() -> None:
    """300 connections subscribe to one URI: none is dropped to make room for the later ones."""
    told: set[int] = set()

    def on_message(n: int) -> Callable[[Any], Awaitable[None]]:
        async def handle(message: Any) -> None:
            if isinstance(message, ResourceUpdatedNotification):
                told.add(n)

        return handle

    async with shared_server() as (server, _), AsyncExitStack() as clients:
        for n in range(300):
            client = await clients.enter_async_context(Client(server, mode="legacy", message_handler=on_message(n)))
            await client.subscribe_resource("events://crowd")
        await client.call_tool("storeEvent", {"type": "x", "data": {}, "sandbox_id": "crowd"})
        deadline = time.monotonic() + 10
        while len(told) < 300 and time.monotonic() < deadline:
            await anyio.sleep(0.02)
    assert told == set(range(300)), f"not told: {sorted(set(range(300)) - told)}"
