"""Documentation topics: links hold, every tool and provider is covered, getDocs and docs:// serve them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from mcp import MCPError

from docs_topics import TOPICS, Topic, offered, render
from docs_topics.model import TOOL_WORD
from providers.registry import PROVIDERS
from tests.conftest import DEFAULT_TOOLS, connect, error_text, structured
from tools.catalog import ALL, HEADLINE

TOOL_NAMES = {spec.name for spec in ALL} | {"getDocs"}
ENDPOINTS = [e for p in PROVIDERS.values() for e in p.endpoints]


def test_every_tool_named_by_a_topic_exists() -> None:
    for topic in TOPICS.values():
        for endpoint in topic.endpoints:
            assert endpoint.tool_name in TOOL_NAMES, (topic.topic, endpoint.tool_name)


def test_every_headline_tool_and_every_endpoint_is_documented() -> None:
    documented = {e.tool_name for t in TOPICS.values() for e in t.endpoints}
    assert {spec.name for spec in HEADLINE} <= documented
    paths = {(e.method, e.path) for t in TOPICS.values() for e in t.endpoints}
    for endpoint in ENDPOINTS:
        assert (endpoint.method, endpoint.path) in paths, endpoint.path


def test_endpoint_tools_serve_that_provider() -> None:
    by_name = {spec.name: spec for spec in ALL}
    for endpoint in ENDPOINTS:
        assert endpoint.provider in by_name[endpoint.tool_name].providers, endpoint


def test_related_topics_exist_and_every_provider_has_a_topic() -> None:
    for topic in TOPICS.values():
        assert set(topic.related_topics) <= set(TOPICS), topic.topic
    for provider in PROVIDERS:
        assert any(name == provider or name.startswith(f"{provider}-") for name in TOPICS), provider


def test_full_rendering_adds_parameters_and_examples() -> None:
    compact, full = render(TOPICS["xano"]), render(TOPICS["xano"], "full")
    assert len(full) > len(compact)
    assert "`project_id` (string, required): Xano project UUID." in full  # the tool argument an agent sends
    assert "on the wire: `project_id` (path)" in full and "`doc` (body)" in full
    assert "`page` (integer ≥ 1, optional)" in full  # no 2**53 - 1 bound printed
    assert "detail=full" in compact


async def test_get_docs_without_topic_is_the_table_of_contents() -> None:
    async with connect() as client:
        result = await client.call_tool("getDocs", {})
    data = structured(result)
    assert "topic" not in data  # an empty field is left out
    assert [t["topic"] for t in data["topics"]] == list(offered(set())) == [t for t in TOPICS if t != "ray"]
    text = result.content[0].text  # type: ignore[union-attr]
    for name in ("local", "sprites", "xano", "archastro-routines", "decthings", "computesdk"):
        assert f"`{name}`" in text


async def test_get_docs_topic_is_markdown_and_unknown_topic_is_rejected() -> None:
    async with connect() as client:
        result = await client.call_tool("getDocs", {"topic": "local", "detail": "full"})
        bad = await client.call_tool("getDocs", {"topic": "nope"})
    assert structured(result)["topic"] == "local"
    assert result.content[0].text.startswith("# Local provider")  # type: ignore[union-attr]
    assert "overview" in error_text(bad)


async def test_docs_resources_are_listed_and_read() -> None:
    async with connect() as client:
        uris = [str(r.uri) for r in (await client.list_resources()).resources]
        assert uris == [f"docs://{name}" for name in offered(set())]
        read = await client.read_resource("docs://computesdk")
        assert "storeEvent" in read.contents[0].text  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await client.read_resource("docs://missing")


def _prose(topic: Any) -> list[str]:
    texts = [topic.description, *topic.ai_hints]
    for pattern in topic.patterns:
        texts += [*pattern.steps, pattern.example or ""]
    texts += [example.description for example in topic.examples]
    return texts


def prose_problems(topics: Any) -> list[str]:
    """Hand-written hints, patterns and examples that name a tool that does not exist, or give a tool an
    argument it does not take. After a tool's name, `name=value` and bare snake_case names up to the first
    other word are its arguments."""
    specs = {spec.name: spec for spec in ALL}
    problems = []
    for topic in topics:
        for text in _prose(topic):
            for match in TOOL_WORD.finditer(text):
                tool = match.group(1)
                if tool not in TOOL_NAMES:
                    problems.append(f"{topic.topic}: no tool {tool}")
                    continue
                takes = {"provider", "topic", "detail"} | (
                    {a.name for a in specs[tool].args} if tool in specs else set()
                )
                for word in text[match.end() :].split():
                    name, assigned, _ = word.strip("`,()").partition("=")
                    if not assigned and not re.fullmatch(r"[a-z]+_[a-z_]+", name):
                        break
                    if name not in takes:
                        problems.append(f"{topic.topic}: {tool} takes no argument {name}")
    return problems


def test_topic_prose_names_only_real_tools_and_arguments_they_take() -> None:
    assert prose_problems(TOPICS.values()) == []


async def test_prose_marks_a_suggested_tool_this_server_does_not_offer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A topic suggests tools of every toolset and provider; on a server that does not offer one, its first
    mention says what would (the run-and-watch topic once suggested getEvents to servers without it)."""
    monkeypatch.setenv("RUNTIMES_MCP_RAY_ADDRESS", "127.0.0.1:6379")  # its topic is offered when it is configured
    async with connect() as client:
        for name, topic in TOPICS.items():
            text = (await client.call_tool("getDocs", {"topic": name})).content[0].text  # type: ignore[union-attr]
            mentioned = {m.group(1) for t in _prose(topic) for m in TOOL_WORD.finditer(t)} & TOOL_NAMES
            for tool in mentioned - set(DEFAULT_TOOLS):
                assert f"{tool} (not offered here: " in text, (name, tool)
            for tool in mentioned & set(DEFAULT_TOOLS):
                assert f"{tool} (not offered here" not in text, (name, tool)
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    async with connect() as client:
        text = (await client.call_tool("getDocs", {"topic": "workspaces"})).content[0].text  # type: ignore[union-attr]
    assert "listFiles" in text and "(not offered here" not in text


