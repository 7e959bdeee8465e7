"""MCP Tasks on the product server, end to end: raw JSON-RPC on the 2026-07-28 wire over real HTTP, a real
local run behind every task, and a second server on the same data directory that answers for the first's tasks."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.test_http import TOKEN, http_server

VERSION = "2026-07-28"
TASKS = "io.modelcontextprotocol/tasks"


class Wire:
    """A stateless 2026-07-28 client: every request carries its envelope; tasks are declared per request."""

    def __init__(self, base: str, tasks: bool = True) -> None:
        self.url = f"{base}/mcp"
        self.tasks = tasks

    def envelope(self, method: str, params: dict[str, Any], name: str | None) -> tuple[dict[str, Any], dict[str, str]]:
        """The request body (id 7) with its `_meta` envelope, and the HTTP headers the 2026-07-28 wire wants."""
        capabilities = {"extensions": {TASKS: {}}} if self.tasks else {}
        meta = {
            "io.modelcontextprotocol/protocolVersion": VERSION,
            "io.modelcontextprotocol/clientCapabilities": capabilities,
        }
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": VERSION,
            "Mcp-Method": method,
        }
        if name is not None:
            headers["Mcp-Name"] = name
        return {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**params, "_meta": meta}}, headers

    def request(self, method: str, params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        body, headers = self.envelope(method, params, name)
        response = httpx.post(self.url, json=body, headers=headers, timeout=30)
        text = response.text
        if "data:" in text:  # an SSE answer: the last event is the response
            text = [line[5:] for line in text.splitlines() if line.startswith("data:")][-1]
        message: dict[str, Any] = json.loads(text)
        return message

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("tools/call", {"name": tool, "arguments": arguments}, tool)["result"]
        return result

    def task(self, method: str, task_id: str) -> dict[str, Any]:
        return self.request(method, {"taskId": task_id}, task_id)

    def until_done(self, task_id: str, timeout_s: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            task: dict[str, Any] = self.task("tasks/get", task_id)["result"]
            if task["status"] != "working":
                return task
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} still working after {timeout_s}s")


def test_exec_run_as_a_task_polled_to_completion_and_another_cancelled(tmp_path: Path) -> None:
    env = {"RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data")}
    with http_server(env=env) as (base, _):
        wire = Wire(base)
        created = wire.call("execRun", {"command": "for i in 1 2 3; do echo line$i; sleep 0.5; done"})
        assert created["resultType"] == "task" and created["status"] == "working"
        assert isinstance(created["ttlMs"], int) and isinstance(created["pollIntervalMs"], int)
        task_id = created["taskId"]

        done = wire.until_done(task_id)
        assert done["status"] == "completed" and done["resultType"] == "complete"
        run = done["result"]["structuredContent"]
        assert run["state"] == "completed" and run["stdout"] == "line1\nline2\nline3\n"

        # A tool error is a completed task whose result says isError.
        failing = wire.call("execRun", {"command": "exit 3"})
        if failing.get("resultType") == "task":
            failing = wire.until_done(failing["taskId"])["result"]
        assert failing["structuredContent"]["exit_code"] == 3, failing

        long = wire.call("execRun", {"command": "sleep 300"})
        assert wire.task("tasks/get", long["taskId"])["result"]["status"] == "working"
        ack = wire.task("tasks/cancel", long["taskId"])
        assert ack["result"]["resultType"] == "complete" and "status" not in ack["result"]
        cancelled = wire.until_done(long["taskId"])
        assert cancelled["status"] == "cancelled" and "result" not in cancelled

        # The task's run is an ordinary session: the default tools see it stopped.
        sessions = Wire(base, tasks=False).call("listSessions", {"status": "stopped"})["structuredContent"]
        assert [s["command"] for s in sessions["sessions"]] == ["sleep 300"]

        unknown = wire.task("tasks/get", "task_nope")
        assert unknown["error"]["code"] == -32602
        mismatched = wire.request("tasks/get", {"taskId": task_id}, "task_other")
        assert mismatched["error"]["code"] == -32020


def test_without_the_extension_calls_stay_synchronous_and_tasks_methods_are_refused(tmp_path: Path) -> None:
    with http_server(env={"RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data")}) as (base, _):
        plain = Wire(base, tasks=False)
        result = plain.call("execRun", {"command": "echo plain"})
        assert result["resultType"] == "complete" and result["structuredContent"]["stdout"] == "plain\n"
        refused = plain.task("tasks/get", "task_any")
        assert refused["error"]["code"] == -32021
        assert TASKS in refused["error"]["data"]["requiredCapabilities"]["extensions"]
        # The extension is advertised to the clients that declare it, and only to them.
        assert TASKS not in plain.request("server/discover", {})["result"]["capabilities"].get("extensions", {})
        assert TASKS in Wire(base).request("server/discover", {})["result"]["capabilities"]["extensions"]


def test_a_call_that_names_no_provider_is_a_durable_task_on_local_whatever_the_server_default(tmp_path: Path) -> None:
    """The default provider (sprites) runs no commands, so execRun without `provider` runs on local: the task
    follows that run, as it does with `provider: "local"` (it was answered at once with the run still running)."""
    env = {
        "RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data"),
        "RUNTIMES_MCP_DEFAULT_PROVIDER": "sprites",
        "SPRITES_TOKEN": "test-token",
        "SPRITES_BASE_URL": "http://127.0.0.1:9",  # never called: execRun is not a Sprites tool
    }
    with http_server(env=env) as (base, _):
        wire = Wire(base)
        created = wire.call("execRun", {"command": "sleep 0.5; echo on local"})
        assert created["resultType"] == "task" and created["status"] == "working", created
        done = wire.until_done(created["taskId"])
    assert done["status"] == "completed"
    assert done["result"]["structuredContent"]["stdout"] == "on local\n"


def test_a_task_outlives_the_server_that_created_it(tmp_path: Path) -> None:
    env = {"RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data"), "RUNTIMES_MCP_ON_EXIT": "keep"}
    with http_server(env=env) as (base, process):
        created = Wire(base).call("execRun", {"command": "sleep 1; echo survived"})
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    with http_server(env=env) as (base, _):
        done = Wire(base).until_done(created["taskId"])
    assert done["status"] == "completed"
    assert done["result"]["structuredContent"]["stdout"] == "survived\n"


def test_invoke_routine_as_a_task_and_its_idempotent_retry(tmp_path: Path) -> None:
    config = tmp_path / "routines.toml"
    config.write_text("[local.routines.slow]\ncommand = 'sleep 1; echo \"done: $ROUTINE_MESSAGE\"'\n")
    env = {"RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data"), "RUNTIMES_MCP_CONFIG": str(config)}
    with http_server(env=env) as (base, _):
        wire = Wire(base)
        args = {"routine": "slow", "message": "hi", "idempotency_key": "k1"}
        created = wire.call("invokeRoutine", args)
        assert created["resultType"] == "task"
        done = wire.until_done(created["taskId"])
        run = done["result"]["structuredContent"]
        assert done["status"] == "completed" and run["status"] == "completed" and "done: hi" in run["output"]
        # The retry finds the finished run: nothing to wait for, so the answer is the result itself.
        again = wire.call("invokeRoutine", args)
        assert again["resultType"] == "complete" and again["structuredContent"]["run_id"] == run["run_id"]


def listen(wire: Wire, task_ids: list[str]) -> list[dict[str, Any]]:
    """Every frame of a subscriptions/listen stream for these tasks, until the server closes it."""
    body, headers = wire.envelope("subscriptions/listen", {"notifications": {"taskIds": task_ids}}, None)
    frames = []
    with httpx.stream("POST", wire.url, json=body, headers=headers, timeout=30) as response:
        if response.headers["content-type"].startswith("application/json"):
            return [json.loads(response.read())]  # refused before the stream began
        for line in response.iter_lines():
            if line.startswith("data:"):
                frames.append(json.loads(line[5:]))
    return frames


def test_status_notifications_follow_a_task_to_its_end(tmp_path: Path) -> None:
    with http_server(env={"RUNTIMES_MCP_DATA_DIR": str(tmp_path / "data")}) as (base, _):
        wire = Wire(base)
        task_id = wire.call("execRun", {"command": "echo first; sleep 1; echo second"})["taskId"]
        frames = listen(wire, [task_id, "task_unknown"])
        refused = listen(Wire(base, tasks=False), [task_id])
    ack, *updates, end = frames
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["notifications"]["taskIds"] == [task_id]  # only the tasks it knows
    assert all(u["method"] == "notifications/tasks" and u["params"]["taskId"] == task_id for u in updates)
    assert updates[0]["params"]["status"] == "working" and updates[-1]["params"]["status"] == "completed"
    assert updates[-1]["params"]["result"]["structuredContent"]["stdout"] == "first\nsecond\n"
    assert end["id"] == 7 and "result" in end  # closed gracefully once the task ended
    assert refused[-1]["error"]["code"] == -32021
