"""Documentation topics: links hold, every tool and provider is covered, getDocs and docs:// serve them."""

from __future__ import annotations

import pytest
from mcp import MCPError

from docs_topics import TOPICS, render
from providers.registry import PROVIDERS
from tests.conftest import connect, error_text, structured
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
    assert "`project_id` (uuid, path, required)" in full
    assert "body `doc` (text, required)" in full
    assert "detail=full" in compact


async def test_get_docs_without_topic_is_the_table_of_contents() -> None:
    async with connect() as client:
        result = await client.call_tool("getDocs", {})
    data = structured(result)
    assert data["topic"] is None
    assert [t["topic"] for t in data["topics"]] == list(TOPICS)
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
        assert uris == [f"docs://{name}" for name in TOPICS]
        read = await client.read_resource("docs://computesdk")
        assert "storeEvent" in read.contents[0].text  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await client.read_resource("docs://missing")
