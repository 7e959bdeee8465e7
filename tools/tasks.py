"""Tool calls made as MCP tasks (server/tasks.py): what a tool does differently, and tasks over local runs.

A tool with `task_follow` in its spec, called as a task on the local provider, starts its run and answers at
once (`task_start` arguments) instead of waiting; the task then follows the run in the local store by the
result's id, so it survives the server (and any server on the data directory answers for it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mcp.types import CallToolRequestParams
from mcp_types import INTERNAL_ERROR
from pydantic import BaseModel

from providers.capabilities import Capability
from providers.errors import ProviderError
from providers.local import owners
from providers.local.output import newest_line
from providers.local.store import CallTaskRow
from providers.values import iso_time
from tools.results import as_tool_result

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from providers.local.store import Store, TaskRow
    from tools.spec import ToolSpec

LOCAL = "local"
SESSION_POLL_MS = 1000
WORKING_STATES = frozenset({"running", "pending"})
CANCELLED_STATES = frozenset({"stopped", "failed", "skipped"})
TERMINAL = frozenset({"completed", "failed", "cancelled"})
# A process on another machine running a task has stopped when its heartbeat (server.tasks.BEAT_S) has not been
# heard for this long; on this machine it is known at once.
SILENT_FOR_S = 15.0
Status = Literal["working", "input_required", "completed", "failed", "cancelled"]


@dataclass
class TaskCall:
    """Set in TASK_CALL while a tools/call runs as a task."""

    params: CallToolRequestParams
    # An in-memory task's way to ask the client for input (elicitation, sampling) and wait for the answer.
    ask: Callable[[Mapping[str, Any]], Awaitable[Any]] | None = None
    # (capability that reads it, its id, its session) when the tool started a durable run instead of waiting.
    started: tuple[Capability[Any, Any], str, str] | None = None


TASK_CALL: ContextVar[TaskCall | None] = ContextVar("task_call", default=None)


@dataclass
class TaskView:
    """A task as tasks/get shows it (a DetailedTask)."""

    task_id: str
    status: Status
    created_at: float
    updated_at: float
    ttl_ms: int | None
    poll_ms: int
    message: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    input_requests: dict[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": iso_time(self.created_at),
            "lastUpdatedAt": iso_time(self.updated_at),
            "ttlMs": self.ttl_ms,
            "pollIntervalMs": self.poll_ms,
        }
        if self.message:
            body["statusMessage"] = self.message
        if self.status == "completed":
            body["result"] = self.result
        elif self.status == "failed":
            body["error"] = self.error
        elif self.status == "input_required":
            body["inputRequests"] = self.input_requests
        return body


def status_line(model: BaseModel) -> str | None:
    """The newest output line of a running session: a working task's statusMessage."""
    text = getattr(model, "stdout", None) or getattr(model, "output", None) or ""
    return newest_line(str(text))[:200] or None


class LocalRunTasks:
    """DurableTasks over the local provider: a task row per run, the run read afresh on every tasks/get."""

    def __init__(self, specs: Mapping[str, ToolSpec], default_provider: str) -> None:
        self._specs = {name: spec for name, spec in specs.items() if spec.task_follow is not None}
        # A task row names the capability that reads its run; rows outlive this process, so by name.
        self._readers = {s.task_follow[0].name: s.task_follow[0] for s in self._specs.values() if s.task_follow}
        self._default = default_provider

    def follows(self, params: CallToolRequestParams) -> bool:
        if params.name not in self._specs:
            return False
        provider = (params.arguments or {}).get("provider", self._default)
        return bool(provider == LOCAL)

    async def create(self, ctx: ServerRequestContext[Any, Any], task_id: str, call: TaskCall) -> TaskView:
        assert call.started is not None
        runtime = ctx.lifespan_context.local
        reader, ref, session_id = call.started
        view = await self._view(runtime, await runtime.remember_task(task_id, reader.name, ref, session_id))
        assert view is not None
        return view

    async def read(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> TaskView | None:
        runtime = ctx.lifespan_context.local
        row = await runtime.recall_task(task_id)
        return None if row is None else await self._view(runtime, row)

    async def _view(self, runtime: Any, row: TaskRow) -> TaskView | None:
        """The task as its run stands now: the run is read afresh from the runtime."""
        reader = self._readers.get(row.follow)
        if reader is None:
            return None  # written by a version of the server whose tools this one does not offer
        try:
            model = await reader.bind(runtime)(row.ref)
        except ProviderError:
            return None  # the run's record is gone (retention): so is the task
        state = getattr(model, "state", None) or getattr(model, "status", "")
        view = TaskView(
            row.id, "working", row.created_at, row.cancelled_at or row.created_at, runtime.task_ttl_ms, SESSION_POLL_MS
        )
        if state in WORKING_STATES:
            view.message = status_line(model)
            return view
        view.updated_at = row.ended_at or view.updated_at
        if row.cancelled_at is not None and state in CANCELLED_STATES:
            view.status, view.message = "cancelled", "cancelled by the client; the run was stopped"
            return view
        view.status = "completed"
        view.result = as_tool_result(model).model_dump(by_alias=True, mode="json", exclude_none=True)
        return view

    async def cancel(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> bool:
        runtime = ctx.lifespan_context.local
        row = await runtime.recall_task(task_id)
        if row is None:
            return False
        await runtime.cancel_task(row)
        return True


class CallTaskRecords:
    """server.tasks.SharedTasks over the local store: tool calls made as tasks, each running in one server
    process, recorded where every server on the same state (data directory or PostgreSQL) reads them."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, view: TaskView, owner: str) -> None:
        now = time.time()
        expires = view.created_at + (view.ttl_ms or 0) / 1000
        row = CallTaskRow(view.task_id, view.status, view.created_at, now, expires, owner, now, _stored(view))
        await self._store.save_call_task(row)

    async def update(self, view: TaskView) -> None:
        await self._store.update_call_task(view.task_id, view.status, _stored(view), time.time())

    async def read(self, task_id: str) -> TaskView | None:
        row = await self._store.get_call_task(task_id)
        if row is None or row.expires_at < time.time():
            return None
        view = TaskView(**row.view)
        if view.status in TERMINAL or not _stopped(row):
            return view
        view.status, view.updated_at = "failed", time.time()
        view.message = (
            f"the server process running this task ({owners.describe(row.owner)}) stopped before the call ended; "
            "it may or may not have taken effect: check before calling again"
        )
        view.error, view.input_requests = {"code": INTERNAL_ERROR, "message": view.message}, None
        await self._store.update_call_task(task_id, view.status, _stored(view), view.updated_at)
        return view

    async def ask_cancel(self, task_id: str) -> None:
        await self._store.ask_to_cancel_call_task(task_id, time.time())

    async def beat(self, owner: str) -> list[str]:
        return await self._store.beat_call_tasks(owner, time.time())


def _stored(view: TaskView) -> dict[str, Any]:
    return dataclasses.asdict(view)


def _stopped(row: CallTaskRow) -> bool:
    """The process that runs the task has stopped: seen from here, or not heard of for SILENT_FOR_S."""
    ended = owners.ended(row.owner)
    return ended if ended is not None else time.time() - row.alive_at > SILENT_FOR_S
