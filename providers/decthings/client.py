"""Decthings: persistent launchers over its binary-framed RPC-over-HTTP."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any, Literal

from providers import capabilities as c
from providers.decthings import PROVIDER
from providers.decthings import endpoints as e
from providers.endpoints import Endpoint
from providers.errors import (
    AuthError,
    InvalidInput,
    NotFound,
    PaymentRequired,
    ProtocolError,
    ProviderError,
    RateLimited,
    Unavailable,
)
from providers.http import HttpProvider, compact, int_or_none, text_or_none
from providers.models import Launcher, LauncherList, RunningItem

CONTENT_TYPE = "application/octet-stream"


# --- framing ----------------------------------------------------------------------------------------
def encode_varint(value: int) -> bytes:
    """Below 253 one byte; else a 253/254/255 prefix and a big-endian u16/u32/u64."""
    if value < 253:
        return bytes([value])
    if value < 1 << 16:
        return b"\xfd" + struct.pack(">H", value)
    if value < 1 << 32:
        return b"\xfe" + struct.pack(">I", value)
    return b"\xff" + struct.pack(">Q", value)


def decode_varint(data: bytes) -> tuple[int, int]:
    """(value, position after it)."""
    if not data:
        raise ValueError("truncated varint")
    if data[0] < 253:
        return data[0], 1
    size, fmt = {253: (2, ">H"), 254: (4, ">I"), 255: (8, ">Q")}[data[0]]
    if 1 + size > len(data):
        raise ValueError("truncated varint")
    return struct.unpack(fmt, data[1 : 1 + size])[0], 1 + size


def encode_request(params: Any) -> bytes:
    """Blob count (u8: the client sends none), JSON length, the JSON."""
    message = json.dumps(params, separators=(",", ":")).encode()
    return b"\x00" + encode_varint(len(message)) + message


def decode_response(data: bytes, loads: Callable[[bytes], Any] = json.loads) -> Any:
    """The JSON of a response (JSON length, the JSON, read with `loads`). The (length, blob) pairs after it are
    left unread: no answer the client uses has one."""
    length, pos = decode_varint(data)
    if pos + length > len(data):
        raise ValueError("the JSON part is longer than the body")
    return loads(data[pos : pos + length])


# --- client -----------------------------------------------------------------------------------------
class DecthingsClient(HttpProvider, c.GetLaunchers, c.GetLauncher):
    name = PROVIDER.name

    def __init__(self, *, base_url: str, api_key: str, **options: Any) -> None:
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": CONTENT_TYPE}
        super().__init__(base_url=base_url, headers=headers, **options)

    async def rpc(self, endpoint: Endpoint, params: dict[str, Any]) -> Any:
        response = await self.send(endpoint, content=encode_request(params))
        if response.headers.get("content-type") != CONTENT_TYPE:
            raise ProtocolError(
                self.name, f"expected Content-Type {CONTENT_TYPE}, got {response.headers.get('content-type') or 'none'}"
            )
        try:
            answer = decode_response(response.content, self.read_json)
        except ValueError as exc:
            raise ProtocolError(self.name, f"the response frame could not be read: {exc}") from None
        if not isinstance(answer, dict):
            raise ProtocolError(self.name, "the response is not a JSON object")
        if "error" in answer:
            raise self._rpc_error(answer["error"])
        if "result" not in answer:
            raise ProtocolError(self.name, "the response has neither result nor error")
        return answer["result"]

    def _rpc_error(self, error: Any) -> ProviderError:
        code = error.get("code") if isinstance(error, dict) else None
        if code == "invalid_parameter":
            name, reason = error.get("parameterName", "?"), error.get("reason", "invalid")
            return InvalidInput(self.name, self.clean(f"parameter {name}: {reason}"), code=code)
        if code == "bad_credentials":
            return AuthError(
                self.name,
                "the API key was rejected",
                code=code,
                hint="Set a valid DECTHINGS_API_KEY and restart the server.",
            )
        if code == "too_many_requests":
            return RateLimited(self.name, "too many requests", code=code)
        if code == "payment_required":
            return PaymentRequired(self.name, "the account needs a paid plan for this", code=code)
        return Unavailable(self.name, f"Decthings reported an error ({self.clean(str(code or 'unknown'))})")

    async def get_launchers(
        self,
        offset: int | None = None,
        limit: int | None = None,
        ids: list[str] | None = None,
        search_name: str | None = None,
        sort: str | None = None,
        sort_direction: Literal["asc", "desc"] | None = None,
    ) -> LauncherList:
        query_filter = compact(ids=ids, searchName=search_name)
        params = compact(
            offset=offset, limit=limit, filter=query_filter or None, sort=sort, sortDirection=sort_direction
        )
        result = await self.rpc(e.DECTHINGS_GET_LAUNCHERS, params)
        if not isinstance(result, dict):
            raise ProtocolError(self.name, "the result is not an object")
        items = self.entries(result, "persistentLaunchers", "the result")
        launchers = [_launcher(self.identity(item, "a persistent launcher"), item) for item in items]
        total, at, size = (int_or_none(result.get(k)) for k in ("total", "offset", "limit"))
        return LauncherList(
            provider=self.name,
            launchers=launchers,
            total=len(launchers) if total is None else total,
            offset=(offset or 0) if at is None else at,
            limit=(limit or 20) if size is None else size,
        )

    async def get_launcher(self, launcher_id: str) -> Launcher:
        found = await self.get_launchers(ids=[launcher_id])
        if not found.launchers:
            raise NotFound(
                self.name,
                f"no persistent launcher {launcher_id!r}",
                hint="It does not exist or the API key cannot see it; list them with getLaunchers.",
            )
        return found.launchers[0]


def _launcher(launcher_id: str, item: dict[str, Any]) -> Launcher:
    raw_state = item.get("state")
    state: dict[str, Any] = raw_state if isinstance(raw_state, dict) else {}
    listed = item.get("running")
    running = [
        RunningItem(id=str(r.get("id", "")), type=str(r.get("type", "")))
        for r in (listed if isinstance(listed, list) else [])
        if isinstance(r, dict)
    ]
    return Launcher(
        id=launcher_id,
        name=str(item.get("name", "")),
        state=str(state.get("type", "unknown")),
        previous=text_or_none(state.get("previous")),
        running=running,
        created_at=int_or_none(item.get("createdAt")),
        raw=item,
    )
