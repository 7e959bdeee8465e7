"""The server as clients launch it: a real `runtimes-mcp` process over stdio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mcp import Client

from tests.conftest import stdio_params, structured


async def test_stdio_client_sees_eight_tools_with_schemas_and_annotations() -> None:
    async with Client(stdio_params()) as client:
        tools = (await client.list_tools()).tools
        assert len(tools) == 8
        assert all(t.output_schema and t.annotations and t.title for t in tools)
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
        assert 1.5 < took < 10, took
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
        await pipes.stdout.write("wire:" + line)
        await pipes.stdout.flush()
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
    """-32700 for what is not JSON (or too long to read), -32600 for JSON that is not a JSON-RPC message; each
    with id null, at once, and the next request is served."""
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
    assert errors == [(None, -32700), (None, -32600), (None, -32700), (None, -32700), (None, -32700)], answers
    assert "longer than 64 MB" in str(answers[4])
    assert answers[-1] == {"jsonrpc": "2.0", "id": 7, "result": {}}


def test_a_large_reply_written_as_it_is_encoded_is_the_same_json_and_never_interleaved(tmp_path: Path) -> None:
    """Replies over STREAM_ABOVE_CHARS of text are encoded piece by piece: the line must parse to exactly what
    the SDK's serializer gives, with unicode, quotes and control characters intact, and a parse-error answer
    sent meanwhile must come as a line of its own."""
    import os
    import select

    from server.stdio_pipes import STREAM_ABOVE_CHARS

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
    assert len(text) > STREAM_ABOVE_CHARS, "the reply is small enough for the one-piece path"
    events = result["structuredContent"]["events"]  # type: ignore[index]
    assert [e["data"] for e in json.loads(text)["events"]] == [e["data"] for e in events]  # text drops nulls only
    assert [e["data"]["text"] for e in events] == [tricky * 4000] * len(events)
    assert events[0]["data"]["nested"] == {"list": [1, 2.5, None, True, "x"]}


def test_the_streamed_encoding_matches_the_sdk_serializer_byte_for_byte() -> None:
    from mcp.types import JSONRPCResponse

    from server.stdio_pipes import STREAM_ENCODER

    result = {
        "content": [{"type": "text", "text": 'é "q" \u2028 \U0001f600 \x01'}],
        "structuredContent": {"a": [1, 2.5, None]},
    }
    message = JSONRPCResponse(jsonrpc="2.0", id=7, result=result)
    ours = '{"jsonrpc":"2.0","id":7,"result":' + "".join(STREAM_ENCODER.iterencode(result)) + "}"
    assert ours.encode() == message.__pydantic_serializer__.to_json(message, by_alias=True, exclude_unset=True)
