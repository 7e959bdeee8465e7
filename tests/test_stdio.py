"""The server as clients launch it: a real `runtimes-mcp` process over stdio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mcp import Client

from tests.conftest import DEFAULT_TOOLS, RawStdio, connect, stdio_params, structured


async def test_stdio_client_sees_the_default_tools_with_schemas_and_annotations() -> None:
    async with Client(stdio_params()) as client:
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == DEFAULT_TOOLS
        assert all(t.output_schema and t.annotations for t in tools)
        result = structured(await client.call_tool("execRun", {"command": "printf stdio-ok"}))
        assert result["stdout"] == "stdio-ok"
        read = await client.read_resource("docs://overview")
        assert "Providers" in read.contents[0].text  # type: ignore[union-attr]


async def test_a_background_run_is_followed_from_the_default_tools() -> None:
    # The bar: start in the background, then one getSession that waits and reports progress.
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with Client(stdio_params()) as client:
        command = "for i in 1 2 3; do echo line$i; sleep 1; done"
        started = structured(await client.call_tool("execRun", {"command": command, "wait": False}))
        assert started["state"] == "running"
        args = {"session_id": started["session_id"], "wait_s": 10}
        followed = structured(await client.call_tool("getSession", args, progress_callback=on_progress))
        assert followed["state"] == "completed" and "line3" in followed["stdout"]
        assert messages and any("line" in m for m in messages)

        begun = time.monotonic()
        long = structured(await client.call_tool("execRun", {"command": "sleep 120", "wait_s": 2}))
        took = time.monotonic() - begun
        assert long["state"] == "running" and long["session_id"]
        assert 1.5 < took < 20, took  # its wait_s, not the default 30 s
        stopped = structured(await client.call_tool("stopSession", {"session_id": long["session_id"]}))
        assert stopped["state"] == "stopped"


async def test_results_larger_than_the_pipe_buffer_arrive_whole(tmp_path: Path) -> None:
    # The pipe takes 64 KiB at a time: the rest waits in the loop's write buffer until the client reads.
    config = tmp_path / "big.toml"
    config.write_text("[local]\noutput_cap_bytes = 400000\n", encoding="utf-8")
    async with Client(stdio_params("--config", str(config))) as client:
        for size in (300_000, 200_001):
            command = f"head -c {size} /dev/zero | tr '\\0' x"
            result = structured(await client.call_tool("execRun", {"command": command}))
            assert result["stdout"] == "x" * size and not result["truncated"]


STRAY_WRITER = """
import anyio, os, sys
from server.stdio_pipes import open_stdio_pipes

async def main():
    async with open_stdio_pipes() as pipes:
        assert pipes is not None
        print("stray print", flush=True)
        os.write(1, b"stray fd 1\\n")
        line = await pipes.stdin.__anext__()
        await pipes.send(("wire:" + line).encode())
    print("after the transport", flush=True)

