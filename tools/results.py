"""A provider's pydantic result as an MCP tool result."""

from __future__ import annotations

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel


def as_tool_result(result: BaseModel) -> CallToolResult:
    """structuredContent in full; the text an agent reads is compact JSON without the empty fields
    (the SDK's default is indented JSON with every null, which costs tokens on every call)."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.model_dump_json(exclude_none=True))],
        structured_content=result.model_dump(mode="json"),
    )
