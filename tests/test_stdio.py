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
from tools.results import ROWS_META


async def test_stdio_client_sees_the_default_tools_with_schemas_and_annotations() -> None:
    async with Client(stdio_params()) as client:
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == DEFAULT_TOOLS
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


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


async def test_an_events_page_over_stdio_says_what_the_sdk_serializer_says(monkeypatch: Any) -> None:
    """Over stdio, a getEvents page is written from the events' stored JSON, never parsed (the rows path)."""
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "events")
    async with Client(stdio_params()) as client:
        await check_an_events_page_against_the_sdk(client)


async def check_an_events_page_against_the_sdk(client: Client) -> None:
    """Against an in-process client on the same data (the SDK's own serialization), a page read through `client`
    must carry the same events, text and page, for data with unicode, quotes, control characters and nulls, in a
    page cut for size; only null fields are left out of its structuredContent, which shows it came from the rows."""
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

    page, reference = structured(over_the_wire), structured(in_process)
    assert page["truncated"] and "since" in page["message"]
    assert 1 <= page["count"] == len(page["events"]) < 6
    assert sum(len(json.dumps(e["data"], ensure_ascii=False)) for e in page["events"]) <= MAX_PAGE_CHARS
    assert page["events"][0]["data"]["text"] == tricky * 2000
    assert page["events"][0]["data"]["nested"] == {"list": [1, 2.5, None, True, {}], "none": None}
    assert _without_nulls(page) == _without_nulls(reference)
    assert json.loads(over_the_wire.content[0].text) == json.loads(in_process.content[0].text)  # type: ignore[union-attr]
    assert over_the_wire.meta is None or ROWS_META not in over_the_wire.meta
    # The SDK path gives `workspace_id: null`; the rows path leaves it out: this reply came from the rows.
    assert "workspace_id" not in page["events"][0] and reference["events"][0]["workspace_id"] is None
    assert structured(newest)["events"] == page["events"][-1:]


async def test_the_rows_writer_keeps_the_reply_envelope() -> None:
    """The rows path builds the reply's envelope itself: the request id (any JSON-RPC id), isError, resultType
    and other _meta keys come through as the SDK would write them, and the rows' own _meta key does not."""
    from mcp.types import CallToolResult, JSONRPCResponse

    from providers.models import Event, event_json, event_list, event_rows_list
    from server.stdio_pipes import PipeWriter
    from tools.results import ROWS_META, as_tool_result

    events = [
        Event(id=f"evt_{n}", sandbox_id="s", type='t"', data={"k": 'v "é"\n', "n": [n, None]}, timestamp=n)
        for n in range(3)
    ]
    rows = [event_json(e.id, e.sandbox_id, e.type, json.dumps(e.data), e.timestamp) for e in events]
    sent = as_tool_result(event_rows_list("local", "s", rows, 2, True, 0))
    expected = as_tool_result(event_list("local", "s", events, True, 0))
    assert sent.meta == {ROWS_META: rows}

    class Pipe:
        def __init__(self) -> None:
            self.data = bytearray()
            self.transport = self

        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            self.data += data

        async def drain(self) -> None:
            pass

    def reply(result: CallToolResult, request_id: str | int) -> JSONRPCResponse:
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        meta = {**dumped.get("_meta", {}), "io.example/stamp": {"name": "x"}}
        return JSONRPCResponse(jsonrpc="2.0", id=request_id, result={**dumped, "_meta": meta, "resultType": "complete"})

    for request_id in ('q"1\n', 7):
        pipe = Pipe()
        await PipeWriter(pipe)._send_event_rows(reply(sent, request_id), rows)  # type: ignore[arg-type]
        assert pipe.data.endswith(b"}\n") and pipe.data.count(b"\n") == 1
        ours = json.loads(pipe.data)
        theirs = json.loads(reply(expected, request_id).model_dump_json(by_alias=True, exclude_unset=True))
        assert ours["id"] == request_id and ours["result"]["_meta"] == {"io.example/stamp": {"name": "x"}}
        assert json.loads(ours["result"]["content"][0]["text"]) == json.loads(theirs["result"]["content"][0]["text"])
        assert [block["type"] for block in ours["result"]["content"]] == ["text"]
        rest = [{k: v for k, v in r["result"].items() if k != "content"} for r in (ours, theirs)]
        assert _without_nulls(rest[0]) == _without_nulls(rest[1])
        assert rest[0]["structuredContent"]["events"][2]["data"] == {"k": 'v "é"\n', "n": [2, None]}


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
