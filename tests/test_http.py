"""The Streamable HTTP service as a team would deploy it: a real server process on 127.0.0.1, bearer auth,
Host/Origin checks, limits, stateless JSON mode, /healthz, and a graceful stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.load_http import OUR_HTTP, free_port, launch_http_server
from tests.conftest import appears, connect, error_text, marker, structured, wait_until_gone
from tests.test_stdio import check_an_events_page_against_the_sdk

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "http-token-SECRET-7f3a"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@contextmanager
def http_server(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real HTTP server process; with the test token unless the test says otherwise."""
    env = {"RUNTIMES_MCP_HTTP_TOKEN": TOKEN, **(env or {})} if "--insecure-no-auth" not in args else env
    process, base = launch_http_server(
        lambda port: [*OUR_HTTP, "--port", str(port), *args], env=env, stderr=subprocess.PIPE
    )
    try:
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def authed_client(base: str, token: str | None = TOKEN) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(streamable_http_client(f"{base}/mcp", http_client=httpx2.AsyncClient(headers=headers, timeout=30)))


def test_healthz_and_bearer_auth() -> None:
    with http_server(env={"RUNTIMES_MCP_HTTP_TOKEN": TOKEN}) as (base, _):
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        missing = httpx.post(f"{base}/mcp", json=INIT, headers=JSON_HEADERS)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="runtimes-mcp"'
        wrong = httpx.post(f"{base}/mcp", json=INIT, headers={**JSON_HEADERS, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
        assert "RUNTIMES_MCP_HTTP_TOKEN" in wrong.json()["error_description"]
        assert TOKEN not in wrong.text and TOKEN not in missing.text
        right = httpx.post(f"{base}/mcp", json=INIT, headers={**JSON_HEADERS, "Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200


def test_a_static_token_that_is_not_ascii_is_taken_as_the_client_sends_it_in_utf8() -> None:
    token = "pässwörd-" + TOKEN
    with http_server(env={"RUNTIMES_MCP_HTTP_TOKEN": token}) as (base, _):
        headers = {**JSON_HEADERS, "Authorization": b"Bearer " + token.encode()}
        assert httpx.post(f"{base}/mcp", json=INIT, headers=headers).status_code == 200
        headers["Authorization"] = b"Bearer " + token.encode("latin-1")  # the same text, other bytes: not the token
        assert httpx.post(f"{base}/mcp", json=INIT, headers=headers).status_code == 401


async def test_an_authenticated_client_runs_tools_over_http() -> None:
    with http_server(env={"RUNTIMES_MCP_HTTP_TOKEN": TOKEN}) as (base, _):
        async with authed_client(base) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            result = structured(await client.call_tool("execRun", {"command": "echo over-http"}))
    assert "execRun" in names and result["stdout"] == "over-http\n"


def test_origin_and_host_are_checked_against_allow_lists() -> None:
    with http_server("--insecure-no-auth", env={"RUNTIMES_MCP_ALLOWED_ORIGINS": "https://agents.example"}) as (
        base,
        _,
    ):
        evil = httpx.post(f"{base}/mcp", json=INIT, headers={**JSON_HEADERS, "Origin": "https://evil.example"})
        assert evil.status_code == 403
        good = httpx.post(f"{base}/mcp", json=INIT, headers={**JSON_HEADERS, "Origin": "https://agents.example"})
        assert good.status_code == 200
        rebound = httpx.post(f"{base}/mcp", json=INIT, headers={**JSON_HEADERS, "Host": "attacker.example"})
        assert rebound.status_code == 421
    with http_server("--insecure-no-auth") as (base, _):  # loopback origins are allowed by default
        local = httpx.post(f"{base}/mcp", json=INIT, headers={**JSON_HEADERS, "Origin": "http://localhost:3000"})
        assert local.status_code == 200


HOSTS_REFUSED = [
    "localhost:{port}@evil.com",
    "localhost:{port}.evil.com",
    "localhost:{port}/evil",
    "localhost:{port}#x",
    "localhost:{port} evil.com",
    "localhost:",
    "localhost:99999",
    "localhost:-1",
    "localhost.evil.com:{port}",
    "127.0.0.1:{port}:80",
    "127.0.0.1.evil.com",
    "[::1]:{port}@evil.com",
    "[::1]evil:{port}",
    "evil.com",
    "",
]
HOSTS_ALLOWED = ["localhost:{port}", "127.0.0.1:{port}", "127.0.0.1", "[::1]:{port}", "localhost"]
ORIGINS_REFUSED = [
    "http://localhost:{port}@evil.com",
    "http://localhost:{port}.evil.com",
    "http://localhost.evil.com",
    "http://localhost:{port}/x",
    "https://localhost:{port}",
    "null",
]


def test_a_host_or_origin_that_only_starts_like_an_allowed_one_is_refused() -> None:
    """`localhost:*` allows localhost with a numeric port, exactly: not `localhost:18100@evil.com`."""
    with http_server("--insecure-no-auth") as (base, _):
        port = base.rsplit(":", 1)[1]

        def status(host: str | None = None, origin: str | None = None) -> int:
            headers = {**JSON_HEADERS, **({"Host": host} if host is not None else {})}
            if origin is not None:
                headers["Origin"] = origin
            return httpx.post(f"{base}/mcp", json=INIT, headers=headers).status_code

        refused = {h: status(host=h.format(port=port)) for h in HOSTS_REFUSED}
        allowed = {h: status(host=h.format(port=port)) for h in HOSTS_ALLOWED}
        origins = {o: status(origin=o.format(port=port)) for o in ORIGINS_REFUSED}
        local_origin = status(origin=f"http://localhost:{port}")
    assert all(code in (400, 421) for code in refused.values()), refused  # 400: h11 refuses some before us
    assert set(allowed.values()) == {200}, allowed
    assert set(origins.values()) == {403}, origins
    assert local_origin == 200


def test_oversized_request_body_is_refused() -> None:
    with http_server("--insecure-no-auth", env={"RUNTIMES_MCP_MAX_REQUEST_BYTES": "2048"}) as (base, _):
        big = {**INIT, "params": {**INIT["params"], "padding": "x" * 5000}}  # type: ignore[dict-item]
        assert httpx.post(f"{base}/mcp", json=big, headers=JSON_HEADERS).status_code == 413


def test_stateless_json_mode_answers_plain_json_without_a_session() -> None:
    with http_server("--stateless", "--json-response", "--insecure-no-auth") as (base, _):
        response = httpx.post(f"{base}/mcp", json=INIT, headers=JSON_HEADERS)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert "mcp-session-id" not in response.headers
        assert response.json()["result"]["serverInfo"]["name"] == "runtimes-mcp"
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "getDocs", "arguments": {"topic": "local"}},
        }
        answer = httpx.post(f"{base}/mcp", json=call, headers={**JSON_HEADERS, "MCP-Protocol-Version": "2025-06-18"})
        assert answer.json()["result"]["structuredContent"]["topic"] == "local"


def test_without_a_token_one_is_made_for_the_run_and_printed_with_a_client_config() -> None:
    with http_server(env={"RUNTIMES_MCP_HTTP_TOKEN": ""}) as (base, process):  # empty means unset
        assert process.stderr is not None
        lines: list[str] = []
        while len(lines) < 4:
            line = process.stderr.readline().decode()
            if " runtimes-mcp WARNING " not in line:  # a log line (a server started as root says so)
                lines.append(line)
        assert f"{base}/mcp" in lines[0] and "made for this run" in lines[0]
        token = lines[1].strip()
        config = json.loads(lines[3])["mcpServers"]["runtimes"]
        assert config["url"] == f"{base}/mcp" and config["headers"]["Authorization"] == f"Bearer {token}"
        assert httpx.post(f"{base}/mcp", json=INIT, headers=JSON_HEADERS).status_code == 401
        with_token = httpx.post(f"{base}/mcp", json=INIT, headers={**JSON_HEADERS, **config["headers"]})
        assert with_token.status_code == 200


async def test_without_authentication_commands_are_off_unless_the_operator_opts_in() -> None:
    async def names(*args: str) -> set[str]:
        with http_server(*args) as (base, _):
            async with authed_client(base, token=None) as client:
                return {t.name for t in (await client.list_tools()).tools}

    plain = await names("--insecure-no-auth")
    assert "execRun" not in plain and "invokeRoutine" not in plain
    assert {"listSessions", "stopSession", "getLaunchers", "storeEvent", "getDocs"} <= plain
    assert {"execRun", "invokeRoutine"} <= await names("--insecure-no-auth", "--unauthenticated-local-exec")


def test_local_exec_without_authentication_needs_both_flags() -> None:
    alone = subprocess.run(
        [*OUR_HTTP, "--unauthenticated-local-exec", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert alone.returncode == 2 and "--insecure-no-auth" in alone.stderr


async def test_sigterm_stops_gracefully_and_ends_local_processes() -> None:
    mark = marker()
    with http_server(env={"RUNTIMES_MCP_HTTP_TOKEN": TOKEN}) as (base, process):
        async with authed_client(base) as client:
            structured(await client.call_tool("execRun", {"command": f"sleep {mark}", "wait": False}))
        assert await appears(mark)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    assert await wait_until_gone(mark) == []


async def test_calls_beyond_the_limit_queue_then_get_a_clear_busy_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_MAX_CONCURRENT_CALLS", "1")

    async def two_at_once() -> list[Any]:
        results: list[Any] = []
        async with connect() as client:

            async def run() -> None:
                results.append(await client.call_tool("execRun", {"command": "sleep 0.5"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                tg.start_soon(run)
        return results

    queued = await two_at_once()  # the second waits for the first (default queue timeout 10 s)
    assert not any(r.is_error for r in queued)

    monkeypatch.setenv("RUNTIMES_MCP_QUEUE_TIMEOUT", "0.1")
    refused = await two_at_once()
    errors = [error_text(r) for r in refused if r.is_error]
    assert len(errors) == 1 and "busy" in errors[0] and "RUNTIMES_MCP_MAX_CONCURRENT_CALLS" in errors[0]
    assert "waited 0.1 s" in errors[0]


def test_live_sessions_are_capped_and_idle_ones_expire() -> None:
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {TOKEN}"}
    env = {"RUNTIMES_MCP_MAX_SESSIONS": "2", "RUNTIMES_MCP_SESSION_IDLE_TIMEOUT": "1"}
    with http_server("--json-response", env=env) as (base, _):
        opened = [httpx.post(f"{base}/mcp", json=INIT, headers=headers) for _ in range(3)]
        assert [r.status_code for r in opened] == [200, 200, 503]
        first = opened[0].headers["mcp-session-id"]
        # Idle past the timeout, both sessions are closed and room is free again (a refused initialize makes none)
        deadline = time.monotonic() + 30
        while httpx.post(f"{base}/mcp", json=INIT, headers=headers).status_code == 503:
            assert time.monotonic() < deadline, "idle sessions were never closed"
            time.sleep(0.1)
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        expired = httpx.post(f"{base}/mcp", json=ping, headers={**headers, "Mcp-Session-Id": first})
        assert expired.status_code == 404


def test_a_call_in_flight_at_sigterm_gets_a_json_rpc_answer_at_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    headers = {**JSON_HEADERS, "Authorization": f"Bearer {TOKEN}"}
    mark = marker()
    call = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "execRun", "arguments": {"command": f"sleep {mark}", "wait_s": 30}},
    }
    env = {"RUNTIMES_MCP_SHUTDOWN_GRACE": "20"}
    with http_server("--stateless", "--json-response", env=env) as (base, process):
        httpx.post(f"{base}/mcp", json=INIT, headers=headers)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{base}/mcp", json=call, headers=headers, timeout=30)
            assert anyio.run(appears, mark), "the call's run never started"
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            answer = pending.result()
            took = time.monotonic() - sent
        assert process.wait(30) == 0
    assert took < 10, took  # not the 20 s grace
    body = answer.json()
    assert answer.status_code == 200 and body["id"] == 9 and body["result"]["isError"] is True
    assert "shutting down" in body["result"]["content"][0]["text"] and "Retry" in body["result"]["content"][0]["text"]


def test_a_flood_of_slow_header_clients_cannot_keep_healthz_out() -> None:
    """200 connections that send half a request and then nothing, against a cap of 50: /healthz still answers
    (the oldest waiting connections make room), and the slow ones are cut off at the header deadline."""
    env = {"RUNTIMES_MCP_MAX_CONNECTIONS": "50", "RUNTIMES_MCP_HEADER_TIMEOUT": "2"}
    with http_server("--stateless", "--json-response", env=env) as (base, process):
        host, port = urlsplit(base).hostname, urlsplit(base).port
        slow = []
        for _ in range(200):
            s = socket.create_connection((host, port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
            slow.append(s)
        for _ in range(10):
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        for s in slow:  # each is closed by the server: at its header deadline, or before to make room
            s.settimeout(30)
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
            s.close()
        assert process.poll() is None


def _slow_body(base: str, token: str | None) -> socket.socket:
    """A connection that sends a request's headers, announcing a 1 MB body, and the body's first byte."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    s = socket.create_connection((host, port))
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    s.sendall(
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\n{auth}Content-Length: 1000000\r\n\r\n{{".encode()
    )
    return s


def _read_until_closed(s: socket.socket, within_s: float) -> bytes:
    """What the server sends until it closes the connection; raises TimeoutError if it is still open after
    `within_s`."""
    s.settimeout(within_s)
    received = b""
    try:
        while chunk := s.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    finally:
        s.close()
    return received


def test_a_request_answered_before_its_body_is_in_closes_its_connection() -> None:
    """401 to a request whose 1 MB body has barely begun: the connection is closed with the answer, not kept for
    the rest of the body (a client trickling it, a byte before uvicorn's keep-alive timeout, held it for ever)."""
    with http_server() as (base, _):
        s = _slow_body(base, token=None)
        s.settimeout(10)
        answer = s.recv(65536)
        try:
            s.sendall(b" ")  # more of the body
        except OSError:
            pass  # closed already
        answer += _read_until_closed(s, within_s=10)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


def test_a_client_retrying_after_an_early_401_gets_its_answer_on_a_new_connection() -> None:
    """An OAuth client sends a large call with an expired token, gets 401, and retries with a new one from the
    same pool: the 401 says connection: close (its unread body is read and dropped, not reset away), so the
    retry never lands on the closing connection."""
    signed_in = {**JSON_HEADERS, "Authorization": f"Bearer {TOKEN}"}
    with http_server("--stateless", "--json-response") as (base, _):
        answers = []
        for _ in range(10):
            with httpx.Client(timeout=10) as client:
                wrong = {**JSON_HEADERS, "Authorization": "Bearer expired"}
                refused = client.post(f"{base}/mcp", content=b" " * 1_000_000, headers=wrong)
                answers.append((refused.status_code, refused.headers.get("connection")))
                answers.append(client.post(f"{base}/mcp", json=INIT, headers=signed_in).status_code)
    assert answers == [(401, "close"), 200] * 10, answers


def test_a_flood_of_half_sent_headers_does_not_cut_a_signed_in_upload_short() -> None:
    """At the connection cap, what makes room is a connection that has not sent its headers, before one still
    sending a body: a flood needing no token must not close a signed-in client's upload."""
    env = {"RUNTIMES_MCP_MAX_CONNECTIONS": "20"}
    body = json.dumps(INIT).encode() + b" " * 2_000_000  # JSON may end in whitespace
    with http_server("--stateless", "--json-response", env=env) as (base, _):
        host, port = urlsplit(base).hostname, urlsplit(base).port
        upload = socket.create_connection((host, port))
        upload.settimeout(15)
        upload.sendall(
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        assert upload.recv(65536).startswith(b"HTTP/1.1 100 ")  # its headers are in: it is sending its body
        upload.sendall(body[:100_000])
        flood = []
        for _ in range(25):
            s = socket.create_connection((host, port))
            s.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the rest
            flood.append(s)
        upload.sendall(body[100_000:])
        answer = upload.recv(65536)
        upload.close()
        for s in flood:
            s.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_connections_closing_after_an_early_401_make_room_before_a_new_client() -> None:
    """Answered 401 before their bodies were in, connections close gently (for up to LINGER_S): at the cap, those
    make room first, not a client that has just connected and not yet sent its request."""
    env = {"RUNTIMES_MCP_MAX_CONNECTIONS": "20"}
    with http_server("--stateless", "--json-response", env=env) as (base, _):
        host, port = urlsplit(base).hostname, urlsplit(base).port
        answered = [_slow_body(base, token=None) for _ in range(20)]
        for s in answered:
            s.settimeout(10)
            assert s.recv(65536).startswith(b"HTTP/1.1 401 ")
        client = socket.create_connection((host, port))  # connected; its request comes a moment later
        more = [_slow_body(base, token=None) for _ in range(3)]
        request = json.dumps(INIT).encode()
        client.sendall(
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: {len(request)}\r\n\r\n".encode()
            + request
        )
        client.settimeout(15)
        answer = client.recv(65536)
        for s in [client, *answered, *more]:
            s.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_a_body_trickled_by_a_signed_in_client_is_cut_off_at_the_body_deadline() -> None:
    """A byte every 0.2 s does not push the deadline back: the connection is closed once RUNTIMES_MCP_BODY_TIMEOUT
    has passed since its headers came in."""
    with http_server(env={"RUNTIMES_MCP_BODY_TIMEOUT": "1"}) as (base, _):
        s = _slow_body(base, TOKEN)
        started, closed = time.monotonic(), False
        while not closed and time.monotonic() - started < 15:
            time.sleep(0.2)  # the client's pace, not a wait for the server
            try:
                s.sendall(b" ")
            except OSError:
                closed = True
        if not closed:
            _read_until_closed(s, within_s=0.5)
        took = time.monotonic() - started
        s.close()
    assert 0.8 < took < 10, took


def test_a_flood_of_slow_bodies_signed_in_or_not_cannot_keep_healthz_or_a_client_out() -> None:
    """30 connections sending a body slowly (without a token, and with one), against a cap of 20: /healthz and a
    signed-in client are still answered (connections still sending their request make room), and every slow one
    is closed: at once when refused, else to make room or at its body deadline."""
    env = {"RUNTIMES_MCP_MAX_CONNECTIONS": "20", "RUNTIMES_MCP_BODY_TIMEOUT": "3"}
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {TOKEN}"}
    with http_server("--stateless", "--json-response", env=env) as (base, process):
        slow = [_slow_body(base, token=None if n % 2 else TOKEN) for n in range(30)]
        for _ in range(5):
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
            assert httpx.post(f"{base}/mcp", json=INIT, headers=headers, timeout=5).status_code == 200
        for s in slow:
            _read_until_closed(s, within_s=15)
        assert process.poll() is None


@pytest.mark.parametrize("mode", [(), ("--stateless", "--json-response")], ids=["sse", "json"])
async def test_an_events_page_over_http_is_what_an_in_process_client_gets(
    mode: tuple[str, ...], monkeypatch: Any
) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "events")
    with http_server(*mode) as (base, _):
        async with authed_client(base) as client:
            await check_an_events_page_against_the_sdk(client)


def test_a_request_the_sdk_cannot_read_is_served_mended_or_answered_with_its_own_id() -> None:
    """Over HTTP as over stdio: a lone surrogate escape (valid JSON, no valid text) is mended and served; a body
    nested deeper than the SDK reads, or cut short, is answered with the request's id, not id null."""
    from tests.test_tasks_e2e import Wire

    with http_server("--stateless", "--json-response") as (base, process):
        wire = Wire(base, tasks=False)
        body, headers = wire.envelope(
            "tools/call", {"name": "execRun", "arguments": {"command": "SURROGATE"}}, "execRun"
        )
        text = json.dumps(body).replace('"SURROGATE"', "\"printf 'a\\ud800b\\udc00'\"")
        mended = httpx.post(wire.url, content=text, headers={**headers, "Content-Type": "application/json"}, timeout=30)
        deep = text.replace('"command": "printf', '"x": ' + "[" * 5000 + "]" * 5000 + ', "command": "printf')
        too_deep = httpx.post(
            wire.url, content=deep, headers={**headers, "Content-Type": "application/json"}, timeout=30
        )
        cut = httpx.post(
            wire.url, content=text[:-10], headers={**headers, "Content-Type": "application/json"}, timeout=30
        )
        assert process.poll() is None
    assert mended.status_code == 200, mended.text
    assert mended.json()["result"]["structuredContent"]["stdout"] == "a\ufffdb\ufffd"
    for refused in (too_deep, cut):
        assert refused.status_code == 400 and refused.json()["id"] == 7, refused.text
        assert refused.json()["error"]["code"] == -32700
