"""A provider's pydantic result as an MCP tool result."""

from __future__ import annotations

import json

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from providers.answers import safe_value


def as_tool_result(result: BaseModel) -> CallToolResult:
    """structuredContent in full; the text an agent reads is compact JSON without the empty fields
    (the SDK's default is indented JSON with every null, which costs tokens on every call). Both are valid JSON
    whatever came from outside: text with lone surrogates is mended, NaN and Infinity are null (providers'
    answers are made so as they are read; this is the last check before the wire)."""
    # python mode: pydantic's json mode would mend keys with a lone surrogate its own way (three U+FFFD)
    structured = safe_value(result.model_dump())
    try:
        text = result.model_dump_json(exclude_none=True)  # NaN and Infinity come out as null
    except ValueError:  # pydantic's serialization error: text that is not valid Unicode. Mend it, then write it
        mended = safe_value(result.model_dump(exclude_none=True))
        text = json.dumps(mended, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)
