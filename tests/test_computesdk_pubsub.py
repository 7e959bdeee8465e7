"""ComputeSDK live events against a fake pub/sub TCP server: subscribe, events, -ERR, ping, reconnect."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import SocketStream

from providers.computesdk.client import EventStream
from providers.models import Event


class FakePubSub:
    """Answers each connection with a scripted behaviour and records what the client sent."""

    def __init__(self, behaviour: Callable[[SocketStream, int, list[str]], object]) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.lines: list[list[str]] = []

    async def handle(self, stream: SocketStream) -> None:
        self.connections += 1
        received: list[str] = []
        self.lines.append(received)
        async with stream:
            await self.behaviour(stream, self.connections, received)  # type: ignore[misc]


async def read_line(stream: SocketStream, received: list[str]) -> str:
    data = b""
    while not data.endswith(b"\r\n"):
        data += await stream.receive(1)
    line = data.decode()[:-2]
    received.append(line)
    return line


@asynccontextmanager
async def serve(fake: FakePubSub) -> AsyncIterator[int]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, fake.handle)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


def event_line(n: int) -> bytes:
    return (
        json.dumps(
            {"id": f"ev{n}", "sandboxId": "sbx", "workspaceId": 1, "type": "tick", "data": {"n": n}, "timestamp": n}
        ).encode()
        + b"\n"
    )


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    with anyio.fail_after(within_s):
        while not condition():
            await anyio.sleep(0.01)


async def test_subscribe_receive_events_and_reconnect_after_a_drop() -> None:
    async def behaviour(stream: SocketStream, n: int, received: list[str]) -> None:
        await read_line(stream, received)
        await stream.send(b"+OK\r\n")
        await stream.send(event_line(n))
        if n == 1:
            return  # drop the connection: the client must come back
        await anyio.sleep(10)

    fake = FakePubSub(behaviour)
    seen: list[Event] = []

    async def on_event(event: Event) -> None:
        seen.append(event)

    async with serve(fake) as port, anyio.create_task_group() as tg:
        stream = EventStream("127.0.0.1", port, "tok-SECRET", "sbx", on_event, backoff_start_s=0.05)
        tg.start_soon(stream.run)
        await until(lambda: len(seen) == 2)
        assert stream.state == "connected" and stream.connects == 2
        stream.stop()
        tg.cancel_scope.cancel()
    assert fake.lines[0][0] == "SUBSCRIBE sbx tok-SECRET"
    assert [e.data["n"] for e in seen] == [1, 2]
    assert seen[0].sandbox_id == "sbx" and seen[0].workspace_id == 1
    assert [e.id for e in stream.recent] == ["ev1", "ev2"]


async def test_err_is_reported_and_retried_with_backoff() -> None:
    async def behaviour(stream: SocketStream, n: int, received: list[str]) -> None:
        await read_line(stream, received)
        await stream.send(b"-ERR invalid token\r\n")

    fake = FakePubSub(behaviour)

    async def ignore(_: Event) -> None:
        pass

    async with serve(fake) as port, anyio.create_task_group() as tg:
        stream = EventStream("127.0.0.1", port, "bad", "sbx", ignore, backoff_start_s=0.05, backoff_max_s=0.1)
        tg.start_soon(stream.run)
        await until(lambda: fake.connections >= 3)
        assert stream.last_error == "the server refused: invalid token"
        stream.stop()
        tg.cancel_scope.cancel()


async def test_keepalive_pings_and_answers_server_pings() -> None:
    async def behaviour(stream: SocketStream, n: int, received: list[str]) -> None:
        await read_line(stream, received)
        await stream.send(b"+OK\r\nPING\r\n")
        await read_line(stream, received)  # our PONG
        await read_line(stream, received)  # the client's own PING
        await stream.send(b"+PONG\r\n")
        await anyio.sleep(10)

    fake = FakePubSub(behaviour)

    async def ignore(_: Event) -> None:
        pass

    async with serve(fake) as port, anyio.create_task_group() as tg:
        stream = EventStream("127.0.0.1", port, "tok", "sbx", ignore, ping_interval_s=0.1)
        tg.start_soon(stream.run)
        await until(lambda: bool(fake.lines) and len(fake.lines[0]) >= 3)
        stream.stop()
        tg.cancel_scope.cancel()
    assert fake.lines[0] == ["SUBSCRIBE sbx tok", "PONG", "PING"]


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_live_events_resource_follows_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp.types import ResourceUpdatedNotification

    from tests.conftest import connect

    async def behaviour(stream: SocketStream, n: int, received: list[str]) -> None:
        await read_line(stream, received)
        await stream.send(b"+OK\r\n")
        await anyio.sleep(0.3)
        await stream.send(event_line(7))
        await anyio.sleep(10)

    fake = FakePubSub(behaviour)
    updates: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    async with serve(fake) as port:
        monkeypatch.setenv("COMPUTESDK_ACCESS_TOKEN", "tok-live")
        monkeypatch.setenv("COMPUTESDK_PUBSUB_HOST", "127.0.0.1")
        monkeypatch.setenv("COMPUTESDK_PUBSUB_PORT", str(port))
        async with connect(mode="legacy", message_handler=on_message) as client:
            await client.subscribe_resource("events://computesdk/sbx")
            first = json.loads((await client.read_resource("events://computesdk/sbx")).contents[0].text)  # type: ignore[union-attr]
            assert first["sandbox_id"] == "sbx" and first["events"] == []
            await until(lambda: updates == ["events://computesdk/sbx"])
            later = json.loads((await client.read_resource("events://computesdk/sbx")).contents[0].text)  # type: ignore[union-attr]
    assert later["state"] == "connected" and [e["id"] for e in later["events"]] == ["ev7"]
    assert "tok-live" not in json.dumps(later)


async def test_the_wait_starts_over_after_each_connection_that_subscribed() -> None:
    async def behaviour(stream: SocketStream, n: int, received: list[str]) -> None:
        await read_line(stream, received)
        await stream.send(b"+OK\r\n" if n <= 3 else b"-ERR invalid token\r\n")  # 3 good sessions, then refusals

    fake = FakePubSub(behaviour)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await anyio.lowlevel.checkpoint()

    async def ignore(_: Event) -> None:
        pass

    async with serve(fake) as port, anyio.create_task_group() as tg:
        stream = EventStream("127.0.0.1", port, "tok", "sbx", ignore, backoff_start_s=1, backoff_max_s=4, sleep=sleep)
        tg.start_soon(stream.run)
        await until(lambda: len(waits) >= 7)
        stream.stop()
        tg.cancel_scope.cancel()
    # after each of the 3 sessions the wait is the first one again; refusals in a row double it, up to the cap
    assert waits[:7] == [1, 1, 1, 1, 2, 4, 4]