anyio.run(main)
"""


def test_stray_output_never_reaches_the_wire() -> None:
    # While the transport runs, fd 1 points at stderr: a print in a handler cannot corrupt the protocol.
    done = subprocess.run(
        [sys.executable, "-c", STRAY_WRITER], input=b"hello\n", capture_output=True, timeout=30, check=True
    )
    assert done.stdout == b"wire:hello\nafter the transport\n"
    assert b"stray print" in done.stderr and b"stray fd 1" in done.stderr


def test_a_client_that_stops_reading_does_not_crash_the_server(tmp_path: Path) -> None:
    # Its read end closes; our next write fails with EPIPE. The server keeps quiet and exits when stdin ends.
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "RUNTIMES_MCP_DATA_DIR": str(tmp_path)},
    )
    assert server.stdin and server.stdout
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}).encode())
    server.stdin.write(b"\n")
    server.stdin.flush()
    assert json.loads(server.stdout.readline())["id"] == 1
    server.stdout.close()
    for request_id in (2, 3):
        message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}
        server.stdin.write(json.dumps(message).encode() + b"\n")
        server.stdin.flush()
    time.sleep(0.3)
    _, stderr = server.communicate(timeout=20)
    assert server.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()


def test_every_unparsable_message_is_answered_and_the_server_keeps_serving() -> None:
    """-32700 for what is not JSON (or too long to read), -32600 for JSON that is not a JSON-RPC message or is
    nested too deep; each with id null (none of these has one), at once, and the next request is served."""
    import json
    import os
    import select
    import subprocess
    import sys
    import time

    from server.stdio_pipes import MAX_LINE_BYTES

    lines = [
        b"{garbage",
        b'{"foo": 1}',
        b'"\\ud800"',
        b"[" * 5000 + b"]" * 5000,
        b'{"x": "' + b"y" * (MAX_LINE_BYTES + 10) + b'"}',
        b'{"jsonrpc": "2.0", "id": 7, "method": "ping"}',
    ]
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    try:
        assert server.stdin is not None and server.stdout is not None
        for line in lines:
            server.stdin.write(line + b"\n")
        answers: list[dict[str, object]] = []
        buffer, deadline = b"", time.monotonic() + 30
        while len(answers) < 6 and time.monotonic() < deadline:
            if select.select([server.stdout], [], [], 0.2)[0]:
                buffer += os.read(server.stdout.fileno(), 65536)
                *complete, buffer = buffer.split(b"\n")
                answers += [json.loads(c) for c in complete if c]
        assert server.poll() is None, "the server ended"
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(15)
    errors = [(a["id"], a["error"]["code"]) for a in answers[:-1]]  # type: ignore[index]
    assert errors == [(None, -32700), (None, -32600), (None, -32700), (None, -32600), (None, -32700)], answers
    assert "longer than 64 MB" in str(answers[4])
    assert answers[-1] == {"jsonrpc": "2.0", "id": 7, "result": {}}


def test_a_large_reply_comes_whole_and_never_interleaved(tmp_path: Path) -> None:
    """A reply larger than the pipe's buffer is one line of valid JSON, with unicode, quotes and control
    characters intact, and a parse-error answer sent meanwhile comes as a line of its own."""
    import os
    import select

    env = {**os.environ, "RUNTIMES_MCP_DATA_DIR": str(tmp_path), "RUNTIMES_MCP_TOOLSETS": "events"}
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env
    )
    tricky = 'é "quoted" \\ back\tslash\n\u2028 \U0001f600 \x01'
    requests: list[dict[str, object]] = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    for n in range(5):
        data = {"n": n, "text": tricky * 4000, "nested": {"list": [1, 2.5, None, True, "x"]}}
        args = {"type": "t", "data": data}
        requests.append(
            {
                "jsonrpc": "2.0",
                "id": 10 + n,
                "method": "tools/call",
                "params": {"name": "storeEvent", "arguments": args},
            }
        )
    requests.append(
        {"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "getEvents", "arguments": {"limit": 5}}}
    )
    answers: dict[object, dict[str, object]] = {}
    try:
        assert server.stdin is not None and server.stdout is not None
        for request in requests:
            server.stdin.write(json.dumps(request).encode() + b"\n")
        server.stdin.write(b"{garbage\n")  # answered while the large reply may still be going out
        buffer, deadline = b"", time.monotonic() + 60
        while len(answers) < 8 and time.monotonic() < deadline:
            if select.select([server.stdout], [], [], 0.2)[0]:
                buffer += os.read(server.stdout.fileno(), 1 << 20)
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    message = json.loads(line)  # every line is one whole JSON-RPC message
                    answers[message.get("id")] = message
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(15)
    assert answers[None]["error"]["code"] == -32700  # type: ignore[index]
    result = answers[99]["result"]
    text = result["content"][0]["text"]  # type: ignore[index]
    assert len(text) > 128 * 1024, "the reply fits in the pipe's buffer"
    events = result["structuredContent"]["events"]  # type: ignore[index]
    assert [e["data"] for e in json.loads(text)["events"]] == [e["data"] for e in events]  # text drops nulls only
    assert [e["data"]["text"] for e in events] == [tricky * 4000] * len(events)
    assert events[0]["data"]["nested"] == {"list": [1, 2.5, None, True, "x"]}


async def test_an_events_page_over_stdio_is_what_an_in_process_client_gets(monkeypatch: Any) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "events")
    async with Client(stdio_params()) as client:
        await check_an_events_page_against_the_sdk(client)


async def check_an_events_page_against_the_sdk(client: Client) -> None:
    """A getEvents page read through `client` (a transport) is the one an in-process client gets on the same
    data, text and structuredContent alike: for data with unicode, quotes, control characters and nulls, in a
    page cut for size."""
    from providers.models import MAX_PAGE_CHARS

    tricky = 'é "quoted" \\ back\tslash\n\u2028 \U0001f600 \x01 </script>'
    arguments = {"sandbox_id": "box-1.a:b@c", "type": 'kind\n"é" \\', "limit": 10}  # a sandbox id is a plain name
    for n in range(6):
        data = {"n": n, "text": tricky * 2000, "nested": {"list": [1, 2.5, None, True, {}], "none": None}}
        stored = await client.call_tool(
            "storeEvent", {"sandbox_id": arguments["sandbox_id"], "type": arguments["type"], "data": data}
        )
        assert not stored.is_error
    over_the_wire = await client.call_tool("getEvents", arguments)
    newest = await client.call_tool("getEvents", {**arguments, "limit": 1})
    async with connect() as in_process_client:
        in_process = await in_process_client.call_tool("getEvents", arguments)

    page = structured(over_the_wire)
    assert page["truncated"] and "since" in page["message"]
    assert 1 <= page["count"] == len(page["events"]) < 6
    assert sum(len(json.dumps(e["data"], ensure_ascii=False)) for e in page["events"]) <= MAX_PAGE_CHARS
    assert page["events"][0]["data"]["text"] == tricky * 2000
    assert page["events"][0]["data"]["nested"] == {"list": [1, 2.5, None, True, {}], "none": None}
    assert page == structured(in_process)
    assert over_the_wire.content == in_process.content and over_the_wire.meta == in_process.meta
    assert structured(newest)["events"] == page["events"][-1:]


def test_a_request_the_transport_cannot_read_is_answered_with_its_own_id_or_served_mended() -> None:
    """A lone surrogate escape (valid JSON, but no valid text) is mended to U+FFFD and the request served; a request
    nested deeper than the transport reads, cut short, or not a JSON-RPC message is answered with its id."""
    deep = '{"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {"name": "execRun", "arguments": {"x": '
    lines = [
        call(40, "execRun", {"command": "printf 'a\\ud800b\\udc00c\\ud83d'"}).replace("\\\\u", "\\u").encode(),
        b'{"jsonrpc": "2.0", "id": 41, "method": "ping\\udcff"}',
        deep.encode() + b"[" * 5000 + b"]" * 5000 + b"}}}",
        b'{"jsonrpc": "2.0", "id": "req-43", "method": "ping"',
        b'{"jsonrpc": "2.0", "id": 44, "params": {"id": 1}}',
        call(45, "execRun", {"command": "printf 'x\\355\\240\\200y'"}).encode(),
        call(46, "storeEvent", {"type": "t\\udfff", "data": {"k\\ud800": "v"}}).replace("\\\\u", "\\u").encode(),
        b'{"jsonrpc": "2.0", "id": 47, "method": "ping"}',
    ]
    with RawStdio() as server:
        for line in lines:
            server.send(line)
        answers = {json.loads(line)["id"]: json.loads(line) for line in server.lines(len(lines))}
        assert server.alive(), server.stderr()
    assert sorted(answers, key=str) == sorted([40, 41, 42, "req-43", 44, 45, 46, 47], key=str), answers
    assert answers[40]["result"]["structuredContent"]["stdout"] == "a\ufffdb\ufffdc\ufffd"
    assert answers[41]["error"]["code"] == -32601  # served: the method (mended) does not exist
    assert answers[42]["error"] == {"code": -32600, "message": "Invalid Request: nested deeper than the server reads"}
    assert answers["req-43"]["error"]["code"] == -32700
    assert answers[44]["error"]["code"] == -32600
    assert not answers[45]["result"]["isError"]  # the command printed a surrogate as UTF-8: read as U+FFFD
    assert answers[46]["result"]["structuredContent"]["type"] == "t\ufffd"
    assert answers[47]["result"] == {}


def call(request_id: int, tool: str, arguments: dict[str, Any]) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    )
