"""Result shapes shared by every provider: one model per capability, provider records kept in `raw`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from providers.errors import InvalidInput
from providers.values import comma_list

Raw = dict[str, Any] | None
RAW_DESCRIPTION = "The provider's own record."


class Shape(BaseModel):
    # Validators are built on first use: a start-up offers only some tools, and each model costs ~1 ms.
    model_config = ConfigDict(defer_build=True)


class SessionSummary(Shape):
    id: str
    status: str = Field(description="e.g. running, completed.")
    started_at: str | None = Field(None, description="ISO 8601.")
    command: str | None = None
    raw: Raw = Field(None, description=RAW_DESCRIPTION)


class SessionList(Shape):
    provider: str
    sessions: list[SessionSummary]
    count: int
    next_cursor: str | None = Field(None, description="Pass as cursor (xano: page).")


class ExecResult(Shape):
    provider: str
    session_id: str
    state: str = Field(description="running, completed, failed, timed_out, stopped, lost.")
    exit_code: int | None = Field(None, description="Negative: killed by that signal.")
    stdout: str | None = None
    stderr: str | None = None
    stdout_bytes: int | None = None
    stderr_bytes: int | None = None
    stdout_next_offset: int | None = None
    stderr_next_offset: int | None = None
    truncated: bool = Field(False, description="Output cut; more to read.")
    duration_ms: int | None = None
    response: Any = None
    message: str | None = None
    ports: dict[str, int] | None = None
    network_denied: list[str] | None = None
    raw: Raw = Field(None, description=RAW_DESCRIPTION)


class StopResult(Shape):
    provider: str
    session_id: str
    stopped: bool = Field(description="This call stopped it.")
    state: str
    exit_code: int | None = None
    message: str
    raw: Raw = Field(None, description=RAW_DESCRIPTION)


class RoutineRun(Shape):
    provider: str
    run_id: str
    routine: str
    status: str = Field(description="pending, running, completed, failed, skipped.")
    session_id: str | None = None
    output: str | None = Field(None, description="Printed output (head and tail).")
    exit_code: int | None = None
    deduplicated: bool = Field(False, description="An earlier run with this idempotency_key.")
    created_at: str | None = None
    message: str | None = None
    raw: Raw = Field(None, description=RAW_DESCRIPTION)


class RunningItem(Shape):
    id: str
    type: str


class Launcher(Shape):
    id: str
    name: str
    state: str = Field(
        description="local: starting, running, waiting, failed, stopped; decthings: creating, active, deleting, "
        "recreating."
    )
    previous: str | None = None  # decthings, when recreating: exit or unknown
    running: list[RunningItem] = Field(default_factory=list)
    created_at: int | None = Field(None, description="Unix ms.")
    description: str | None = None
    ports: dict[str, int] | None = None
    raw: Raw = Field(None, description=RAW_DESCRIPTION)


class LauncherList(Shape):
    provider: str
    launchers: list[Launcher]
    total: int
    offset: int
    limit: int


class StoredEvent(Shape):
    provider: str
    event_id: str
    sandbox_id: str
    type: str
    timestamp: int = Field(description="Unix ms.")


class Event(Shape):
    id: str
    sandbox_id: str
    type: str
    data: dict[str, Any]
    timestamp: int = Field(description="Unix ms.")
    workspace_id: int | None = None


class EventList(Shape):
    provider: str
    sandbox_id: str
    events: list[Event]
    count: int
    truncated: bool = Field(False, description="Page cut for size; see message.")
    message: str | None = None


# The largest page of sessions any provider lists (the local store's; ArchAstro's own maximum is lower).
MAX_SESSIONS_PAGE = 500
SESSION_STATES = ("running", "completed", "failed", "timed_out", "stopped", "lost")  # of a local or ray session
# How long a call waits for a run by default: below the 60 s after which most MCP clients give up on a call
# (the TypeScript SDK's default request timeout), with room for the call's own round trip.
DEFAULT_WAIT_S = 30.0
MAX_WAIT_S = 600.0


def page_arguments(
    provider: str, status: str | None, limit: int | None, cursor: str | None
) -> tuple[list[str], int, int | None]:
    """listSessions' arguments, checked: (the states asked for, the page's size, the rowid to list before)."""
    states = comma_list(status)
    unknown = sorted(set(states) - set(SESSION_STATES))
    if unknown:
        raise InvalidInput(provider, f"unknown status {', '.join(unknown)}; use {', '.join(SESSION_STATES)}")
    limit = 50 if limit is None else limit
    if not 1 <= limit <= MAX_SESSIONS_PAGE:
        raise InvalidInput(provider, f"limit must be 1 to {MAX_SESSIONS_PAGE}, got {limit}")
    if not cursor:
        return states, limit, None
    with contextlib.suppress(ValueError):
        if 0 < (before := int(cursor)) < 2**63:
            return states, limit, before
    raise InvalidInput(provider, f"cursor {cursor!r} is not one this server returned")


def wait_seconds(provider: str, wait_s: float | None) -> float:
    """How long a call waits for a run: `wait_s`, checked, or DEFAULT_WAIT_S."""
    if wait_s is None:
        return DEFAULT_WAIT_S
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise InvalidInput(provider, f"wait_s must be between 0 and {MAX_WAIT_S:g}, got {wait_s:g}")
    return wait_s


# What an event is filed under, for every provider: bounded, so that an id or a type is a name, not a payload.
MAX_EVENT_TYPE_CHARS = 200
SANDBOX_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,200}$"
SANDBOX_ID_RULE = "1 to 200 letters, digits and . _ : @ -"


def event_name_problem(type_: str | None, sandbox_id: str | None) -> str | None:
    """Why an event's type or sandbox id is refused (naming the field), or None when both are fine."""
    import re

    if type_ is not None and len(type_) > MAX_EVENT_TYPE_CHARS:
        return f"type is {len(type_):,} characters; at most {MAX_EVENT_TYPE_CHARS}"
    if sandbox_id is not None and re.fullmatch(SANDBOX_ID_PATTERN, sandbox_id) is None:
        return f"sandbox_id {sandbox_id[:40]!r} is not {SANDBOX_ID_RULE}"
    return None


