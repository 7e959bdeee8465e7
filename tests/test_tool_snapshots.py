"""Every tool's published input and output schema, in every toolset with every provider configured, against a
snapshot under tests/snapshots/ (as github-mcp-server's toolsnaps): a schema change is a reviewed diff, not an
accident. After an intended change: UPDATE_TOOL_SNAPSHOTS=1 pytest tests/test_tool_snapshots.py, then review
and commit the JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import CREDENTIAL_ENV, connect

SNAPSHOTS = Path(__file__).parent / "snapshots"


async def published_tools() -> dict[str, dict[str, object]]:
    async with connect() as client:
        tools = (await client.list_tools()).tools
    return {
        t.name: {
            "title": t.title,
            "description": t.description,
            "annotations": t.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
            if t.annotations
            else None,
            "inputSchema": t.input_schema,
            "outputSchema": t.output_schema,
        }
        for t in tools
    }


async def test_every_tool_schema_matches_its_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
    for name in CREDENTIAL_ENV:
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("RUNTIMES_MCP_RAY_ADDRESS", "127.0.0.1:6379")  # connected on first use: not here
    tools = await published_tools()
    SNAPSHOTS.mkdir(exist_ok=True)
    changed = []
    for name, published in tools.items():
        path = SNAPSHOTS / f"{name}.json"
        text = json.dumps(published, indent=2, sort_keys=True) + "\n"
        if os.environ.get("UPDATE_TOOL_SNAPSHOTS") == "1":
            path.write_text(text, encoding="utf-8")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            changed.append(name)
    stale = sorted(p.stem for p in SNAPSHOTS.glob("*.json") if p.stem not in tools)
    assert not changed and not stale, (
        f"tool schemas changed: {changed}; snapshots of tools that are gone: {stale}. If intended, run "
        "UPDATE_TOOL_SNAPSHOTS=1 pytest tests/test_tool_snapshots.py and commit tests/snapshots/ after review."
    )
