"""What a client sends that JSON, the store or the wire cannot carry: NaN and Infinity are refused naming the field,
never stored and never sent; lone surrogates are mended; event names are bounded; every provider's page limit
agrees with the schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RawStdio, connect, error_text, structured
from tests.test_error_format import assert_documented_format
from tests.test_hostile_providers import strict_json


def call(request_id: int, tool: str, arguments: str) -> bytes:
    """A tools/call line with `arguments` written as given (JSON readers take NaN and 1e999; json.dumps would too,
    but not every spelling)."""
    return (
        f'{{"jsonrpc": "2.0", "id": {request_id}, "method": "tools/call", '
        f'"params": {{"name": "{tool}", "arguments": {arguments}}}}}'
    ).encode()


NON_FINITE = [
    ("storeEvent", '{"type": "t", "data": {"x": NaN}}', "data.x"),
    ("storeEvent", '{"type": "t", "data": {"x": 1e999}}', "data.x"),
    ("storeEvent", '{"type": "t", "data": {"deep": {"list": [1, -Infinity]}}}', "data.deep.list[1]"),
    ("storeEvent", '{"type": "t", "data": {"x": -1e400}}', "data.x"),
    ("execRun", '{"command": "true", "timeout_s": 1e999}', "timeout_s"),
    ("execRun", '{"command": "true", "env": {"A": Infinity}}', "env.A"),
]


def test_non_finite_numbers_are_refused_naming_the_field_and_never_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "events")
    with RawStdio() as server:
        for n, (tool, arguments, _) in enumerate(NON_FINITE, start=1):
            server.send(call(n, tool, arguments))
        server.send(call(99, "getEvents", '{"limit": 100}'))
        replies = {r["id"]: r for r in (strict_json(line) for line in server.lines(len(NON_FINITE) + 1))}
        assert server.alive(), server.stderr()
    assert replies[99]["result"]["structuredContent"]["count"] == 0
    for n, (_, _, field) in enumerate(NON_FINITE, start=1):
        result = replies[n]["result"]
        text = result["content"][0]["text"]
        assert result["isError"], text
        assert_documented_format(text, f"invalid arguments: {field} is NaN or infinite")


async def test_no_stored_nan_or_infinity_ever_reaches_the_wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Events an older version stored with NaN and Infinity in their data come out with null there."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("RUNTIMES_MCP_DATA_DIR", str(data_dir))
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "events")
    async with connect() as client:
        structured(await client.call_tool("storeEvent", {"type": "old", "data": {"n": 1}}))
    with sqlite3.connect(data_dir / "local.sqlite3") as db:
        db.execute("""UPDATE events SET data = '{"n":NaN,"m":[Infinity,-Infinity],"s":"NaN is a word"}'""")
    with RawStdio() as server:
        server.send(call(1, "getEvents", "{}"))
        server.send(call(2, "getEvents", '{"sandbox_id": "local", "type": "old"}'))
        replies = [strict_json(line) for line in server.lines(2)]
    for reply in replies:
        event = reply["result"]["structuredContent"]["events"][0]
        assert event["data"] == {"n": None, "m": [None, None], "s": "NaN is a word"}
        assert json.loads(reply["result"]["content"][0]["text"])["events"][0]["data"]["n"] is None
    async with connect() as client:  # in process, the parsed path
        page = structured(await client.call_tool("getEvents", {}))
    assert page["events"][0]["data"]["m"] == [None, None]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"type": "t" * 201, "data": {}}, "type: string should have at most 200 characters"),
        ({"type": "t", "data": {}, "sandbox_id": "s" * 201}, "sandbox_id: string should match pattern"),
        ({"type": "t", "data": {}, "sandbox_id": "a/b"}, "sandbox_id: string should match pattern"),
        ({"type": "t", "data": {}, "sandbox_id": "new\nline"}, "sandbox_id: string should match pattern"),
        ({"type": "t", "data": {}, "sandbox_id": "é"}, "sandbox_id: string should match pattern"),
    ],
)
async def test_event_type_and_sandbox_id_are_bounded_in_the_schema(arguments: dict[str, Any], expected: str) -> None:
    async with connect() as client:
        assert_documented_format(error_text(await client.call_tool("storeEvent", arguments)), expected)
        tools = {t.name: t for t in (await client.list_tools()).tools}
    properties = tools["storeEvent"].input_schema["properties"]
    assert properties["type"]["maxLength"] == 200 and "pattern" in properties["sandbox_id"]


async def test_event_type_and_sandbox_id_are_bounded_in_the_provider_too() -> None:
    from providers.errors import InvalidInput
    from providers.local.events import EventLog

    log = EventLog(store=None)  # type: ignore[arg-type]  # refused before anything is stored
    for type_, sandbox_id, expected in [
        ("t" * 201, "local", "type is 201 characters; at most 200"),
        ("t", "x" * 1_000_000, "sandbox_id 'xxxxxxxx"),
        ("t", "sp ace", "is not 1 to 200 letters"),
    ]:
        with pytest.raises(InvalidInput, match=expected):
            await log.record(type_, {}, sandbox_id, durable=True)
    with pytest.raises(InvalidInput, match="data holds NaN"):
        await log.record("t", {"x": float("nan")}, "local", durable=True)


async def test_a_million_character_type_or_sandbox_id_is_refused(tmp_path: Path) -> None:
    async with connect() as client:
        for arguments in ({"type": "t" * 1_000_000, "data": {}}, {"type": "t", "data": {}, "sandbox_id": "s" * 10**6}):
            assert (await client.call_tool("storeEvent", arguments)).is_error


async def test_the_list_sessions_limit_is_one_truth_for_schema_description_and_provider() -> None:
    from providers.models import MAX_SESSIONS_PAGE

    async with connect() as client:
        schema = {t.name: t for t in (await client.list_tools()).tools}["listSessions"].input_schema
        limit = schema["properties"]["limit"]
        assert limit["maximum"] == MAX_SESSIONS_PAGE and f"up to {MAX_SESSIONS_PAGE}" in limit["description"]
        assert not (await client.call_tool("listSessions", {"limit": MAX_SESSIONS_PAGE})).is_error
        over = error_text(await client.call_tool("listSessions", {"limit": MAX_SESSIONS_PAGE + 1}))
    assert_documented_format(over, f"limit: input should be less than or equal to {MAX_SESSIONS_PAGE}")
