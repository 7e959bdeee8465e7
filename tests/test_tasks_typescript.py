"""Tasks in their 2025-11-25 form, driven by the official TypeScript SDK's client (@modelcontextprotocol/sdk, its
`client.experimental.tasks`) over Streamable HTTP and stdio: execRun made a task by the SDK itself, followed from
taskCreated through status updates to the run's output; another cancelled (its local session ends stopped); an
unknown task; and a plain call beside them, answered synchronously. The SDK is installed once into the test cache
(tests/test_external_clients.py); the tests skip only when node is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_external_clients import ROOT, pytestmark, ts_client  # noqa: F401  (skips without node; the SDK)
from tests.test_http import TOKEN, http_server


@pytest.fixture(scope="module")
def ts_tasks(ts_client: Path) -> Path:  # noqa: F811
    script = ts_client.parent / "ts_tasks.mjs"  # beside node_modules, where node finds the SDK
    shutil.copyfile(ROOT / "tests" / "clients" / "ts_tasks.mjs", script)
    return script


def check(output: str) -> None:
    report: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    assert report["tasksCapability"] == {"cancel": {}, "requests": {"tools": {"call": {}}}}
    assert report["taskSupport"] == {"execRun": "optional", "invokeRoutine": "optional"}

    created, *statuses, result = report["followed"]
    assert created["type"] == "taskCreated" and created["status"] == "working", report["followed"]
    assert [s["type"] for s in statuses] == ["taskStatus"] * len(statuses) and len(statuses) >= 2
    assert statuses[0]["status"] == "working" and statuses[-1]["status"] == "completed"
    assert {s["taskId"] for s in statuses} == {created["taskId"]}
    assert result == {"type": "result", "stdout": "one\ntwo\n", "state": "completed", "isError": False}

    assert report["cancelled"][0]["type"] == "taskCreated" and report["cancelled"][0]["ttl"] > 0
    assert report["cancelAnswer"] == {"status": "cancelled", "taskId": report["cancelled"][0]["taskId"]}
    assert report["cancelled"][-1]["type"] == "error" and "cancelled" in report["cancelled"][-1]["message"]
    assert report["afterCancel"] == "cancelled"
    assert report["stoppedCommands"] == ["sleep 300"]  # the run behind the task was stopped

    assert report["unknown"]["code"] == -32602 and "task_nope" in report["unknown"]["message"]
    assert report["plain"] == {"stdout": "plain\n", "isError": False, "task": False}


def test_typescript_sdk_runs_exec_run_as_a_task_over_http(ts_tasks: Path) -> None:
    with http_server(env={"RUNTIMES_MCP_HTTP_TOKEN": TOKEN}) as (base, _):
        result = subprocess.run(
            ["node", str(ts_tasks), "http", f"{base}/mcp", TOKEN],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ),
        )
    assert result.returncode == 0, result.stderr[-2000:]
    check(result.stdout)


def test_typescript_sdk_runs_exec_run_as_a_task_over_stdio(ts_tasks: Path) -> None:
    result = subprocess.run(
        ["node", str(ts_tasks), "stdio", sys.executable, "-m", "server.cli"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    check(result.stdout)
