"""MCP tasks in their 2025-11-25 form (the core protocol's `tasks` capability), served from the task store of the
2026-07-28 Tasks extension (server/tasks.py): the same tasks, durable or in memory, shown another way.

A client that negotiated protocol 2025-11-25 (the TypeScript SDK 1.x, behind most desktop and IDE clients) sees
the server's `tasks` capability (`requests.tools.call` and `cancel`) and `execution.taskSupport: "optional"` on the
tools that may run as tasks. It sends `tools/call` with `task: {ttl}` and gets a CreateTaskResult at once, polls
`tasks/get`, fetches the tool's CallToolResult with `tasks/result` (which waits for the end) and may `tasks/cancel`.
Clients of older versions see neither, and a `task` they send anyway is ignored (the spec's rule for a server that
does not declare the capability): they are answered synchronously. 2026-07-28 clients use the extension.

Not served: `tasks/list` (without sign-in this server cannot tell requestors apart, and the spec asks such a
server not to declare it; task ids carry 96 random bits), `notifications/tasks/status` (optional), and input
requests from a task (the product's tools make none).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from providers.values import iso_time
from tools import sdk
from tools.tasks import TERMINAL, Status, TaskView

VERSION = "2025-11-25"
RELATED_TASK = "io.modelcontextprotocol/related-task"
# No `list`: see the module's docstring.
CAPABILITY: dict[str, Any] = {"cancel": {}, "requests": {"tools": {"call": {}}}}
MIN_TTL_MS = 10_000  # a shorter requested ttl is raised to this (a task must outlive its first polls)


@dataclass
class TaskRequest:
    """Set in REQUESTED while a 2025-11-25 `tools/call` passes the middleware: the task it created, if any."""

    created: TaskView | None = None


REQUESTED: ContextVar[TaskRequest | None] = ContextVar("task_request_2025", default=None)


def speaks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """This request came on a 2025-11-25 connection: tasks are served to it in this form."""
    return ctx.protocol_version == VERSION


def status(view: TaskView) -> Status:
    """The task's status in this form: a tool result with isError is `failed`, and a task a client asked to cancel
    while it was going stays `cancelled` whatever its run did next (the 2025-11-25 rules)."""
    if view.cancel_asked_at is not None or view.status == "cancelled":
        return "cancelled"
    if view.status == "completed" and (view.result or {}).get("isError"):
        return "failed"
    return view.status


def _error_text(result: Mapping[str, Any] | None) -> str:
    texts = [c.get("text", "") for c in (result or {}).get("content") or () if isinstance(c, Mapping)]
    return next((t for t in texts if t), "the tool reported an error")[:500]


def task(view: TaskView) -> dict[str, Any]:
    """A `Task`: what tasks/get and tasks/cancel answer, and what CreateTaskResult carries."""
    shown = status(view)
    updated, message = view.updated_at, view.message
    if shown == "cancelled" and view.status != "cancelled":
        updated = view.cancel_asked_at or updated
        message = "cancelled by the client"
    elif shown == "failed" and view.status == "completed":
        message = _error_text(view.result)
    body: dict[str, Any] = {
        "taskId": view.task_id,
        "status": shown,
        "createdAt": iso_time(view.created_at),
        "lastUpdatedAt": iso_time(updated),
        "ttl": view.ttl_ms,
        "pollInterval": view.poll_ms,
    }
    if message:
        body["statusMessage"] = message
    return body


def payload(view: TaskView) -> dict[str, Any]:
    """What tasks/result answers for an ended task: exactly what the `tools/call` would have (its CallToolResult,
    or its JSON-RPC error), with the related-task `_meta`. A cancelled task has no result of its own: it answers
    a CallToolResult with isError saying so."""
    shown = status(view)
    assert shown in TERMINAL
    related = {RELATED_TASK: {"taskId": view.task_id}}
    if shown == "cancelled":
        text = f"task {view.task_id} was cancelled before it ended: {view.message or 'cancelled by the client'}"
        return {"content": [{"type": "text", "text": text}], "isError": True, "_meta": related}
    if view.status == "failed":
        error = view.error or {}
        raise MCPError(code=error.get("code", INTERNAL_ERROR), message=error.get("message", ""), data=error.get("data"))
    result = sdk.shaped_for(VERSION, "tools/call", view.result or {})
    return {**result, "_meta": {**(result.get("_meta") or {}), **related}}


def middleware(support: Mapping[str, str]) -> Any:
    """Server middleware for 2025-11-25 connections: the `tasks` capability in the initialize result and
    `execution.taskSupport` in tools/list (to those clients only), and a `tools/call` made as a task answered
    with its CreateTaskResult (the Tasks extension's interceptor creates the task: server/tasks.py)."""

    async def serve(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "initialize":
            answer = await call_next(ctx)
            init = sdk.wire_result(answer)
            if init is None or init.get("protocolVersion") != VERSION or not support:
                return answer
            return {**init, "capabilities": {**(init.get("capabilities") or {}), "tasks": CAPABILITY}}
        if not speaks(ctx) or ctx.method not in ("tools/list", "tools/call"):
            return await call_next(ctx)
        if ctx.method == "tools/list":
            answer = await call_next(ctx)
            listed = sdk.wire_result(answer)
            if listed is None:
                return answer
            tools = [
                {**t, "execution": {"taskSupport": support[t["name"]]}} if t.get("name") in support else t
                for t in listed.get("tools") or ()
            ]
            return {**listed, "tools": tools}
        request = TaskRequest()
        token = REQUESTED.set(request)
        try:
            answer = await call_next(ctx)
        finally:
            REQUESTED.reset(token)
        return answer if request.created is None else {"task": task(request.created)}

    return serve
