"""ComputeSDK events: store and read over HTTP, follow live over the pub/sub TCP line protocol."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import SocketStream

from providers import capabilities as c
from providers.answers import Redactor, parse_answer, valid_text
from providers.backoff import keep_running
from providers.computesdk import ACCESS_TOKEN, API_KEY, PROVIDER
from providers.computesdk import endpoints as e
from providers.errors import InvalidInput, NotConfigured, ProtocolError, ProviderError
from providers.http import HttpProvider, int_or_none
from providers.models import Event, EventList, StoredEvent, event_list, event_name_problem, event_page
from providers.services import Host


class ComputeSDKEventsClient(HttpProvider, c.StoreEvent, c.GetEvents):
    name = PROVIDER.name

    def __init__(
        self,
        *,
        gateway_url: str,
        access_token: str | None = None,
        api_key: str | None = None,
        pubsub_host: str = "events.computesdk.com",
        pubsub_port: int = 6380,
        **options: Any,
    ) -> None:
        super().__init__(base_url=gateway_url, headers={}, **options)
        self._access_token = access_token
        self._api_key = api_key
        self.pubsub_host = pubsub_host
        self.pubsub_port = pubsub_port
        self.host: Host | None = None  # while the server keeps it open (open_client)
        self.streams: dict[str, EventStream] = {}

    def _needs(self, value: str | None, env: str, what: str) -> str:
        if not value:
            raise NotConfigured(self.name, f"{what} needs {env}", hint=f"Set {env} and restart the server.")
        return value

    async def store_event(self, type: str, data: dict[str, Any]) -> StoredEvent:
        token = self._needs(self._access_token, ACCESS_TOKEN.env, "storing an event")
        if (problem := event_name_problem(type, None)) is not None:
            raise InvalidInput(self.name, problem)
        answer = await self.call_json(
            e.COMPUTESDK_STORE_EVENT,
            body={"type": type, "data": data},
            headers={"Authorization": f"Bearer {token}"},
            credential_env=ACCESS_TOKEN.env,
        )
        payload = self._payload(answer)
        timestamp = int_or_none(payload.get("timestamp"))
        if timestamp is None or not all(isinstance(payload.get(k), str) for k in ("sandboxId", "type")):
            raise ProtocolError(self.name, "the stored event lacks eventId, sandboxId, type or timestamp")
        return StoredEvent(
            provider=self.name,
            event_id=self.identity(payload, "the stored event", "eventId"),
            sandbox_id=payload["sandboxId"],
            type=payload["type"],
            timestamp=timestamp,
        )

    async def get_events(
        self, sandbox_id: str, type: str | None = None, since: int | None = None, limit: int | None = None
    ) -> EventList:
        key = self._needs(self._api_key, API_KEY.env, "reading events")
        if (problem := event_name_problem(type, sandbox_id)) is not None:
            raise InvalidInput(self.name, problem)
        answer = await self.call_json(
            e.COMPUTESDK_GET_EVENTS,
            path={"sandbox_id": sandbox_id},
            query={"type": type, "since": since, "limit": limit},
            headers={"X-API-Key": key},
            credential_env=API_KEY.env,
        )
        payload = self._payload(answer)
        received = [to_event(item) for item in self.entries(payload, "events", "the event page")]
        if not all(event.id for event in received):
            raise ProtocolError(self.name, "an event of the page has no id")
        events, cut = event_page(received, newest=since is None)
        return event_list(self.name, str(payload.get("sandboxId", sandbox_id)), events, cut, since)

    def _payload(self, answer: Any) -> dict[str, Any]:
        """The answer's content: `data` of a `{success, data}` envelope, or the object itself when it comes
        bare (the SDK's documentation shows both)."""
        if not isinstance(answer, dict):
            raise ProtocolError(self.name, "the answer is not a JSON object")
        if answer.get("success") is False:
            raise ProviderError(self.name, self.clean(str(answer.get("error") or "the gateway reported a failure")))
        if "success" not in answer and "data" not in answer:
            return answer
        data = answer.get("data")
        if not isinstance(data, dict):
            raise ProtocolError(self.name, "the answer has no data object")
        return data

    def stream(self, sandbox_id: str, on_event: Callable[[Event], Awaitable[None]]) -> EventStream:
        token = self._needs(self._access_token, ACCESS_TOKEN.env, "following live events")
        return EventStream(
            self.pubsub_host, self.pubsub_port, token, sandbox_id, on_event, parse=self.read_json, clean=self.clean
        )

    def follow(self, sandbox_id: str) -> EventStream:
        """The sandbox's stream, started on first use in the server's background."""
        host = self.host
        assert host is not None, "the server opens this client (open_client) before reading its resources"
        stream = self.streams.get(sandbox_id)
        if stream is None:

            async def notify(_: Event) -> None:
                await host.changed(f"events://computesdk/{sandbox_id}")

            stream = self.streams[sandbox_id] = self.stream(sandbox_id, notify)
            host.background.start_soon(stream.run)
        return stream


def to_event(item: dict[str, Any]) -> Event:
    data = item.get("data")
    return Event(
        id=str(item.get("id") or ""),
        sandbox_id=str(item.get("sandboxId", "")),
        type=str(item.get("type", "")),
        data=data if isinstance(data, dict) else {},
        timestamp=int_or_none(item.get("timestamp")) or 0,
        workspace_id=int_or_none(item.get("workspaceId")),
    )


class PubSubError(Exception):
    """The pub/sub server answered -ERR."""


class EventStream:
    """Live events of one sandbox over the pub/sub line protocol (SUBSCRIBE, +OK/-ERR, PING/+PONG, one JSON
    event per line), reconnecting with exponential backoff. Lines are sent CRLF-terminated, Redis-style, and
    read tolerant of either line ending."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        sandbox_id: str,
        on_event: Callable[[Event], Awaitable[None]],
        *,
        backoff_start_s: float = 1.0,
        backoff_max_s: float = 30.0,
        ping_interval_s: float = 30.0,
        keep: int = 100,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        parse: Callable[[str], Any] | None = None,
        clean: Callable[[str], str] | None = None,
    ) -> None:
        """`parse` reads an event line and `clean` makes the server's text safe to show (the client's, with
        every credential redacted); by default, this stream's own token is."""
        self.host, self.port, self.sandbox_id = host, port, sandbox_id
        self._token = token
        redact = Redactor([token])
        self._parse = parse or (lambda line: parse_answer(line, redact))
        self._clean = clean or (lambda text: redact(valid_text(text)))
        self._on_event = on_event
        self.backoff_start_s, self.backoff_max_s = backoff_start_s, backoff_max_s
        self.ping_interval_s = ping_interval_s
        self.state = "disconnected"
        self.last_error: str | None = None
        self.connects = 0
        self.recent: deque[Event] = deque(maxlen=keep)
        self._stopping = False
        self._sleep = sleep

    async def run(self) -> None:
        await keep_running(
            self._connect_once,
            start_s=self.backoff_start_s,
            max_s=self.backoff_max_s,
            running=lambda: not self._stopping,
            sleep=self._sleep,
        )

    async def _connect_once(self) -> bool:
        """One connection, until it ends. It went well if it subscribed (the wait before the next starts over)."""
        self.state = "connecting"
        connects = self.connects
        try:
            async with await anyio.connect_tcp(self.host, self.port) as stream:
                await self._session(stream)
            self.state = "disconnected"
        except PubSubError as exc:
            self.state, self.last_error = "error", f"the server refused: {self._clean(str(exc))}"
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            self.state, self.last_error = "disconnected", f"connection lost ({type(exc).__name__})"
        return self.connects > connects

    def stop(self) -> None:
        self._stopping = True

    async def _session(self, stream: SocketStream) -> None:
        await stream.send(f"SUBSCRIBE {self.sandbox_id} {self._token}\r\n".encode())
        try:
            async with anyio.create_task_group() as tg:  # what ends the reading below cancels the pings
                tg.start_soon(self._ping, stream)
                buffer = b""
                while True:
                    buffer += await stream.receive()
                    *lines, buffer = buffer.split(b"\n")
                    for raw in lines:
                        await self._line(raw.rstrip(b"\r").decode("utf-8", "replace"), stream)
        except ExceptionGroup as group:  # the task group wraps what ended the session: hand on the first
            raise group.exceptions[0] from None

    async def _ping(self, stream: SocketStream) -> None:
        while True:
            await anyio.sleep(self.ping_interval_s)
            await stream.send(b"PING\r\n")

    async def _line(self, line: str, stream: SocketStream) -> None:
        if not line:
            return
        if line.startswith("+OK"):
            self.state, self.last_error = "connected", None
            self.connects += 1
        elif line.startswith("-ERR"):
            raise PubSubError(line[4:].strip() or "error")
        elif line == "PING":
            await stream.send(b"PONG\r\n")
        elif line.startswith("+"):
            return  # +PONG and other acknowledgements
        else:
            try:
                item = self._parse(line)
            except (ValueError, ProviderError):  # not JSON, or nested too deep: not an event
                return
            if isinstance(item, dict):
                event = to_event(item)
                self.recent.append(event)
                await self._on_event(event)


@asynccontextmanager
async def open_client(host: Host) -> AsyncIterator[ComputeSDKEventsClient]:
    """The client for the server's whole life, its sandboxes' live streams running in the server's background."""
    client = ComputeSDKEventsClient(**host.arguments)
    client.host = host
    try:
        yield client
    finally:
        for stream in client.streams.values():
            stream.stop()
        with anyio.CancelScope(shield=True):
            await client.aclose()


async def read_live_events(client: ComputeSDKEventsClient, sandbox_id: str) -> str:
    """The newest page of the events heard on the sandbox's stream, which starts on its first read."""
    stream = client.follow(sandbox_id)
    events, cut = event_page(list(stream.recent), newest=True)
    return json.dumps(
        {
            "sandbox_id": sandbox_id,
            "state": stream.state,
            "last_error": stream.last_error,
            "events": [event.model_dump(mode="json") for event in events],
            "truncated": cut,
        }
    )
