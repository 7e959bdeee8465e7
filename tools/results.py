"""A provider's pydantic result as an MCP tool result."""

from __future__ import annotations

from contextvars import ContextVar

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from providers.models import EventList

# True on a connection whose writer sends pages of events as they are stored (server/stdio_pipes.py): a page
# then travels as JSON text under ROWS_META, and that writer builds the reply's text and structuredContent from
# it. A page as Python objects takes several times its size, and the SDK copies those objects on the way.
ROWS_WIRE: ContextVar[bool] = ContextVar("runtimes_mcp_rows_wire", default=False)
ROWS_META = "runtimes-mcp/event-rows"


def as_tool_result(result: BaseModel) -> CallToolResult:
    """structuredContent in full; the text an agent reads is compact JSON without the empty fields
    (the SDK's default is indented JSON with every null, which costs tokens on every call)."""
    structured = result.model_dump(mode="json")
    rows = result.rows if isinstance(result, EventList) else None
    if rows is not None:  # for the writer to fill in: `events` is empty, the events are the rows
        return CallToolResult(
            content=[TextContent(type="text", text="")], structured_content=structured, _meta={ROWS_META: rows}
        )
    return CallToolResult(
        content=[TextContent(type="text", text=result.model_dump_json(exclude_none=True))],
        structured_content=structured,
    )
