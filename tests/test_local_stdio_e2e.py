"""The local provider end to end, through a real `runtimes-mcp` process over stdio, across restarts,
signals and a crash: nothing the server started outlives it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.conftest import processes_matching, stdio_params, structured
from tests.test_local_sessions import marker, wait_until_gone


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

        launchers = structured(await client.call_tool("getLaunchers", {}))
        assert [(x["name"], x["state"]) for x in launchers["launchers"]] == [("keeper", "active")]
        assert processes_matching(launcher_mark)

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
            await anyio.sleep(0.2)
            assert processes_matching(sleep_mark) and processes_matching(launcher_mark)
            pid = server_pid(config)
            os.kill(pid, signum)
            await wait_for_exit(pid)
    assert await wait_until_gone(sleep_mark) == []
    assert await wait_until_gone(launcher_mark) == []


async def test_a_crashed_servers_sessions_are_shown_as_lost_and_cleaned_up(tmp_path: Path) -> None:
    sleep_mark = marker()
    config = write_config(tmp_path / "crash.toml", marker())
    params = stdio_params("--config", str(config))
    with contextlib.suppress(Exception):  # the client may report the server going away
        async with Client(params) as client:
            run = structured(await client.call_tool("execRun", {"command": f"sleep {sleep_mark}", "wait": False}))
            pid = server_pid(config)
            os.kill(pid, signal.SIGKILL)
            await wait_for_exit(pid)
    assert processes_matching(sleep_mark), "SIGKILL gives the server no chance to clean up"

    async with Client(params) as client:
        listed = structured(await client.call_tool("listSessions", {}))
    session = next(s for s in listed["sessions"] if s["id"] == run["session_id"])
    assert session["status"] == "lost"
    assert "stopped before it finished" in session["raw"]["message"]
    assert "leftover processes were stopped" in session["raw"]["message"]
    assert await wait_until_gone(sleep_mark) == []
    # The crashed server had made the next session's files ahead of time; the restart removed them.
    sessions_dir = Path(os.environ["RUNTIMES_MCP_DATA_DIR"]) / "sessions"
    assert {entry.name.split(".")[0] for entry in sessions_dir.iterdir()} == {run["session_id"]}


async def test_keep_processes_on_exit_leaves_sessions_running_and_says_so(tmp_path: Path) -> None:
    sleep_mark = marker()
    config = tmp_path / "keep.toml"
    config.write_text("[local]\nkeep_processes_on_exit = true\n", encoding="utf-8")
    params = stdio_params("--config", str(config))
    try:
        async with Client(params) as client:
            run = structured(await client.call_tool("execRun", {"command": f"sleep {sleep_mark}", "wait": False}))
        await anyio.sleep(0.5)
        assert processes_matching(sleep_mark), "the session should outlive the server"
        async with Client(params) as client:
            listed = structured(await client.call_tool("listSessions", {}))
        session = next(s for s in listed["sessions"] if s["id"] == run["session_id"])
        assert session["status"] == "detached" and "keep_processes_on_exit" in session["raw"]["message"]
        assert processes_matching(sleep_mark), "a restart must not kill what the user chose to keep"
    finally:
        for pid in processes_matching(sleep_mark):
            os.kill(pid, signal.SIGKILL)
