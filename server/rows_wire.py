"""A page of events written to the wire as it is stored (tools.results.ROWS_META): the reply's text and
structuredContent are built from the events' JSON texts a slice at a time, so the page is never held again,
as Python objects or as one string. Shared by the stdio writer and the HTTP replies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tools.results import ROWS_META

PIECES_SLICE = 16 * 1024  # each slice is copied twice (escaped, encoded)
COMPACT: dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}
_ESCAPE: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]  # a JSON string, quoted


def carried_rows(result: Any) -> Any:
    """What a tool result carries under ROWS_META (the rows, or their count when they travel apart), else None."""
    meta = result.get("_meta") if isinstance(result, dict) else None
    return meta.get(ROWS_META) if isinstance(meta, dict) else None


def event_rows_reply(jsonrpc: str, request_id: Any, result: dict[str, Any], rows: list[str]) -> Iterator[bytes]:
    """The JSON-RPC reply whose tool `result` carries a page of events as `rows`, as UTF-8 slices (no newline).
    Its structuredContent is the page with the rows as they are; its text the same JSON without empty fields,
    as a string. The result's other fields and _meta keys are kept, ROWS_META is not."""
    rest = {k: v for k, v in result.items() if k not in ("content", "structuredContent", "_meta")}
    meta = {k: v for k, v in (result.get("_meta") or {}).items() if k != ROWS_META}
    if meta:
        rest["_meta"] = meta
    page = result["structuredContent"]
    envelope = json.dumps({"jsonrpc": jsonrpc, "id": request_id, "result": rest}, **COMPACT)
    head = envelope[:-2] + ("" if envelope.endswith("{}}") else ",")  # into the result object
    text_page = {k: v for k, v in page.items() if v is not None}
    yield from encoded_slices([head, '"content":[{"type":"text","text":"'])
    yield from encoded_slices(_page_pieces(text_page, rows), escaped=True)
    yield from encoded_slices(['"}],"structuredContent":'])
    yield from encoded_slices(_page_pieces(page, rows))
    yield b"}}"


def encoded_slices(pieces: Iterable[str], escaped: bool = False, slice_chars: int = PIECES_SLICE) -> Iterator[bytes]:
    """`pieces` of text (`escaped`: as the inside of a JSON string) as UTF-8, in slices of about `slice_chars`."""
    pending: list[str] = []
    size = 0
    for piece in pieces:
        for start in range(0, len(piece), slice_chars):  # a large piece goes a slice at a time too
            part = piece[start : start + slice_chars] if len(piece) > slice_chars else piece
            pending.append(_ESCAPE(part)[1:-1] if escaped else part)
            size += len(part)
            if size >= slice_chars:
                yield "".join(pending).encode("utf-8")
                pending, size = [], 0
    if pending:
        yield "".join(pending).encode("utf-8")


def _page_pieces(page: dict[str, Any], rows: list[str]) -> Iterator[str]:
    """The JSON of an events page whose `events` are `rows` (JSON texts), in pieces: `events` first."""
    rest = json.dumps({k: v for k, v in page.items() if k != "events"}, **COMPACT)
    yield '{"events":['
    for index, row in enumerate(rows):
        if index:
            yield ","
        yield row
    yield "]" + ("}" if rest == "{}" else "," + rest[1:])
