"""Every tool's input fuzzed from its own JSON schema, and with arbitrary JSON: the server answers every
call with a result or a readable tool error, never crashes, and no traceback reaches the client."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from mcp import Client

from server.app import create_server
from server.config import load_settings

TOOLS = [
    "listSessions",
    "execRun",
    "stopSession",
    "invokeRoutine",
    "getLaunchers",
    "storeEvent",
    "getDocs",
    "getSession",
    "getEvents",
    "listRoutines",
    "getRoutineRun",
    "getLauncher",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[BlockingPortal, Client, dict[str, Any]]]:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    with start_blocking_portal() as portal:
        client = Client(create_server(load_settings()))
        with portal.wrap_async_context_manager(client):
            tools = {t.name: t.input_schema for t in portal.call(client.list_tools).tools}
            yield portal, client, tools


def safe_schema(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    if name == "execRun":  # fuzz everything but the command line itself: random text must never run
        schema["properties"]["command"] = {"const": "true"}
        schema["properties"]["timeout_s"] = {"type": "number", "minimum": 0.001, "maximum": 5}
    return schema


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_survives_fuzzed_input(tool: str, live: tuple[BlockingPortal, Client, dict[str, Any]]) -> None:
    portal, client, tools = live
    schema = safe_schema(tool, tools[tool])
    names = [*schema.get("properties", {}), "unexpected"]
    arbitrary = st.dictionaries(st.sampled_from(names), json_values, max_size=4)
    if tool == "execRun":
        arbitrary = arbitrary.map(lambda args: {**args, "command": "true"} if "command" in args else args)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(arguments=from_schema(schema) | arbitrary)
    def check(arguments: dict[str, Any]) -> None:
        result = portal.call(client.call_tool, tool, arguments)
        text = "\n".join(getattr(block, "text", "") for block in result.content)
        assert "Traceback" not in text and 'File "' not in text
        if result.is_error:
            assert text.startswith(f"Error executing tool {tool}"), text
            assert "failed inside the server" not in text, f"a bug surfaced for {json.dumps(arguments)}: {text}"
        else:
            assert result.structured_content is not None

    check()
    alive = portal.call(client.call_tool, "getDocs", {})
    assert not alive.is_error
