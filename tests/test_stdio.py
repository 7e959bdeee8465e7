"""The server as clients launch it: a real `runtimes-mcp` process over stdio."""

from __future__ import annotations

from mcp import Client

from tests.conftest import stdio_params, structured


async def test_stdio_client_sees_seven_tools_with_schemas_and_annotations() -> None:
    async with Client(stdio_params()) as client:
        tools = (await client.list_tools()).tools
        assert len(tools) == 7
        assert all(t.output_schema and t.annotations and t.title for t in tools)
        result = structured(await client.call_tool("execRun", {"command": "printf stdio-ok"}))
        assert result["stdout"] == "stdio-ok"
        read = await client.read_resource("docs://overview")
        assert "Providers" in read.contents[0].text  # type: ignore[union-attr]
