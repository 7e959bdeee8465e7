"""Small value helpers shared across layers: comma lists and timestamps."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime


def comma_list(value: str | Iterable[str] | None) -> list[str]:
    """`"a, b,,c"` (or a list of strings) as `["a", "b", "c"]`: items trimmed, empty ones dropped."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [item.strip() for item in items if item.strip()]


def iso_time(timestamp: float) -> str:
    """A unix time as RFC 3339 in UTC, to the millisecond: 2026-11-24T09:30:00.125Z."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return int(time.time() * 1000)
