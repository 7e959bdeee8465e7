"""MCP tasks in their 2025-11-25 form (server/tasks_2025.py), spoken as raw JSON-RPC to the product server in this
process: who is shown the `tasks` capability and `execution.taskSupport`, a local run as a durable task, ttl,
cancel, tasks/result, and the errors the spec asks for. The TypeScript SDK's own client drives the same tasks in
tests/test_tasks_typescript.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types
import pytest
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage

from server.app import create_server
from server.config import load_settings
from server.tasks_2025 import MIN_TTL_MS, RELATED_TASK
from tests import tasks_fixture_server
from tests.test_tasks_shared import QUICK, SLOW, xano  # noqa: F401  (a fixture)
from tools import sdk

TASK_TOOLS = {"execRun", "invokeRoutine"}


class Raw:
    """A JSON-RPC client on the server's streams: requests may overlap (tasks/result waits while others go)."""

    def __init__(self, send: ObjectSendStream[SessionMessage], version: str) -> None:
        self._send = send
        self.version = version
        self._next = 0
        self._waiting: dict[int, tuple[anyio.Event, list[dict[str, Any]]]] = {}
        self.initialized: dict[str, Any] = {}

    async def read(self, receive: ObjectReceiveStream[SessionMessage]) -> None:
        async for message in receive:
            body = message.message.model_dump(by_alias=True, mode="json", exclude_none=True)
            if "id" in body and ("result" in body or "error" in body) and body["id"] in self._waiting:
                done, box = self._waiting.pop(body["id"])
                box.append(body)
                done.set()

    async def message(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole answer: {"result": ...} or {"error": ...}."""
        self._next += 1
        done, box = anyio.Event(), []
        self._waiting[self._next] = (done, box)
        request = {"jsonrpc": "2.0", "id": self._next, "method": method, "params": params or {}}
        await self._send.send(SessionMessage(mcp_types.jsonrpc_message_adapter.validate_python(request)))
        with anyio.fail_after(30):
            await done.wait()
        return box[0]

    async def result(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = await self.message(method, params)
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def error(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = await self.message(method, params)
        assert "error" in answer, answer
        error: dict[str, Any] = answer["error"]
        return error


@asynccontextmanager
async def raw(
    version: str = "2025-11-25", fixtures: bool = False, build: Callable[[TaskGroup], MCPServer[Any]] | None = None
) -> AsyncIterator[Raw]:
    """The product server (with `fixtures`, the Tasks fixture server, whose tasks are in memory; or what `build`
    makes) in this process, initialized by a client of `version` (one of the handshake's versions)."""
    client_send, server_receive = anyio.create_memory_object_stream[SessionMessage | Exception](64)
    server_send, client_receive = anyio.create_memory_object_stream[SessionMessage](64)
    client = Raw(client_send, version)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        if build is None:
            build = tasks_fixture_server.build if fixtures else lambda _: create_server(load_settings())
        server = build(tg)
        tg.start_soon(sdk.run_on_streams, server, server_receive, server_send)
        tg.start_soon(client.read, client_receive)
        client.initialized = await client.result(
            "initialize", {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        )
        notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await client_send.send(SessionMessage(mcp_types.jsonrpc_message_adapter.validate_python(notification)))
        try:
            yield client
        finally:
            await client_send.aclose()
            tg.cancel_scope.cancel()


async def until_ended(client: Raw, task_id: str) -> dict[str, Any]:
    """tasks/result: it waits, on the server, until the task ends."""
    return await client.result("tasks/result", {"taskId": task_id})


async def test_the_tasks_capability_and_task_support_are_shown_to_2025_11_25_clients_only() -> None:
    async with raw() as client:
        capabilities = client.initialized["capabilities"]
        tools = (await client.result("tools/list"))["tools"]
    assert capabilities["tasks"] == {"cancel": {}, "requests": {"tools": {"call": {}}}}  # no list: see the docs
    marked = {t["name"]: t["execution"] for t in tools if "execution" in t}
    assert marked == {name: {"taskSupport": "optional"} for name in TASK_TOOLS}

    async with raw("2025-06-18") as older:  # tasks came with 2025-11-25: an older client sees none of it
        assert "tasks" not in older.initialized["capabilities"]
        assert all("execution" not in t for t in (await older.result("tools/list"))["tools"])
        # A `task` it sends anyway is ignored (the spec's rule for a server that declares no tasks capability).
        plain = await older.result("tools/call", {"name": "execRun", "arguments": {"command": "echo x"}, "task": {}})
    assert plain["structuredContent"]["stdout"] == "x\n" and "task" not in plain


async def test_the_2025_form_adds_few_bytes_to_tools_list() -> None:
    async with raw() as client:
        with_tasks = len(json.dumps(await client.result("tools/list"), separators=(",", ":")))
    async with raw("2025-06-18") as older:
        without = len(json.dumps(await older.result("tools/list"), separators=(",", ":")))
    assert with_tasks - without == len(',"execution":{"taskSupport":"optional"}') * len(TASK_TOOLS)


async def test_exec_run_as_a_task_created_polled_and_its_result_fetched() -> None:
    async with raw() as client:
        call = {"name": "execRun", "arguments": {"command": "echo one; sleep 0.3; echo two"}, "task": {"ttl": 60_000}}
        created = await client.result("tools/call", call)
        task = created["task"]
        assert set(created) == {"task"} and task["status"] == "working"
        assert {"taskId", "createdAt", "lastUpdatedAt", "ttl", "pollInterval"} <= set(task)
        # A task over a local run lives as long as its session's record, whatever ttl was asked (the spec's MAY).
        assert task["ttl"] > 60_000

        result = await until_ended(client, task["taskId"])
        assert result["structuredContent"]["stdout"] == "one\ntwo\n" and not result.get("isError")
        assert result["_meta"][RELATED_TASK] == {"taskId": task["taskId"]}
        got = await client.result("tasks/get", {"taskId": task["taskId"]})
        assert got["status"] == "completed" and got["createdAt"] == task["createdAt"]
        assert RELATED_TASK not in (got.get("_meta") or {})  # tasks/get carries none (the spec's SHOULD NOT)

        # A run that exits non-zero has run: its exit code is its result, and the task completed.
        exits = (await client.result("tools/call", {**call, "arguments": {"command": "exit 3"}}))["task"]
        assert (await until_ended(client, exits["taskId"]))["structuredContent"]["exit_code"] == 3

        # Bad arguments start nothing: a tool error (isError) is a failed task, and tasks/result answers it.
        bad = (await client.result("tools/call", {**call, "arguments": {"command": 42}}))["task"]
        shown = await client.result("tasks/get", {"taskId": bad["taskId"]})
        assert shown["status"] == "failed" and "command" in shown["statusMessage"]
        failed = await until_ended(client, bad["taskId"])
        assert failed["isError"] and "command" in failed["content"][0]["text"]


async def test_cancel_stops_the_run_and_the_task_stays_cancelled() -> None:
    async with raw() as client:
        call = {"name": "execRun", "arguments": {"command": "sleep 300"}, "task": {}}
        task = (await client.result("tools/call", call))["task"]
        async with anyio.create_task_group() as tg:
            waited: list[dict[str, Any]] = []

            async def wait() -> None:
                waited.append(await until_ended(client, task["taskId"]))

            tg.start_soon(wait)  # a tasks/result waiting when the cancel comes
            cancelled = await client.result("tasks/cancel", {"taskId": task["taskId"]})
        assert cancelled["status"] == "cancelled" and cancelled["taskId"] == task["taskId"]
        assert waited[0]["isError"] and "cancelled" in waited[0]["content"][0]["text"]
        assert (await client.result("tasks/get", {"taskId": task["taskId"]}))["status"] == "cancelled"
        again = await client.error("tasks/cancel", {"taskId": task["taskId"]})
        assert again["code"] == -32602 and "terminal status 'cancelled'" in again["message"]

        sessions = (await client.result("tools/call", {"name": "listSessions", "arguments": {"status": "stopped"}}))[
            "structuredContent"
        ]["sessions"]
        assert [s["command"] for s in sessions] == ["sleep 300"]


async def test_unknown_tasks_and_tools_that_are_no_tasks_get_the_specs_errors() -> None:
    async with raw() as client:
        for method in ("tasks/get", "tasks/result", "tasks/cancel"):
            error = await client.error(method, {"taskId": "task_nope"})
            assert error["code"] == -32602 and "task_nope" in error["message"], method
        refused = await client.error("tools/call", {"name": "listSessions", "arguments": {}, "task": {}})
        assert refused["code"] == -32601 and "without `task`" in refused["message"]
        # tasks/list is not declared (the server cannot tell requestors apart), so not served.
        assert (await client.error("tasks/list", {}))["code"] == -32601


@pytest.mark.parametrize(("asked", "given"), [(None, 3_600_000), (60_000, 60_000), (5, MIN_TTL_MS), (10**9, 3_600_000)])
async def test_an_in_memory_tasks_ttl_is_the_one_asked_within_bounds(asked: int | None, given: int) -> None:
    """A call that does not follow a local run (a remote provider's, a fixture's) is an in-memory task: its ttl
    is the client's, from MIN_TTL_MS to an hour."""
    task: dict[str, Any] = {} if asked is None else {"ttl": asked}
    async with raw(fixtures=True) as client:
        call = {"name": "slow_compute", "arguments": {"seconds": 0.1, "label": "x"}, "task": task}
        created = (await client.result("tools/call", call))["task"]
        assert created["ttl"] == given and created["status"] == "working"
        result = await until_ended(client, created["taskId"])
        assert result["content"][0]["text"] == "computed x in 0.1s"
        assert (await client.result("tasks/get", {"taskId": created["taskId"]}))["ttl"] == given


async def test_in_memory_tasks_fail_and_cancel_as_the_spec_says() -> None:
    async with raw(fixtures=True) as client:
        tools = {t["name"]: t.get("execution") for t in (await client.result("tools/list"))["tools"]}
        assert tools["failing_job"] == {"taskSupport": "required"} and tools["greet"] is None
        # A tool that runs only as a task, called without one: -32601, as the spec says.
        assert (await client.error("tools/call", {"name": "failing_job", "arguments": {}}))["code"] == -32601

        tool_error = (await client.result("tools/call", {"name": "failing_job", "arguments": {}, "task": {}}))["task"]
        failed = await until_ended(client, tool_error["taskId"])
        assert failed["isError"] and "always does" in failed["content"][0]["text"]
        shown = await client.result("tasks/get", {"taskId": tool_error["taskId"]})
        assert shown["status"] == "failed" and "always does" in shown["statusMessage"]

        # A JSON-RPC error of the call is tasks/result's JSON-RPC error.
        broken = (await client.result("tools/call", {"name": "protocol_error_job", "arguments": {}, "task": {}}))[
            "task"
        ]
        error = await client.error("tasks/result", {"taskId": broken["taskId"]})
        assert error == {"code": -32603, "message": "the job broke at the protocol level"}

        slow = {"name": "slow_compute", "arguments": {"seconds": 300}, "task": {}}
        running = (await client.result("tools/call", slow))["task"]
        cancelled = await client.result("tasks/cancel", {"taskId": running["taskId"]})
        assert cancelled["status"] == "cancelled"
        assert (await until_ended(client, running["taskId"]))["isError"]


@pytest.mark.usefixtures("xano")
async def test_every_server_on_the_same_state_answers_for_a_task_in_this_form() -> None:
    """Two servers on one data directory (as workers and replicas are): a task made on one is followed, fetched
    and cancelled on the other, whether it is a local run (durable) or a remote call (in memory, shared)."""
    async with raw() as a, raw() as b:
        local = await a.result("tools/call", {"name": "execRun", "arguments": {"command": "echo here"}, "task": {}})
        assert (await until_ended(b, local["task"]["taskId"]))["structuredContent"]["stdout"] == "here\n"

        quick = (await a.result("tools/call", {"name": "execRun", "arguments": QUICK, "task": {"ttl": 60_000}}))["task"]
        assert (await b.result("tasks/get", {"taskId": quick["taskId"]}))["ttl"] == 60_000
        assert (await until_ended(b, quick["taskId"]))["structuredContent"]["session_id"] == "s-1"

        slow = (await a.result("tools/call", {"name": "execRun", "arguments": SLOW, "task": {}}))["task"]
        assert (await b.result("tasks/cancel", {"taskId": slow["taskId"]}))["status"] == "cancelled"
        assert (await a.result("tasks/get", {"taskId": slow["taskId"]}))["status"] == "cancelled"  # at once there too
        assert (await until_ended(b, slow["taskId"]))["isError"]
