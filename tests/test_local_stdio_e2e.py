"""The local provider end to end, through a real `runtimes-mcp` process over stdio, across restarts,
signals and a crash: nothing the server started outlives it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.conftest import appears, marker, processes_matching, stdio_params, structured, wait_until_gone


def write_config(path: Path, launcher_mark: str) -> Path:
    path.write_text(
        f"""
[local.routines.shout]
command = "tr a-z A-Z"
description = "upper-case the message"

[local.launchers.keeper]
command = "sleep {launcher_mark}"
description = "a long-lived service"
""",
        encoding="utf-8",
    )
    return path


def server_pid(config: Path) -> int:
    pids = processes_matching(str(config))
    assert len(pids) == 1, pids
    return pids[0]


async def wait_for_exit(pid: int, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").read_bytes().split(b") ", 1)[1][:1] == b"Z":
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"server {pid} did not exit")


async def test_local_provider_done_when_scenario(tmp_path: Path) -> None:
    launcher_mark, sleep_mark = marker(), marker()
    config = write_config(tmp_path / "one-routine-one-launcher.toml", launcher_mark)
    params = stdio_params("--config", str(config))

    async with Client(params) as client:
        echo = structured(await client.call_tool("execRun", {"command": "echo hello"}))
        assert echo["stdout"] == "hello\n" and echo["state"] == "completed"

        background = structured(await client.call_tool("execRun", {"command": f"sleep {sleep_mark}", "wait": False}))
        listed = structured(await client.call_tool("listSessions", {"status": "running"}))
        assert background["session_id"] in [s["id"] for s in listed["sessions"]]
        stopped = structured(await client.call_tool("stopSession", {"session_id": background["session_id"]}))
        assert stopped["stopped"] is True
        assert await wait_until_gone(sleep_mark) == []

        timed = structured(await client.call_tool("execRun", {"command": "sleep 30", "timeout_s": 0.5}))
        assert timed["state"] == "timed_out"

        run = structured(
            await client.call_tool(
                "invokeRoutine", {"routine": "shout", "message": "quiet please", "idempotency_key": "k"}
            )
        )
        assert run["status"] == "completed" and run["output"] == "QUIET PLEASE"
        repeat = structured(
            await client.call_tool(
                "invokeRoutine", {"routine": "shout", "message": "quiet please", "idempotency_key": "k"}
            )
        )
        assert repeat["run_id"] == run["run_id"] and repeat["deduplicated"] is True

        assert await appears(launcher_mark)
        launchers = structured(await client.call_tool("getLaunchers", {}))
        assert [(x["name"], x["state"]) for x in launchers["launchers"]] == [("keeper", "running")]

        event = structured(await client.call_tool("storeEvent", {"type": "before.restart", "data": {"n": 1}}))
        bad = await client.call_tool("execRun", {"command": 12})
        assert bad.is_error and "Traceback" not in bad.content[0].text  # type: ignore[union-attr]

    # stdin closed: the server exits and takes its launcher with it
    assert await wait_until_gone(launcher_mark) == []

    async with Client(params) as client:
        events = structured(await client.call_tool("listSessions", {"limit": 10}))
        assert background["session_id"] in [s["id"] for s in events["sessions"]]
        kept = await client.read_resource("events://local")
        assert event["event_id"] in kept.contents[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_the_server_and_everything_it_started(tmp_path: Path, signum: int) -> None:
    launcher_mark, sleep_mark = marker(), marker()
    config = write_config(tmp_path / f"signal-{signum}.toml", launcher_mark)
    with contextlib.suppress(Exception):  # the client may report the server going away
        async with Client(stdio_params("--config", str(config))) as client:
            structured(await client.call_tool("execRun", {"command": f"sleep {sleep_mark}", "wait": False}))
            assert await appears(sleep_mark) and await appears(launcher_mark)
            pid = server_pid(config)
            os.kill(pid, signum)
            await wait_for_exit(pid)
    assert await wait_until_gone(sleep_mark) == []
    assert await wait_until_gone(launcher_mark) == []


async def test_a_crashed_server_leaves_its_session_stoppable_and_one_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_ON_EXIT", "keep")
    launcher_mark, sleep_mark = marker(), marker()
    config = write_config(tmp_path / "crash.toml", launcher_mark)
    params = stdio_params("--config", str(config))
    waited_mark = marker()
    with contextlib.suppress(Exception):  # the client may report the server going away
        async with Client(params) as client, anyio.create_task_group() as tg:
            run = structured(await client.call_tool("execRun", {"command": f"sleep {sleep_mark}", "wait": False}))
            # and one the client is waiting for when the server dies
            tg.start_soon(client.call_tool, "execRun", {"command": f"sleep {waited_mark}", "timeout_s": 120})
            assert await appears(launcher_mark) and await appears(waited_mark)
            pid = server_pid(config)
            os.kill(pid, signal.SIGKILL)
            await wait_for_exit(pid)
    assert processes_matching(sleep_mark), "the session belongs to the data directory, not to the server"
    assert processes_matching(waited_mark), "so does one a client was waiting for"

    async with Client(params) as client:
        await anyio.sleep(0.5)
        launcher_processes = [p for p in processes_matching(launcher_mark) if b"sleep" in _comm(p)]
        assert len(launcher_processes) == 1, "exactly one launcher after the restart"
        listed = structured(await client.call_tool("listSessions", {"status": "running"}))
        running = {s["command"]: s["id"] for s in listed["sessions"]}
        assert running[f"sleep {sleep_mark}"] == run["session_id"]
        for session_id in running.values():
            stopped = structured(await client.call_tool("stopSession", {"session_id": session_id}))
            assert stopped["stopped"] is True and stopped["state"] == "stopped"
        assert await wait_until_gone(sleep_mark) == [] and await wait_until_gone(waited_mark) == []
    assert await wait_until_gone(launcher_mark) == []


def _comm(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/comm").read_bytes()
    except OSError:
        return b""


def test_the_readme_background_example_works_with_one_shot_calls(tmp_path: Path) -> None:
    """`runtimes-mcp call` starts a server per call: a background run must outlive it, be listed by the next
    one, stopped by a third, and shown stopped with the reason by a fourth."""
    env = {k: v for k, v in os.environ.items() if k != "RUNTIMES_MCP_ON_EXIT"}  # the default, as a user has it
    mark = marker()

    def call(tool: str, arguments: str) -> dict[str, object]:
        result = subprocess.run(
            [sys.executable, "-m", "server.cli", "call", tool, arguments],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        parsed: dict[str, object] = json.loads(result.stdout)
        return parsed

    started = call("execRun", f'{{"command": "sleep {mark}", "wait": false}}')
    assert started["state"] == "running"
    time.sleep(0.3)  # the one-shot server is gone by now
    assert anyio.run(appears, mark), "the session outlives the one-shot server"
    running = call("listSessions", '{"status": "running"}')
    assert [s["id"] for s in running["sessions"]] == [started["session_id"]]  # type: ignore[index]
    stopped = call("stopSession", json.dumps({"session_id": started["session_id"]}))
    assert stopped["stopped"] is True
    assert not processes_matching(mark)
    listed = call("listSessions", "{}")
    session = listed["sessions"][0]  # type: ignore[index]
    assert (session["status"], session["raw"]["end_reason"]) == ("stopped", "stop")
