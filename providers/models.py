"""Result shapes shared by every provider: one model per capability, provider records kept in `raw`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

Raw = dict[str, Any] | None
RAW_DESCRIPTION = "The provider's own record, for fields that do not fit the common shape."


class SessionSummary(BaseModel):
    id: str = Field(description="Session id, as the provider spells it.")
    status: str = Field(description="Provider state, e.g. running, completed, failed, stopped.")
    started_at: str | None = Field(None, description="ISO 8601 start time.")
    command: str | None = Field(None, description="What the session runs, when known.")
    raw: Raw = Field(None, description=RAW_DESCRIPTION)


class SessionList(BaseModel):
    provider: str
    sessions: list[SessionSummary]
    count: int = Field(description="Number of sessions in this page.")
    next_cursor: str | None = Field(None, description="Pass as `cursor` (or `page`) for the next page.")


class ExecResult(BaseModel):
    provider: str
    session_id: str
    state: str = Field(description="running, completed, failed, timed_out, stopped (local); provider state else.")
    exit_code: int | None = Field(None, description="Process exit code; negative means killed by that signal.")
    stdout: str | None = None
    stderr: str | None = None
    stdout_bytes: int | None = Field(None, description="Full size of stdout captured so far.")
    stderr_bytes: int | None = Field(None, description="Full size of stderr captured so far.")
    truncated: bool = Field(False, description="True when stdout/stderr were cut to head and tail.")
    duration_ms: int | None = None
    response: Any = Field(None, description="The run's response value (remote runtimes).")
    message: str | None = Field(None, description="What happened and what to do next, when not obvious.")
    raw: Raw = Field(None, description=RAW_DESCRIPTION)


class StopResult(BaseModel):
    provider: str
    session_id: str
    stopped: bool = Field(description="True when this call stopped a running session.")
    state: str = Field(description="The session's state after the call.")
    exit_code: int | None = None
    message: str
    raw: Raw = Field(None, description=RAW_DESCRIPTION)


class RoutineRun(BaseModel):
    provider: str
    run_id: str
    routine: str
    status: str = Field(description="pending, running, completed, failed (or skipped).")
    session_id: str | None = None
    output: str | None = Field(None, description="What the routine printed, capped to head and tail.")
    exit_code: int | None = None
    deduplicated: bool = Field(False, description="True when an earlier run with this idempotency_key was returned.")
    created_at: str | None = None
    message: str | None = None
    raw: Raw = Field(None, description=RAW_DESCRIPTION)


class RunningItem(BaseModel):
    id: str
    type: str


class Launcher(BaseModel):
    id: str
    name: str
    state: str = Field(description="creating, active, deleting or recreating.")
    previous: str | None = Field(None, description="Why it is recreating: exit or unknown.")
    running: list[RunningItem] = Field(default_factory=list, description="What runs under the launcher now.")
    created_at: int | None = Field(None, description="Unix time in ms.")
    description: str | None = None
    raw: Raw = Field(None, description=RAW_DESCRIPTION)


class LauncherList(BaseModel):
    provider: str
    launchers: list[Launcher]
    total: int = Field(description="How many launchers matched the filter.")
    offset: int
    limit: int


class StoredEvent(BaseModel):
    provider: str
    event_id: str
    sandbox_id: str
    type: str
    timestamp: int = Field(description="Unix time in ms.")


class Event(BaseModel):
    id: str
    sandbox_id: str
    type: str
    data: dict[str, Any]
    timestamp: int = Field(description="Unix time in ms.")
    workspace_id: int | None = None


class EventList(BaseModel):
    provider: str
    sandbox_id: str
    events: list[Event]
    count: int


class SessionOutput(BaseModel):
    session_id: str
    stream: str
    offset: int
    size: int = Field(description="Bytes captured so far in this stream.")
    text: str
    next_offset: int | None = Field(None, description="Pass as offset to read on; null at the end.")
    state: str


class ProviderRecord(BaseModel):
    """One provider record passed through as the provider spells it."""

    provider: str
    record: dict[str, Any]


class RecordList(BaseModel):
    provider: str
    items: list[dict[str, Any]]
    count: int
    next_cursor: str | None = None