# One page of events holds at most this much event data (JSON characters), and one event at least: the same
# for every provider, over stdio and HTTP. It is already far more than an agent reads at once.
MAX_PAGE_CHARS = 256 * 1024


def event_chars(data: dict[str, Any]) -> int:
    """How much an event's data weighs in a page: its length as compact JSON."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False))


def fitting(sizes: Iterable[int], max_chars: int = MAX_PAGE_CHARS) -> int:
    """How many items, taken in order, fit in one page of `max_chars`: the first always does."""
    count = total = 0
    for size in sizes:
        total += size
        if count and total > max_chars:
            break
        count += 1
    return count


def event_list(
    provider: str, sandbox_id: str, events: list[Event], cut: bool, since: int | None, more: bool = False
) -> EventList:
    """A page of events; when some were left out (for size, or past `limit`), the message says how to read on."""
    message = None
    if cut:
        newest = events[-1].timestamp if events else None
        more_text = f"since={newest}" if since is not None else "a smaller limit, or since"
        message = (
            f"{len(events)} events: a page holds at most {MAX_PAGE_CHARS:,} characters of event data; "
            f"ask again with {more_text} for the rest"
        )
    elif more and events:
        message = (
            f"more events match: ask again with since={events[-1].timestamp} for the next"
            if since is not None
            else f"older events match (these are the newest {len(events)}): read from the first with since=0"
        )
    return EventList(
        provider=provider, sandbox_id=sandbox_id, events=events, count=len(events), truncated=cut, message=message
    )


def event_page(events: list[Event], *, newest: bool, max_chars: int = MAX_PAGE_CHARS) -> tuple[list[Event], bool]:
    """The events that fit in one page, oldest first: the newest of them, or (`newest=False`) the oldest, as a
    page read forward with `since` holds. One event always fits. Also says whether some were left out."""
    ordered = sorted(events, key=lambda e: e.timestamp, reverse=newest)
    kept = ordered[: fitting((event_chars(event.data) for event in ordered), max_chars)]
    return (kept[::-1] if newest else kept), len(kept) < len(ordered)


class SessionOutput(Shape):
    session_id: str
    stream: str
    offset: int
    size: int = Field(description="Bytes captured so far in this stream.")
    text: str
    next_offset: int | None = Field(None, description="Pass as offset to read on; absent at the end.")
    state: str


class ProviderRecord(Shape):
    """One provider record passed through as the provider spells it."""

    provider: str
    record: dict[str, Any]


class RecordList(Shape):
    provider: str
    items: list[dict[str, Any]]
    count: int
    next_cursor: str | None = None  # the next (older) page
    newer_cursor: str | None = None  # where the provider pages both ways: the page of newer items


# --- workspaces: named directories that runs share, and the files in them ---------------------------------
class FileWritten(Shape):
    provider: str
    workspace: str
    path: str
    size: int
    sha256: str
    replaced: bool
    uri: str


class FileContent(Shape):
    provider: str
    workspace: str
    path: str
    content: str
    encoding: str = Field(description="utf-8, or base64 when not text.")
    offset: int
    size: int
    sha256: str
    next_offset: int | None = Field(None, description="Next page's offset; absent at the end.")
    uri: str


class FileEntry(Shape):
    path: str = Field(description="Relative to the workspace.")
    type: str = Field(description="file, directory, symlink or other.")
    size: int
    mtime: str = Field(description="ISO 8601.")


class FileList(Shape):
    provider: str
    workspace: str
    path: str
    entries: list[FileEntry]
    count: int
    truncated: bool = Field(False, description="More entries than a page holds; list a subdirectory.")


class WorkspaceInfo(Shape):
    name: str
    size_bytes: int = Field(description="As last measured (after each run and write).")
    created_at: str | None = None
    last_used_at: str | None = None
    in_use: bool = Field(False, description="A running session works in it.")
    path: str = Field(description="Where runs see it.")
    owner: str | None = Field(None, description="Whose it is (listed for an admin, who sees everyone's).")


class WorkspaceList(Shape):
    provider: str
    workspaces: list[WorkspaceInfo]
    count: int
    max_workspaces: int
    max_mb: int = Field(description="Largest size of one workspace, in MiB.")


class WorkspaceDeleted(Shape):
    provider: str
    workspace: str
    deleted: bool
    message: str | None = None


class InputSent(Shape):
    provider: str
    session_id: str
    bytes: int = Field(description="Bytes written to its stdin.")
    closed: bool = Field(description="Its stdin is closed (eof).")
    state: str
    message: str | None = None
