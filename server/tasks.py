"""The MCP Tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) for `tools/call`.

A client that declares the extension (for the connection, or per request in `_meta`) may get a task handle
(`resultType: "task"`) instead of a result from a tool that can run long. It polls `tasks/get` (the result is
inlined once the task ends), answers input requests with `tasks/update` and cancels with `tasks/cancel`.
Clients that do not declare it get the plain synchronous result, as before.

Two kinds of task:
- durable: the tool started a local run and answered at once (it records the run in its TaskCall); the task
  follows that run through the local store, so any server on the data directory answers for it, restarts
  included (see tools/tasks.py);
- in memory: the tool call itself goes on in the background of this process (remote providers, fixtures).
  With shared state (`shared`, the product's local store), each is recorded there as it changes, so any
  worker or replica answers tasks/get for it (and passes a tasks/cancel on to the process running it), and
  one whose process stopped reads `failed`, saying so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY, ServerEvent, event_matches, event_to_notification
from mcp.types import (
    CallToolRequestParams,
    InputRequiredResult,
    RequestParams,
    SubscriptionFilter,
    SubscriptionsAcknowledgedNotification,
    SubscriptionsAcknowledgedNotificationParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
)
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from providers.services import caller
from server import tasks_2025
from server.bodies import hold_body
from tools import sdk
from tools.tasks import TASK_CALL, TERMINAL, CallTaskRecords, LocalRunTasks, Status, TaskCall, TaskView

EXTENSION = "io.modelcontextprotocol/tasks"
TASK_METHODS = ("tasks/get", "tasks/update", "tasks/cancel")
# A task-supporting call that ends this fast is answered directly (the spec's immediate-result shortcut);
# it is also how a tool's first-round input request (SEP-2322) reaches the client before any task exists.
IMMEDIATE_S = 0.05
MEMORY_TTL_MS = 3_600_000
MEMORY_POLL_MS = 500
BEAT_S = 2.0  # how often a process running shared tasks says so (tools/tasks.py: when one counts as stopped)
WATCH_S = 0.25  # how often subscriptions/listen looks at the status of the tasks it watches (task_listen)
logger = logging.getLogger(__name__)
Support = Literal["optional", "required"]
Kind = Literal["here", "durable", "elsewhere"]


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId")


class UpdateParams(TaskParams):
    # Kept raw: responses to keys that are not outstanding are ignored, whatever their shape.
    input_responses: dict[str, Any] = Field(default_factory=dict, alias="inputResponses")


@dataclass
class _MemoryTask:
    view: TaskView
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    answers: dict[str, Any] = field(default_factory=dict)
    # key -> set once answered, for each outstanding input request (its request is in view.input_requests)
    answered: dict[str, anyio.Event] = field(default_factory=dict)
    next_key: int = 0
    outcome: list[HandlerResult] = field(default_factory=list)  # the call's own answer, once it has one
    shared: CallTaskRecords | None = None  # where the task is recorded for other servers, once it is
    # Whose task it is (providers.services.Caller.owner): the call runs as its creator, and only it (or an admin)
    # sees the task.
    owner: str = field(default_factory=lambda: caller().owner)

    async def publish(self) -> None:
        """Record the task as it stands now for the other servers (a failure is logged: the task goes on)."""
        if self.shared is None:
            return
        try:
            await self.shared.update(self.view)
        except Exception:
            logger.warning("runtimes-mcp: task %s could not be recorded in the shared state", self.view.task_id)

    def touch(self, status: Status) -> None:
        self.view.status = status
        self.view.updated_at = time.time()

    async def ask(self, request: Mapping[str, Any]) -> Any:
        """Park the task on one input request (elicitation, sampling, ...) until tasks/update answers it."""
        self.next_key += 1
        key = f"input-{self.next_key}"
        self.answered[key] = anyio.Event()
        self.touch("input_required")
        self.view.input_requests = {**(self.view.input_requests or {}), key: dict(request)}
        await self.publish()
        await self.answered[key].wait()
        return self.answers.pop(key)

    def cancel(self) -> None:
        """It ends `cancelled` unless it has ended already."""
        if not self.done.is_set() and self.view.cancel_asked_at is None:
            self.view.cancel_asked_at = time.time()
        self.scope.cancel()

    def answer(self, responses: Mapping[str, Any]) -> None:
        for key, response in responses.items():
            if key not in self.answered:
                continue  # never issued or already answered: ignored, as the spec asks
            self.answers[key] = response
            self.answered.pop(key).set()
        self.view.input_requests = {k: r for k, r in (self.view.input_requests or {}).items() if k in self.answered}
        if not self.answered and self.view.status == "input_required":
            self.touch("working")


def new_task_id() -> str:
    return "task_" + secrets.token_hex(12)


def client_declared(ctx: ServerRequestContext[Any, Any], params: RequestParams) -> bool:
    """The client declared the extension: for the connection, or on this request (`_meta` clientCapabilities)."""
    capabilities = ctx.session.client_capabilities
    if capabilities is not None and EXTENSION in (capabilities.extensions or {}):
        return True
    return any(_declares((meta or {}).get(CLIENT_CAPABILITIES_META_KEY)) for meta in (ctx.meta, params.meta))


def _declares(capabilities: Any) -> bool:
    return isinstance(capabilities, Mapping) and EXTENSION in (capabilities.get("extensions") or {})


def missing_capability() -> MCPError:
    return MCPError(
        code=MISSING_REQUIRED_CLIENT_CAPABILITY,
        message=f"this needs the {EXTENSION} extension: declare it in the client's capabilities.extensions",
        data={"requiredCapabilities": {"extensions": {EXTENSION: {}}}},
    )


def _protocol_error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, MCPError):
        error: dict[str, Any] = {"code": exc.error.code, "message": exc.error.message}
        if exc.error.data is not None:
            error["data"] = exc.error.data
        return error
    logger.error("a task failed inside the server", exc_info=exc)
    return {"code": INTERNAL_ERROR, "message": f"the tool failed inside the server ({type(exc).__name__})"}


def _dump(result: HandlerResult) -> dict[str, Any]:
    if result is None:
        return {}
    if isinstance(result, dict):
        return result
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


class TasksExtension(Extension):
    """Serves tools/call as tasks for the tools in `support` (name -> optional|required)."""

    identifier = EXTENSION

    def __init__(
        self,
        support: Mapping[str, Support],
        durable: LocalRunTasks | None = None,
        shared: Callable[[Any], CallTaskRecords] | None = None,
    ) -> None:
        """`shared`, given the lifespan context, is where in-memory tasks are recorded for other servers."""
        self.support = dict(support)
        self.durable = durable
        self._shared = shared
        self._memory: dict[str, _MemoryTask] = {}
        self._beating = False

    def methods(self) -> Sequence[MethodBinding]:
        return (
            MethodBinding("tasks/get", TaskParams, self._get),
            MethodBinding("tasks/update", UpdateParams, self._update),
            MethodBinding("tasks/cancel", TaskParams, self._cancel),
            # the 2025-11-25 form only (server/tasks_2025.py): the extension inlines results in tasks/get
            MethodBinding("tasks/result", TaskParams, self._result, frozenset({tasks_2025.VERSION})),
        )

    def middleware(self) -> list[Any]:
        """Server middleware to install with the extension: each client sees the form of tasks it negotiated."""
        return [advertise_only_when_declared, tasks_2025.middleware(self.support)]

    # --- tools/call -------------------------------------------------------------------------------
    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        support = self.support.get(params.name)
        request = tasks_2025.REQUESTED.get() if tasks_2025.speaks(ctx) else None
        if request is not None:  # a 2025-11-25 connection, and the server serves that form
            if params.task is None:
                if support == "required":
                    raise MCPError(
                        code=METHOD_NOT_FOUND, message=f"{params.name} runs only as a task: call it with `task`"
                    )
                return await call_next(ctx)
            if support is None:
                raise MCPError(
                    code=METHOD_NOT_FOUND,
                    message=f"{params.name} does not run as a task here (tools/list gives it no "
                    "execution.taskSupport): call it without `task`",
                )
        elif support is None:
            return await call_next(ctx)
        # A task handle only exists on the 2026-07-28 wire (older wires cannot carry resultType "task").
        elif not client_declared(ctx, params) or ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            if support == "required":
                raise missing_capability()
            return await call_next(ctx)
        call = TaskCall(params, durable=self.durable is not None and self.durable.follows(params))
        token = TASK_CALL.set(call)
        try:
            if request is None:
                return await self._start(ctx, call_next, call, support)
            request.created = await self._create_2025(ctx, call_next, call)
            return {"content": []}  # replaced by the CreateTaskResult on the way out (tasks_2025.middleware)
        finally:
            TASK_CALL.reset(token)

    async def _create_2025(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, call: TaskCall) -> TaskView:
        """A tools/call with `task` on a 2025-11-25 connection: the task is created (always: that form has no
        immediate-result shortcut) for the middleware to answer its CreateTaskResult. A tool that starts a local
        run answers at once and the task follows the run; when it started nothing (bad input, a provider error),
        its answer is the result of a task already ended."""
        asked_ttl = call.params.task.ttl if call.params.task is not None else None
        if self.durable is None or not call.durable:
            ttl = max(tasks_2025.MIN_TTL_MS, min(MEMORY_TTL_MS if asked_ttl is None else asked_ttl, MEMORY_TTL_MS))
            task = self._spawn(ctx, call_next, call, ttl, asks=False)
        else:
            result = await call_next(ctx)
            if call.started is not None and not _dump(result).get("isError"):
                return await self.durable.create(ctx, new_task_id(), call)
            now = time.time()
            task = _MemoryTask(TaskView(new_task_id(), "completed", now, now, MEMORY_TTL_MS, MEMORY_POLL_MS))
            task.view.result = _dump(result)
            task.done.set()
        await self._keep(ctx, task)
        return task.view

    def _spawn(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, call: TaskCall, ttl_ms: int, asks: bool
    ) -> _MemoryTask:
        """Start the call in the background of this process, as an in-memory task (not yet kept: see _keep).
        `asks`: it may park on input requests (the extension's tasks/update answers them)."""
        now = time.time()
        task = _MemoryTask(TaskView(new_task_id(), "working", now, now, ttl_ms, MEMORY_POLL_MS))
        if asks:
            call.ask = task.ask

        async def run() -> None:
            with task.scope:
                try:
                    task.outcome.append(await call_next(ctx))
                except Exception as exc:
                    task.view.error = _protocol_error(exc)
                    task.view.message = task.view.error["message"]
                    task.touch("failed")
                else:
                    task.view.result = _dump(task.outcome[0])
                    task.touch("completed")
            if task.scope.cancelled_caught:
                task.view.message = "cancelled by the client"
                task.touch("cancelled")
            task.done.set()
            await task.publish()

        ctx.lifespan_context.background.start_soon(run)
        return task

    async def _keep(self, ctx: ServerRequestContext[Any, Any], task: _MemoryTask) -> None:
        """From now on the task is answered for: here, and (with shared state) by every server. The shared record is
        made before the task's id is handed out, and this process's heartbeat goes on while the task runs."""
        self._forget_expired()
        self._memory[task.view.task_id] = task
        if self._shared is None:
            return
        shared = self._shared(ctx.lifespan_context)
        task.shared = shared
        await shared.record(task.view)
        if task.done.is_set():
            await task.publish()  # it ended while being recorded: its end may have found no row yet
        if not self._beating:
            self._beating = True
            ctx.lifespan_context.background.start_soon(self._beat, shared)

    async def _start(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, call: TaskCall, support: Support
    ) -> HandlerResult:
        if self.durable is not None and call.durable:
            # The tool starts its run and answers at once (it records the run in `call`); the task follows it.
            result = await call_next(ctx)
            if call.started is None or _dump(result).get("isError"):
                return result  # nothing started (bad input, a provider error) or already settled: answer directly
            view = await self.durable.create(ctx, new_task_id(), call)
            if view.status in TERMINAL:  # it ended in the meantime: its outcome, not the "running" answer
                return view.result if view.result is not None else result
            return {"resultType": "task", **view.wire()}
        task = self._spawn(ctx, call_next, call, MEMORY_TTL_MS, asks=True)
        outcome = task.outcome
        with anyio.move_on_after(IMMEDIATE_S):
            await task.done.wait()
        if outcome and isinstance(outcome[0], InputRequiredResult):
            return outcome[0]  # the first round's input request (SEP-2322) goes back before any task exists
        if outcome and support == "optional":
            return outcome[0]  # done already: the immediate-result shortcut
        await self._keep(ctx, task)
        return {"resultType": "task", **task.view.wire()}

    async def _beat(self, shared: CallTaskRecords) -> None:
        """While this process runs shared tasks: say so, and cancel those a client asked another server to."""
        try:
            while any(t.shared is not None and not t.done.is_set() for t in self._memory.values()):
                await anyio.sleep(BEAT_S)
                try:
                    asked = await shared.beat()
                except Exception:
                    logger.warning("runtimes-mcp: the heartbeat of this server's tasks could not be recorded")
                    continue
                for task_id in asked:
                    if task_id in self._memory:
                        self._memory[task_id].cancel()
        finally:
            self._beating = False

    def _forget_expired(self) -> None:
        now = time.time()
        for task_id, task in list(self._memory.items()):
            if task.done.is_set() and now - task.view.created_at > (task.view.ttl_ms or 0) / 1000:
                del self._memory[task_id]

    # --- tasks/* ----------------------------------------------------------------------------------
    async def find(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> TaskView | None:
        return (await self._find(ctx, task_id))[0]

    async def _find(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> tuple[TaskView | None, Kind]:
        """The caller's task (anyone's, for an admin) and where it lives: in this process, a durable local run, or
        another server's call. Another owner's task here is looked for further, as an unknown id is, and not
        found there either: it reads as one that does not exist."""
        task = self._memory.get(task_id)
        if task is not None and caller().sees(task.owner):
            return task.view, "here"
        view = await self.durable.read(ctx, task_id) if self.durable is not None else None
        if view is not None:
            return view, "durable"
        if self._shared is not None:
            return await self._shared(ctx.lifespan_context).read(task_id), "elsewhere"
        return None, "here"

    async def _view(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> tuple[TaskView, Kind]:
        if not tasks_2025.speaks(ctx) and not client_declared(ctx, params):
            raise missing_capability()
        view, kind = await self._find(ctx, params.task_id)
        if view is None:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"no task {params.task_id!r}: it never existed here or has expired (its ttl after its creation "
                "has passed)",
            )
        if kind == "here" and tasks_2025.speaks(ctx):
            await self._cancel_asked_elsewhere(self._memory[view.task_id])
        return view, kind

    async def _cancel_asked_elsewhere(self, task: _MemoryTask) -> None:
        """A task running here that a client asked another server to cancel is cancelled now, not at the next
        heartbeat: the 2025-11-25 form shows it cancelled from the moment of asking, on every server."""
        if task.shared is None or task.done.is_set() or task.view.cancel_asked_at is not None:
            return
        recorded = await task.shared.read(task.view.task_id)
        if recorded is not None and recorded.cancel_asked_at is not None:
            task.view.cancel_asked_at = recorded.cancel_asked_at
            task.cancel()

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        view, _ = await self._view(ctx, params)
        if tasks_2025.speaks(ctx):
            return tasks_2025.task(view)
        return {"resultType": "complete", **view.wire()}

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateParams) -> dict[str, Any]:
        view, kind = await self._view(ctx, params)
        if kind == "here":
            task = self._memory[view.task_id]
            task.answer(params.input_responses)
            await task.publish()
        # Input requests come only from tools that run here (the product's tools ask none): another server's
        # task has none outstanding, and answers to keys that are not outstanding are ignored, as the spec asks.
        return {"resultType": "complete"}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        view, kind = await self._view(ctx, params)
        if tasks_2025.speaks(ctx) and tasks_2025.status(view) in TERMINAL:
            shown = tasks_2025.status(view)
            raise MCPError(code=INVALID_PARAMS, message=f"Cannot cancel task: already in terminal status '{shown}'")
        if kind == "durable":
            assert self.durable is not None
            await self.durable.cancel(ctx, view.task_id)
        elif kind == "here":
            task = self._memory[view.task_id]
            task.cancel()
            if task.shared is not None:
                await task.shared.ask_cancel(view.task_id)  # so every server shows it cancelled (2025-11-25 form)
        elif view.status not in TERMINAL:
            assert self._shared is not None
            await self._shared(ctx.lifespan_context).ask_cancel(view.task_id)  # its process cancels it
        if not tasks_2025.speaks(ctx):
            return {"resultType": "complete"}
        view = await self.find(ctx, view.task_id) or view  # cancelled now, in this form (a MUST)
        view.cancel_asked_at = view.cancel_asked_at or time.time()
        return tasks_2025.task(view)

    async def _result(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        """tasks/result (2025-11-25 form): waits for the task to end, then answers what the tools/call would have."""
        wait_s = 0.05
        while True:
            view, kind = await self._view(ctx, params)
            if tasks_2025.status(view) in TERMINAL:
                return tasks_2025.payload(view)
            with anyio.move_on_after(wait_s):
                if kind == "here":
                    await self._memory[view.task_id].done.wait()
                else:
                    await anyio.sleep_forever()  # read again: it is kept elsewhere (the store, another server)
            wait_s = min(wait_s * 2, 1.0)


def routing_header_mismatch(body: Any, headers: Mapping[str, str]) -> str | None:
    """SEP-2663 routing headers: a tasks/* request's `Mcp-Name` must name its taskId. The reason when not."""
    if not isinstance(body, Mapping) or body.get("method") not in TASK_METHODS:
        return None
    given = headers.get("mcp-name")
    params = body.get("params")
    task_id = params.get("taskId") if isinstance(params, Mapping) else None
    if given is not None and given.strip() != task_id:
        return f"Mcp-Name header {given.strip()!r} does not match params.taskId of {body['method']}"
    return None


def task_routing_headers(app: ASGIApp, max_body: int) -> ASGIApp:
    """ASGI middleware: rejects a tasks/* request whose Mcp-Name header names another task (HTTP 400, -32020),
    as the SDK does for tools/call names. Only requests that carry Mcp-Name are read here."""

    async def checked(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if "mcp-name" not in headers:
            await app(scope, receive, send)
            return
        request = await hold_body(receive, max_body)
        try:
            body = json.loads(request.body) if not request.more else None
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read: the SDK answers for it
            body = None
        reason = routing_header_mismatch(body, headers)
        if reason is not None and isinstance(body, dict):
            error = {"jsonrpc": "2.0", "id": body.get("id"), "error": {"code": HEADER_MISMATCH, "message": reason}}
            await JSONResponse(error, status_code=400)(scope, receive, send)
            return
        await app(scope, request.replay(receive), send)

    return checked


async def advertise_only_when_declared(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware: the extension appears in the server's capabilities (initialize, server/discover)
    only for a client that declared it too; others see a server without Tasks, as they will be served."""
    result = await call_next(ctx)
    if ctx.method not in ("initialize", "server/discover") or not isinstance(result, dict):
        return result
    params = ctx.params if isinstance(ctx.params, Mapping) else {}
    if _declares(params.get("capabilities") or (params.get("_meta") or {}).get(CLIENT_CAPABILITIES_META_KEY)):
        return result
    extensions = (result.get("capabilities") or {}).get("extensions")
    if isinstance(extensions, dict) and EXTENSION in extensions:
        capabilities = {**result["capabilities"]}
        others = {k: v for k, v in extensions.items() if k != EXTENSION}
        if others:
            capabilities["extensions"] = others
        else:
            del capabilities["extensions"]
        result = {**result, "capabilities": capabilities}
    return result


class TaskStatusNotification(BaseModel):
    """`notifications/tasks`: a task's DetailedTask, as tasks/get would show it at that moment."""

    method: Literal["notifications/tasks"] = "notifications/tasks"
    params: dict[str, Any]


def task_listen(
    extension: TasksExtension, bus: SubscriptionBus, plain: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[SubscriptionsListenResult]]:
    """`subscriptions/listen` that also takes `notifications.taskIds` (SEP-2663 status notifications).

    A stream without taskIds is the SDK's own (`plain`). With taskIds (from a client that declared the
    extension), the acknowledgement names the known ones, each status change of those tasks is pushed as
    notifications/tasks (checked every WATCH_S), and the other requested kinds flow from the bus as usual. Once
    every watched task has ended and nothing else was asked for, the stream closes."""

    async def listen(
        ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        wanted = sdk.unmodelled_field(params.notifications, "taskIds")
        if not wanted:
            answer: SubscriptionsListenResult = await plain(ctx, params)
            return answer
        if not client_declared(ctx, params):
            raise missing_capability()
        known = [t for t in wanted if isinstance(t, str) and await extension.find(ctx, t) is not None]
        requested = params.notifications
        honored = SubscriptionFilter(
            tools_list_changed=requested.tools_list_changed or None,
            prompts_list_changed=requested.prompts_list_changed or None,
            resources_list_changed=requested.resources_list_changed or None,
            resource_subscriptions=requested.resource_subscriptions or None,
        )
        uris = frozenset(honored.resource_subscriptions or ())
        meta: dict[str, Any] = {SUBSCRIPTION_ID_META_KEY: ctx.request_id}
        ack = SubscriptionFilter.model_validate(
            {**honored.model_dump(by_alias=True, exclude_none=True), "taskIds": known}
        )
        send, recv = anyio.create_memory_object_stream[Any](1024)

        def deliver(event: ServerEvent) -> None:
            if event_matches(honored, uris, event):
                with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
                    send.send_nowait(event_to_notification(event, meta))

        async def watch() -> None:
            last: dict[str, tuple[Any, ...]] = {}
            pending = set(known)
            while pending:
                for task_id in sorted(pending):
                    view = await extension.find(ctx, task_id)
                    if view is None:
                        pending.discard(task_id)
                        continue
                    seen = (view.status, view.message, view.updated_at, tuple(view.input_requests or ()))
                    if last.get(task_id) != seen:
                        last[task_id] = seen
                        await send.send(TaskStatusNotification(params={**view.wire(), "_meta": meta}))
                    if view.status in TERMINAL:
                        pending.discard(task_id)
                await anyio.sleep(WATCH_S)
            if honored == SubscriptionFilter():
                send.close()  # nothing else was asked for: close the stream gracefully

        unsubscribe = bus.subscribe(deliver)
        try:
            await ctx.session.send_notification(
                SubscriptionsAcknowledgedNotification(
                    params=SubscriptionsAcknowledgedNotificationParams(notifications=ack, _meta=meta)
                ),
                related_request_id=ctx.request_id,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                async for notification in recv:
                    await ctx.session.send_notification(notification, related_request_id=ctx.request_id)
                tg.cancel_scope.cancel()
        finally:
            unsubscribe()
            send.close()
            recv.close()
        return SubscriptionsListenResult(_meta=meta)

    return listen
