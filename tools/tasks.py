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
from providers.services import CallTasks, RunTask, TaskStorage
from providers.values import iso_time
from tools.results import as_tool_result

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from tools.spec import ToolSpec

LOCAL = "local"
SESSION_POLL_MS = 1000
WORKING_STATES = frozenset({"running", "pending"})
CANCELLED_STATES = frozenset({"stopped", "failed", "skipped"})
TERMINAL = frozenset({"completed", "failed", "cancelled"})
Status = Literal["working", "input_required", "completed", "failed", "cancelled"]


@dataclass
class TaskCall:
    """Set in TASK_CALL while a tools/call runs as a task."""

    params: CallToolRequestParams
    # The tool starts a local run and answers at once, and the task follows that run (LocalRunTasks.follows,
    # decided once by the server for the handler too) instead of the call going on in the background.
    durable: bool = False
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
    # When a client asked to cancel it while it was still going. The 2026-07-28 form cancels cooperatively (the
    # task may still complete); the 2025-11-25 form shows it cancelled from then on (server/tasks_2025.py).
    cancel_asked_at: float | None = None

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
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1][:200] if lines else None


class LocalRunTasks:
    """Durable tasks (server/tasks.py): a task row per local run, the run read afresh on every tasks/get."""

    def __init__(self, specs: Mapping[str, ToolSpec], defaults: Mapping[str, str]) -> None:
        self._specs = {name: spec for name, spec in specs.items() if spec.task_follow is not None}
        # A task row names the capability that reads its run; rows outlive this process, so by name.
        self._readers = {s.task_follow[0].name: s.task_follow[0] for s in self._specs.values() if s.task_follow}
        self._defaults = defaults  # each tool's provider when a call names none: the one its handler uses

    def follows(self, params: CallToolRequestParams) -> bool:
        if params.name not in self._specs:
            return False
        provider = (params.arguments or {}).get("provider", self._defaults.get(params.name))
        return bool(provider == LOCAL)

    async def create(self, ctx: ServerRequestContext[Any, Any], task_id: str, call: TaskCall) -> TaskView:
        assert call.started is not None
        reader, ref, session_id = call.started
        row = await _storage(ctx).remember_task(task_id, reader.name, ref, session_id)
        view = await self._view(ctx, row)
        assert view is not None
        return view

    async def read(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> TaskView | None:
        row = await _storage(ctx).recall_task(task_id)
        return None if row is None else await self._view(ctx, row)

    async def _view(self, ctx: ServerRequestContext[Any, Any], row: RunTask) -> TaskView | None:
        """The task as its run stands now: the run is read afresh from the local provider."""
        reader = self._readers.get(row.follow)
        if reader is None:
            return None  # written by a version of the server whose tools this one does not offer
        try:
            model = await reader.bind(await ctx.lifespan_context.provider(LOCAL))(row.ref)
        except ProviderError:
            return None  # the run's record is gone (retention): so is the task
        state = getattr(model, "state", None) or getattr(model, "status", "")
        ttl_ms = _storage(ctx).task_ttl_ms
        view = TaskView(row.id, "working", row.created_at, row.cancelled_at or row.created_at, ttl_ms, SESSION_POLL_MS)
        if row.cancelled_at is not None and (row.ended_at is None or row.ended_at >= row.cancelled_at):
            view.cancel_asked_at = row.cancelled_at  # asked while the run was going (not after its end)
        if state in WORKING_STATES:
            view.message = status_line(model)
            return view
        view.updated_at = row.ended_at or view.updated_at
        if row.cancelled_at is not None and state in CANCELLED_STATES:
            view.status = "cancelled"
            view.message = f"cancelled by the client; its run (session {row.session_id}) was stopped"
            return view
        view.status = "completed"
        view.result = as_tool_result(model).model_dump(by_alias=True, mode="json", exclude_none=True)
        return view

    async def cancel(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> None:
        row = await _storage(ctx).recall_task(task_id)
        if row is not None:  # expired since it was read
            await _storage(ctx).cancel_task(row)


def _storage(ctx: ServerRequestContext[Any, Any]) -> TaskStorage:
    storage: TaskStorage = ctx.lifespan_context.task_storage
    return storage


# What a shared task's recorded view holds: a cancel request is kept beside it by the store (CallTasks.ask_cancel).
_STORED = frozenset(f.name for f in dataclasses.fields(TaskView)) - {"cancel_asked_at"}


def _stored(view: TaskView) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(view).items() if k in _STORED}


class CallTaskRecords:
    """In-memory tasks (server/tasks.py) over a provider's CallTasks (the local store): tool calls made as tasks, each
    running in one server process, recorded where every server on the same state reads them."""

    def __init__(self, tasks: CallTasks) -> None:
        self._tasks = tasks

    async def record(self, view: TaskView) -> None:
        """Committed before it returns: from then on any server answers for the task (run by this process)."""
        expires = view.created_at + (view.ttl_ms or 0) / 1000
        await self._tasks.record(view.task_id, view.status, view.created_at, expires, _stored(view))

    async def update(self, view: TaskView) -> None:
        await self._tasks.update(view.task_id, view.status, _stored(view))

    async def read(self, task_id: str) -> TaskView | None:
        found = await self._tasks.read(task_id)
        if found is None:
            return None
        view = TaskView(**{k: v for k, v in found.view.items() if k in _STORED})
        view.cancel_asked_at, stopped = found.cancel_asked_at, found.stopped
        if view.status in TERMINAL or stopped is None:
            return view
        view.status, view.updated_at = "failed", time.time()
        view.message = (
            f"the server process running this task ({stopped}) stopped before the call ended; "
            "it may or may not have taken effect: check before calling again"
        )
        view.error, view.input_requests = {"code": INTERNAL_ERROR, "message": view.message}, None
        await self.update(view)
        return view

    async def ask_cancel(self, task_id: str) -> None:
        await self._tasks.ask_cancel(task_id)

    async def beat(self) -> list[str]:
        """This process still runs its tasks; returns those a client asked (on any server) to cancel."""
        return await self._tasks.beat()
