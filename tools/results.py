"""A provider's pydantic result as an MCP tool result."""

from __future__ import annotations

from contextvars import ContextVar

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from providers.models import EventList


class RowsHandoff:
    """One HTTP request's page of events, handed by the tool to the reply's writer (server/http_rows.py), which
    puts the rows where the reply marks them: the SDK then dumps and frames a reply of a few hundred bytes."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: list[str] | None = None


# Set on a connection whose writer sends pages of events as they are stored: True for the stdio pipes
# (server/stdio_pipes.py), where the rows travel in the result under ROWS_META; a RowsHandoff for an HTTP
# request, where ROWS_META holds their count. That writer builds the reply's text and structuredContent from
# the rows. A page as Python objects takes several times its size, and the SDK copies those objects on the way.
ROWS_WIRE: ContextVar[bool | RowsHandoff] = ContextVar("runtimes_mcp_rows_wire", default=False)
ROWS_META = "runtimes-mcp/event-rows"


def as_tool_result(result: BaseModel) -> CallToolResult:
    """structuredContent in full; the text an agent reads is compact JSON without the empty fields
    (the SDK's default is indented JSON with every null, which costs tokens on every call)."""
    structured = result.model_dump(mode="json")
    rows = result.rows if isinstance(result, EventList) else None
    if rows is not None:  # for the writer to fill in: `events` is empty, the events are the rows
        handoff = ROWS_WIRE.get()
        carried: list[str] | int = rows
        if isinstance(handoff, RowsHandoff):
            handoff.rows, carried = rows, len(rows)
        return CallToolResult(
            content=[TextContent(type="text", text="")], structured_content=structured, _meta={ROWS_META: carried}
        )
    return CallToolResult(
        content=[TextContent(type="text", text=result.model_dump_json(exclude_none=True))],
        structured_content=structured,
    )
