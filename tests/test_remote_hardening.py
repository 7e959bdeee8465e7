"""Remote calls a hostile or broken provider cannot abuse: ids that would change the URL path are refused before
any request, answers are read up to a cap, a call has one deadline across reads and retries, and a provider's
error text reaches the agent short and without any credential."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from providers.http import MAX_ERROR_CHARS, MAX_RESPONSE_BYTES
from tests.conftest import TOKENS, connect, error_text, structured
from tests.fakes import FakeAPI, Reply

SPRITES_EXEC = ("GET", "/sprites/v1/sprites/box/exec")


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("listSessions", {"provider": "sprites", "sprite": ".."}),
        ("listSessions", {"provider": "sprites", "sprite": "a/b"}),
        ("stopSession", {"provider": "xano", "project_id": "..", "run_id": "..", "session_id": ".."}),
        ("getSession", {"provider": "archastro", "session_id": "."}),
        ("stopSession", {"provider": "sprites", "sprite": "box", "session_id": " "}),
    ],
)
async def test_ids_that_would_change_the_url_path_are_refused_before_any_request(
    api: FakeAPI, tool: str, arguments: dict[str, Any]
) -> None:
    async with connect() as client:
        text = error_text(await client.call_tool(tool, arguments))
    assert "cannot be used in a URL path" in text and "not empty, no '/'" in text
    assert api.requests == []


async def test_an_answer_over_the_cap_is_refused_not_read(api: FakeAPI) -> None:
    api.routes[SPRITES_EXEC] = Reply(200, b'{"sessions": ["' + b"x" * (MAX_RESPONSE_BYTES + 1) + b'"]}')
    async with connect() as client:
        text = error_text(await client.call_tool("listSessions", {"provider": "sprites", "sprite": "box"}))
    assert f"answered more than {MAX_RESPONSE_BYTES // (1024 * 1024)} MB" in text and "smaller limit" in text


@pytest.fixture
def trickling_server() -> Iterator[int]:
    """Answers every request with headers at once, then one body byte every 0.2 s, forever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
                while not stop.is_set():
                    conn.sendall(b" ")
                    time.sleep(0.2)
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    stop.set()
    listener.close()


async def test_a_trickling_provider_holds_a_call_no_longer_than_its_deadline(
    trickling_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPRITES_TOKEN", TOKENS["SPRITES_TOKEN"])
    monkeypatch.setenv("SPRITES_BASE_URL", f"http://127.0.0.1:{trickling_server}")
    monkeypatch.setenv("RUNTIMES_MCP_HTTP_TIMEOUT", "1")
    async with connect() as client:
        started = time.monotonic()
        text = error_text(await client.call_tool("listSessions", {"provider": "sprites", "sprite": "box"}))
        took = time.monotonic() - started
    # a read never times out (a byte every 0.2 s), yet the call ends: at its deadline, 2 x the timeout, which the
    # error names (the bound leaves room for a loaded machine)
    assert took < 10, took
    assert "RUNTIMES_MCP_HTTP_TIMEOUT" in text and "1 s" in text


async def test_a_retry_after_beyond_the_deadline_is_reported_not_slept(
    api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_HTTP_TIMEOUT", "1")
    api.routes[SPRITES_EXEC] = Reply(429, {"message": "slow down"}, headers={"Retry-After": "29"})
    async with connect() as client:
        started = time.monotonic()
        text = error_text(await client.call_tool("listSessions", {"provider": "sprites", "sprite": "box"}))
        took = time.monotonic() - started
    assert took < 15, took  # not the 29 s asked for
    assert "429" in text and "29" in text


async def test_error_text_is_short_and_never_echoes_a_credential(api: FakeAPI) -> None:
    token = TOKENS["SPRITES_TOKEN"]
    api.routes[SPRITES_EXEC] = Reply(401, {"message": f"bad token: Bearer {token}"})
    async with connect() as client:
        echoed = error_text(await client.call_tool("listSessions", {"provider": "sprites", "sprite": "box"}))
        api.routes[SPRITES_EXEC] = Reply(500, {"message": "e" * 5_000_000})
        huge = error_text(await client.call_tool("listSessions", {"provider": "sprites", "sprite": "box"}))
    assert token not in echoed and "bad token: [redacted]" in echoed
    assert len(huge) < MAX_ERROR_CHARS + 400 and "(5000000 chars)" in huge


async def test_userinfo_in_a_base_url_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("SPRITES_TOKEN", "t0ken-value")
    monkeypatch.setenv("SPRITES_BASE_URL", f"http://admin:pa55word@127.0.0.1:{port}/api")
    monkeypatch.setenv("RUNTIMES_MCP_RETRIES", "0")
    async with connect() as client:
        text = error_text(await client.call_tool("listSessions", {"provider": "sprites", "sprite": "box"}))
    assert f"http://127.0.0.1:{port}/api" in text
    assert "pa55word" not in text and "admin" not in text


async def test_a_large_computesdk_page_is_cut_by_size_with_a_way_on(api: FakeAPI) -> None:
    """The gateway may answer up to 1,000 events; a page holds MAX_PAGE_CHARS of event data, oldest first:
    without `since` the newest that fit, with `since` the oldest after it, and the message says how to go on."""
    from providers.models import MAX_PAGE_CHARS

    blob = "z" * (MAX_PAGE_CHARS // 3)
    events = [
        {"id": f"ev_{n}", "sandboxId": "sbx", "type": "t", "data": {"n": n, "b": blob}, "timestamp": 1000 + n}
        for n in range(6)
    ]
    api.routes[("GET", "/computesdk/events/sbx")] = Reply(
        body={"success": True, "data": {"sandboxId": "sbx", "events": events[::-1], "count": 6}}
    )
    async with connect() as client:
        newest = structured(await client.call_tool("getEvents", {"provider": "computesdk", "sandbox_id": "sbx"}))
        forward = structured(
            await client.call_tool("getEvents", {"provider": "computesdk", "sandbox_id": "sbx", "since": 999})
        )
    assert [e["data"]["n"] for e in newest["events"]] == [4, 5] and newest["truncated"]
    assert "smaller limit, or since" in newest["message"]
    assert [e["data"]["n"] for e in forward["events"]] == [0, 1] and forward["truncated"]
    assert "since=1001" in forward["message"]


def test_an_event_page_holds_its_cap_of_data_and_always_one_event() -> None:
    from providers.models import Event, event_page

    def event(n: int, size: int) -> Event:
        return Event(id=str(n), sandbox_id="s", type="t", data={"b": "x" * size}, timestamp=n)

    small = [event(n, 100) for n in range(5)]
    assert event_page(small[::-1], newest=True) == (small, False)  # all fit, oldest first whatever came
    big = [event(n, 400) for n in range(5)]  # {"b":"…"} is 408 characters
    assert [e.id for e in event_page(big, newest=True, max_chars=1000)[0]] == ["3", "4"]
    assert [e.id for e in event_page(big, newest=False, max_chars=1000)[0]] == ["0", "1"]
    assert event_page(big, newest=True, max_chars=1000)[1] is True
    huge = [event(0, 5000), event(1, 10)]
    assert event_page(huge, newest=False, max_chars=1000) == ([huge[0]], True)  # the first always fits
