"""The SDK privates tools/sdk.py relies on are still where it expects them. When an `mcp` upgrade moves one, the
failing test names the part and what tools/sdk.py needs from it."""

from __future__ import annotations

import inspect
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool

from tests.conftest import connect, structured
from tools import sdk


def test_mcpserver_still_wraps_a_lowlevel_server_with_handlers_and_run() -> None:
    server: MCPServer[Any] = MCPServer("probe")
    inner = getattr(server, "_lowlevel_server", None)
    assert inner is not None, "MCPServer no longer has _lowlevel_server: update tools/sdk.lowlevel"
    for name in ("add_request_handler", "run", "create_initialization_options"):
        assert callable(getattr(inner, name, None)), f"the low-level server lost {name}(): update tools/sdk.py"
    params = list(inspect.signature(inner.add_request_handler).parameters)
    assert params[:3] == ["method", "params_type", "handler"], f"add_request_handler{params}: update tools/sdk.py"


def test_tool_run_and_its_output_schema_are_as_strict_tool_expects() -> None:
    params = list(inspect.signature(Tool.run).parameters)
    assert params == ["self", "arguments", "context", "convert_result"], f"Tool.run{params}: update StrictTool"

    async def probe(ctx: Context[Any, Any]) -> dict[str, int]:
        return {}

    tool = Tool.from_function(probe, structured_output=True)
    assert sdk.generated_output_schema(tool) is not None, "fn_metadata.output_schema is gone: update tools/sdk.py"
    sdk.publish_output_schema(tool, {"type": "object", "title": "published"})
    assert tool.output_schema == {"type": "object", "title": "published"}, "Tool.output_schema no longer follows"


async def test_a_request_session_still_leads_to_its_connection() -> None:
    seen: list[object] = []
    server: MCPServer[Any] = MCPServer("probe")

    @server.tool()
    async def who(ctx: Context[Any, Any]) -> dict[str, bool]:
        seen.append(sdk.connection_of(ctx.session))
        return {"distinct": sdk.connection_of(ctx.session) is not ctx.session}

    from mcp import Client

    async with Client(server, mode="legacy") as client:  # 2025-11-25: one connection for the session
        first = structured(await client.call_tool("who", {}))
        await client.call_tool("who", {})
    assert first["distinct"], "ServerSession has no _connection any more: resource subscriptions would break"
    assert seen[0] is seen[1], "two requests of one connection no longer share their _connection"


async def test_the_product_registers_its_handlers_through_the_adapter() -> None:
    async with connect(mode="legacy") as client:
        await client.subscribe_resource("events://local")
        result = await client.complete(
            {"type": "ref/resource", "uri": "sessions://{session_id}"}, {"name": "session_id", "value": ""}
        )
    assert result.completion.values == []
