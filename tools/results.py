"""A provider's pydantic result as an MCP tool result."""

from __future__ import annotations

import json
from contextvars import ContextVar

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from providers.answers import safe_value
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
    (the SDK's default is indented JSON with every null, which costs tokens on every call). Both are valid JSON
    whatever came from outside: text with lone surrogates is mended, NaN and Infinity are null (providers'
    answers are made so as they are read; this is the last check before the wire)."""
    # python mode: pydantic's json mode would mend keys with a lone surrogate its own way (three U+FFFD)
    structured = safe_value(result.model_dump())
    rows = result.rows if isinstance(result, EventList) else None
    if rows is not None:  # for the writer to fill in: `events` is empty, the events are the rows
        handoff = ROWS_WIRE.get()
        carried: list[str] | int = rows
        if isinstance(handoff, RowsHandoff):
            handoff.rows, carried = rows, len(rows)
        return CallToolResult(
            content=[TextContent(type="text", text="")], structured_content=structured, _meta={ROWS_META: carried}
        )
    try:
        text = result.model_dump_json(exclude_none=True)  # NaN and Infinity come out as null
    except ValueError:  # pydantic's serialization error: text that is not valid Unicode. Mend it, then write it
        mended = safe_value(result.model_dump(exclude_none=True))
        text = json.dumps(mended, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)
