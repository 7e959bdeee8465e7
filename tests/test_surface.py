"""The tool surface an MCP client sees: names, schemas, annotations, provider checks, toolsets."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.types import Tool

from server.app import create_server
from server.config import load_settings
from tests.conftest import CREDENTIAL_ENV, DEFAULT_TOOLS, HEADLINE_NAMES, connect, error_text, structured
from tools.catalog import ALL, HEADLINE


async def test_default_surface_is_the_headline_tools_getsession_and_docs() -> None:
    async with connect() as client:
        tools = (await client.list_tools()).tools
    assert [t.name for t in tools] == DEFAULT_TOOLS


async def test_every_tool_has_schemas_and_truthful_annotations() -> None:
    async with connect() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for tool in tools.values():
        assert tool.description and tool.title is None  # a title would repeat the name for 20 bytes a tool
        assert tool.output_schema and tool.output_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
        assert tool.annotations is not None
    read_only = {name for name, t in tools.items() if hint(t, "read_only_hint")}
    assert read_only == {"listSessions", "getSession", "getLaunchers", "getEvents", "readFile", "getDocs"}
    assert hint(tools["writeFile"], "destructive_hint") is True
    assert hint(tools["stopSession"], "destructive_hint") is True
    assert hint(tools["storeEvent"], "destructive_hint") is False
    # a command may delete what it can write: a tool that runs one is never called non-destructive
    assert hint(tools["execRun"], "destructive_hint") is True and hint(tools["invokeRoutine"], "destructive_hint")
    assert hint(tools["execRun"], "idempotent_hint") is False
    assert hint(tools["stopSession"], "idempotent_hint") is True
    assert all(t.annotations.open_world_hint is None for t in tools.values())  # type: ignore[union-attr]
    # idempotent says nothing of a read-only tool (the spec): not sent
    assert all(t.annotations.idempotent_hint is None for n, t in tools.items() if n in read_only)  # type: ignore[union-attr]


# The spec's defaults for hints a server leaves out (we omit those to keep tools/list small).
HINT_DEFAULTS = {"read_only_hint": False, "destructive_hint": True, "idempotent_hint": False, "open_world_hint": True}


def hint(tool: Tool, name: str) -> bool:
    value = getattr(tool.annotations, name)
    return HINT_DEFAULTS[name] if value is None else bool(value)


async def test_arguments_are_flat_and_only_those_of_configured_providers() -> None:
    async with connect() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    exec_props = tools["execRun"].input_schema["properties"]
    assert list(exec_props) == [
        "command",
        "cwd",
        "workspace",
        "env",
        "stdin",
        "interactive",
        "ports",
        "timeout_s",
        "wait",
        "wait_s",
    ]
    assert tools["execRun"].input_schema["required"] == ["command"]
    assert "sprite" not in tools["listSessions"].input_schema["properties"]
    # one provider offers it: nothing to choose, so not listed; still taken, and checked
    async with connect() as client:
        named = structured(await client.call_tool("execRun", {"command": "echo hi", "provider": "local"}))
        other = error_text(await client.call_tool("execRun", {"command": "true", "provider": "xano"}))
    assert named["stdout"] == "hi\n" and "not configured" in other and "XANO_ACCESS_TOKEN" in other


async def test_configured_provider_joins_the_enum_and_its_arguments_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XANO_ACCESS_TOKEN", "x")
    async with connect() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    schema = tools["execRun"].input_schema
    assert schema["properties"]["provider"]["enum"] == ["local", "xano"]
    assert {"doc", "project_id", "run_id", "session_id", "args"} <= set(schema["properties"])
    assert "required" not in schema  # command is local-only now
    assert "(local)" in schema["properties"]["command"]["description"]
    assert "provider" not in tools["getLaunchers"].input_schema["properties"]  # only local offers it


async def test_unknown_argument_is_rejected_not_ignored() -> None:
    async with connect() as client:
        text = error_text(await client.call_tool("execRun", {"command": "true", "sprite": "x"}))
    assert "unknown argument(s) sprite" in text and "execRun takes: command" in text
    assert "errors.pydantic.dev" not in text


async def test_provider_errors_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPRITES_TOKEN", "s")
    async with connect() as client:
        unconfigured = error_text(await client.call_tool("execRun", {"command": "true", "provider": "xano"}))
        unsupported = error_text(await client.call_tool("execRun", {"command": "true", "provider": "sprites"}))
        unknown = error_text(await client.call_tool("execRun", {"command": "true", "provider": "mars"}))
        missing = error_text(await client.call_tool("listSessions", {"provider": "sprites"}))
        foreign = error_text(await client.call_tool("listSessions", {"provider": "local", "sprite": "box"}))
    assert "not configured" in unconfigured and "XANO_ACCESS_TOKEN" in unconfigured
    assert "does not support execRun" in unsupported and "local" in unsupported
    assert "unknown provider 'mars'" in unknown
    assert "needs sprite" in missing
    assert "does not use sprite" in foreign and "status, limit, cursor" in foreign


async def test_toolsets_add_tools_and_read_only_removes_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    async with connect() as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert {"getSession", "getEvents", "listRoutines", "getRoutineRun", "getLauncher"} <= names
    assert "getRoutine" not in names  # archastro-only, archastro not configured

    monkeypatch.setenv("RUNTIMES_MCP_READ_ONLY", "1")
    async with connect() as client:
        tools = (await client.list_tools()).tools
    assert all(t.annotations and t.annotations.read_only_hint for t in tools)
    assert {"execRun", "stopSession", "invokeRoutine", "storeEvent"}.isdisjoint({t.name for t in tools})


async def test_every_seed_capability_is_reachable_with_all_toolsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    for name in CREDENTIAL_ENV:
        monkeypatch.setenv(name, "x")
    async with connect() as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == {spec.name for spec in ALL} | {"getDocs"}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_both_protocol_generations_call_tools(mode: str) -> None:
    async with connect(mode=mode) as client:
        result = structured(await client.call_tool("execRun", {"command": "echo $((6 * 7))"}))
    assert result["stdout"] == "42\n"


def test_headline_tools_and_default_provider() -> None:
    assert [s.name for s in HEADLINE] == HEADLINE_NAMES
    assert load_settings().default_provider == "local"


async def test_default_tools_list_stays_within_its_budget() -> None:
    import json

    async with connect() as client:
        tools = (await client.list_tools()).tools
    wire = json.dumps(
        {"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]}, separators=(",", ":")
    )
    # Eleven tools: the seed tools, getSession to follow a run, getEvents to read back what storeEvent keeps,
    # writeFile and readFile, and getDocs.
    # 12,500 B for every client: a 2025-11-25 one is also sent execution.taskSupport (78 B: test_tasks_2025).
    assert len(wire) <= 12_500 - 78, f"tools/list is {len(wire)} bytes; every agent pays for each one"


async def test_published_output_schemas_validate_real_results(monkeypatch: pytest.MonkeyPatch) -> None:
    import jsonschema

    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    calls = {
        "execRun": {"command": "echo hi"},
        "listSessions": {},
        "getLaunchers": {},
        "getDocs": {"topic": "local"},
        "storeEvent": {"type": "t", "data": {"a": 1}},
        "getEvents": {},
        "listRoutines": {},
        "stopSession": {"session_id": "later"},
        "getSession": {"session_id": "later"},
    }
    async with connect() as client:
        schemas = {t.name: t.output_schema for t in (await client.list_tools()).tools}
        session = structured(await client.call_tool("execRun", {"command": "echo hi"}))["session_id"]
        for tool, arguments in calls.items():
            arguments = {k: (session if v == "later" else v) for k, v in arguments.items()}
            result = structured(await client.call_tool(tool, arguments))
            jsonschema.validate(result, schemas[tool])


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_tool_this_server_does_not_offer_is_explained(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    async with connect(mode=mode) as client:
        toolset = error_text(await client.call_tool("listFiles", {"workspace": "w"}))
        unknown = error_text(await client.call_tool("launchRocket", {}))
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    async with connect(mode=mode) as client:
        provider = error_text(await client.call_tool("getRoutine", {"routine": "r"}))
    monkeypatch.setenv("RUNTIMES_MCP_READ_ONLY", "1")
    async with connect(mode=mode) as client:
        read_only = error_text(await client.call_tool("execRun", {"command": "true"}))
    assert "`workspaces` toolset" in toolset
    assert "Next: start the server with RUNTIMES_MCP_TOOLSETS=workspaces" in toolset
    assert unknown.startswith("Unknown tool launchRocket. Next: call one of listSessions, execRun")
    assert "no provider that serves it is configured" in provider and "ARCHASTRO_API_KEY" in provider
    assert "read-only" in read_only and "RUNTIMES_MCP_READ_ONLY" in read_only


async def test_a_server_without_authentication_says_why_it_runs_no_command() -> None:
    async with Client(create_server(load_settings(), local_code=False)) as client:
        text = error_text(await client.call_tool("execRun", {"command": "true"}))
    assert "--insecure-no-auth" in text and "--unauthenticated-local-exec" in text and "XANO" not in text