def test_the_prose_check_catches_a_renamed_tool_and_a_foreign_argument() -> None:
    bad = Topic(
        topic="t",
        title="t",
        description="Call renameSession first.",
        ai_hints=["getSession session_id run_id=1 then wait", "listSessions status=running limit=5"],
    )
    assert prose_problems([bad]) == ["t: no tool renameSession", "t: getSession takes no argument run_id"]


async def test_docs_give_tool_arguments_as_json_types_and_say_how_to_enable_a_tool(
    monkeypatch: pytest.MonkeyPatch, api: Any
) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "")  # every provider configured (the `api` fake), no toolset
    async with connect() as client:
        text = (await client.call_tool("getDocs", {"topic": "archastro-routines", "detail": "full"})).content[0].text  # type: ignore[union-attr]
    runs = text[text.index("tool `listRoutineRuns`") :]
    first = runs.split("\n")[0]
    assert first.startswith("tool `listRoutineRuns` (not offered here: enable the `routines` toolset, ")
    assert "RUNTIMES_MCP_TOOLSETS=routines)" in first
    assert "`status` (one of pending, running, completed, failed, skipped, optional)" in runs
    assert "`limit` (integer 1–100, optional)" in runs
    assert "on the wire: `routine` (path), `status` (query)" in runs
    invoke = text[text.index("tool `invokeRoutine`") :].split("\n")
    assert "not offered" not in invoke[0]  # a headline tool, archastro configured
    assert any(line.startswith("    - `message` (string, required)") for line in invoke)

    monkeypatch.delenv("ARCHASTRO_API_KEY")
    async with connect() as client:  # still no toolset
        text = (await client.call_tool("getDocs", {"topic": "archastro-routines"})).content[0].text  # type: ignore[union-attr]
    assert "tool `invokeRoutine` (not offered here: set ARCHASTRO_API_KEY)" in text

    monkeypatch.setenv("ARCHASTRO_API_KEY", "sk-test")
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    async with connect() as client:
        text = (await client.call_tool("getDocs", {"topic": "archastro-routines", "detail": "full"})).content[0].text  # type: ignore[union-attr]
        resource = (await client.read_resource("docs://archastro-routines")).contents[0].text  # type: ignore[union-attr]
    assert "not offered here" not in text and "not offered here" not in resource


# Every endpoint the provider contracts (the seeds) name, written out here so that dropping one fails a test.
SEED_ENDPOINTS = {
    "sprites": {("GET", "/v1/sprites/{}/exec"), ("POST", "/v1/sprites/{}/exec/{}/kill")},
    "xano": {
        ("GET", "/project/{}/run/session"),
        ("GET", "/project/{}/run/{}/session"),
        ("GET", "/project/{}/run"),
        ("GET", "/session/{}"),
        ("POST", "/project/{}/run/exec"),
        ("POST", "/project/{}/run/{}/exec"),
        ("POST", "/session/{}/exec"),
        ("POST", "/project/{}/run/{}/session/{}/stop"),
        ("POST", "/session/{}/access"),
        ("PATCH", "/session/{}"),
        ("GET", "/session/{}/sink"),
        ("POST", "/project/{}/doc/info"),
    },
    "archastro": {
        ("POST", "/api/v1/agent_routines/{}/invoke"),
        ("GET", "/api/v1/agent_routines/runs/{}"),
        ("GET", "/api/v1/agent_routines/{}/runs"),
        ("GET", "/api/v1/agent_routines"),
        ("GET", "/api/v1/agent_routines/{}"),
        ("PATCH", "/api/v1/agent_routines/{}"),
        ("DELETE", "/api/v1/agent_routines/{}"),
        ("GET", "/api/v1/agent_routines/presets"),
        ("POST", "/api/v1/agent_routines/{}/activate"),
        ("POST", "/api/v1/agent_routines/{}/pause"),
        ("GET", "/api/v1/agent_sessions"),
        ("POST", "/api/v1/agent_sessions"),
        ("GET", "/api/v1/agent_sessions/{}"),
        ("PATCH", "/api/v1/agent_sessions/{}"),
        ("DELETE", "/api/v1/agent_sessions/{}"),
        ("POST", "/api/v1/agent_sessions/{}/cancel"),
        ("POST", "/api/v1/agent_sessions/{}/message"),
    },
    "decthings": {("POST", "/PersistentLauncher/getPersistentLaunchers")},
    "computesdk": {("POST", "/events"), ("GET", "/events/{}")},
}


def test_every_seed_endpoint_is_reachable_through_a_tool_of_some_toolset() -> None:
    specs = {spec.name: spec for spec in ALL}
    for provider, wanted in SEED_ENDPOINTS.items():
        served = {(e.method, re.sub(r"\{[^}]*\}", "{}", e.path)): e.tool_name for e in PROVIDERS[provider].endpoints}
        assert wanted <= served.keys(), (provider, wanted - served.keys())
        for endpoint, tool in served.items():
            assert provider in specs[tool].providers, (provider, endpoint, tool)


def test_full_topics_print_json_types_never_python_ones() -> None:
    python = re.compile(r"\b(?:dict|list|tuple|set)\[|\bNoneType\b|typing\.|providers\.models|\bstr \||\| None\b")
    for topic in TOPICS.values():
        full = render(topic, "full")
        assert not python.search(full), (topic.topic, python.search(full))
    assert "`running` array of RunningItem" in render(TOPICS["decthings"], "full")
