"""Local sessions with real processes: output, environment, background runs, stop, timeout, paging."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from server.config import ConfigError, load_settings
from tests.conftest import appears, connect, error_text, marker, structured, wait_until_gone


async def test_exec_returns_output_exit_code_and_duration() -> None:
    async with connect() as client:
        ok = structured(await client.call_tool("execRun", {"command": "echo out; echo err >&2"}))
        failed = structured(await client.call_tool("execRun", {"command": "echo broken >&2; exit 7"}))
    assert (ok["state"], ok["exit_code"], ok["stdout"], ok["stderr"]) == ("completed", 0, "out\n", "err\n")
    assert ok["duration_ms"] is not None and ok["duration_ms"] >= 0
    assert ok["session_id"].startswith("ses_") and ok["truncated"] is False
    assert (failed["state"], failed["exit_code"], failed["stderr"]) == ("failed", 7, "broken\n")


async def test_cwd_env_and_stdin_reach_the_command(tmp_path: Any) -> None:
    async with connect() as client:
        result = structured(
            await client.call_tool(
                "execRun",
                {
                    "command": 'pwd; echo "$GREETING"; cat',
                    "cwd": "/usr/share",
                    "env": {"GREETING": "hi"},
                    "stdin": "from stdin",
                },
            )
        )
        default_cwd = structured(await client.call_tool("execRun", {"command": "pwd"}))
    assert result["stdout"] == "/usr/share\nhi\nfrom stdin"
    data_dir = str(load_settings().data_dir)
    assert default_cwd["stdout"].strip() == f"{data_dir}/sessions/{default_cwd['session_id']}/work"


async def test_child_environment_holds_no_server_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPRITES_TOKEN", "secret-marker-sprites")
    monkeypatch.setenv("ARCHASTRO_API_KEY", "secret-marker-archastro")
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "events")
    monkeypatch.setenv("SOME_UNRELATED_SERVER_VAR", "unrelated-marker")
    async with connect() as client:
        result = structured(await client.call_tool("execRun", {"command": "env", "env": {"MINE": "yes"}}))
    env = dict(line.split("=", 1) for line in result["stdout"].splitlines())
    assert set(env) - {"PWD"} == {"PATH", "HOME", "LANG", "TMPDIR", "MINE"}  # sh sets PWD itself
    assert "secret-marker" not in result["stdout"] and "unrelated-marker" not in result["stdout"]
    assert "RUNTIMES_MCP" not in result["stdout"]


async def test_background_run_is_listed_and_stop_ends_its_grandchildren() -> None:
    mark = marker()
    async with connect() as client:
        started = time.monotonic()
        run = structured(
            await client.call_tool(
                "execRun", {"command": f"sleep {mark} & sleep {mark}", "wait": False, "timeout_s": 120}
            )
        )
        assert time.monotonic() - started < 15  # answered at once: a waited run would take wait_s, 30 s
        assert run["state"] == "running" and "exit_code" not in run
        assert len(await appears(mark, at_least=3)) == 3  # the shell, its child and its background grandchild
        running = structured(await client.call_tool("listSessions", {"status": "running"}))
        assert [s["id"] for s in running["sessions"]] == [run["session_id"]]
        assert running["sessions"][0]["command"] == f"sleep {mark} & sleep {mark}"

        stop = structured(await client.call_tool("stopSession", {"session_id": run["session_id"]}))
        assert stop["stopped"] is True and stop["state"] == "stopped"
        assert await wait_until_gone(mark) == []
        again = structured(await client.call_tool("stopSession", {"session_id": run["session_id"]}))
        assert again["stopped"] is False and "already ended (stopped)" in again["message"]
        listed = structured(await client.call_tool("listSessions", {}))
        assert listed["sessions"][0]["status"] == "stopped"
        assert listed["sessions"][0]["raw"]["end_reason"] == "stop"
        missing = error_text(await client.call_tool("stopSession", {"session_id": "ses_nope"}))
    assert "no local session 'ses_nope'" in missing and "listSessions" in missing


async def test_timeout_ends_the_whole_group_and_reports_timed_out() -> None:
    mark = marker()
    async with connect() as client:
        result = structured(
            await client.call_tool("execRun", {"command": f"sleep {mark} & sleep {mark}", "timeout_s": 0.5})
        )
    assert result["state"] == "timed_out"
    assert result["exit_code"] is not None and result["exit_code"] < 0
    assert 400 <= result["duration_ms"] < 3000
    assert "timeout_s=0.5" in result["message"]
    assert await wait_until_gone(mark, 1.0) == []


async def test_a_lower_max_timeout_s_lowers_the_default_and_a_routine_above_it_stops_the_start(
    config_file: Any,
) -> None:
    body = '[local]\nmax_timeout_s = 30\n[local.routines.r]\ncommand = "cat"\n'
    async with connect(load_settings(config_file(body))) as client:
        ran = structured(await client.call_tool("execRun", {"command": "echo hi", "wait": False}))
        invoked = structured(await client.call_tool("invokeRoutine", {"routine": "r", "message": "x"}))
    assert ran["state"] == "running" and "timeout_s=30 " in ran["message"], ran
    assert invoked["status"] != "failed", invoked
    with pytest.raises(ConfigError, match=r"routines\.r\.timeout_s \(90\) is more than max_timeout_s \(30\)"):
        load_settings(config_file(body + "timeout_s = 90\n"))


async def test_a_run_growing_its_directory_on_a_disk_under_min_free_mb_is_ended_and_one_that_does_not_is_not(
    config_file: Any,
) -> None:
    """Runs at once add up past every per-run limit: none may fill the disk the server and the host need. (Here
    the floor is set above any disk's free space.)"""
    settings = load_settings(config_file("[local.limits]\nmin_free_mb = 1000000000\n"))
    async with connect(settings) as client:
        writer = structured(
            await client.call_tool("execRun", {"command": "head -c 1000000 /dev/zero > f; sleep 30", "timeout_s": 60})
        )
        reader = structured(await client.call_tool("execRun", {"command": "ls; sleep 0.3"}))
    assert writer["state"] == "failed" and "(local.limits.min_free_mb)" in writer["message"], writer
    assert writer["duration_ms"] < 20_000, writer
    assert reader["state"] == "completed", reader


async def test_a_command_that_exits_leaves_nothing_running_in_its_group() -> None:
    mark = marker()
    async with connect() as client:
        result = structured(await client.call_tool("execRun", {"command": f"(sleep {mark} &) ; echo done"}))
    assert result["stdout"] == "done\n"
    assert await wait_until_gone(mark, 3.0) == []


async def test_a_process_that_daemonizes_still_ends_with_its_session() -> None:
    # setsid and a double fork take a process out of the command's group and away from its parent; the
    # session's supervisor is a child subreaper, so such processes are still found and ended.
    mark = marker()
    async with connect() as client:
        run = structured(
            await client.call_tool(
                "execRun",
                {"command": f"setsid sh -c '(sleep {mark} &)' < /dev/null > /dev/null 2>&1; sleep 60", "wait": False},
            )
        )
        assert await appears(mark)
        stop = structured(await client.call_tool("stopSession", {"session_id": run["session_id"]}))
        assert stop["stopped"] is True
    assert await wait_until_gone(mark) == []


async def test_large_output_is_capped_to_head_and_tail_and_stays_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    command = "printf START; head -c 200000 /dev/zero | tr '\\0' a; printf END"
    async with connect() as client:
        result = structured(await client.call_tool("execRun", {"command": command}))
        assert result["truncated"] is True and result["stdout_bytes"] == 200_008
        assert result["stdout"].startswith("START") and result["stdout"].endswith("END")
        assert "bytes omitted" in result["stdout"] and len(result["stdout"]) < 17_000
        assert f"local://sessions/{result['session_id']}/stdout" in result["message"]

        full = await client.read_resource(f"local://sessions/{result['session_id']}/stdout")
        assert len(full.contents[0].text) == 200_008  # type: ignore[union-attr]

        page = structured(
            await client.call_tool("getSession", {"session_id": result["session_id"], "stdout_offset": 199_000})
        )
        assert page["stdout"].endswith("END") and page["stdout_next_offset"] == 200_008
        assert page["truncated"] is False and page["stdout_bytes"] == 200_008
        first = structured(
            await client.call_tool("getSession", {"session_id": result["session_id"], "stdout_offset": 0})
        )
        assert first["stdout"].startswith("STARTaaaa") and first["stdout_next_offset"] == 16_384
        assert first["truncated"] is True and "stdout_offset" in first["message"]

        detail = structured(await client.call_tool("getSession", {"session_id": result["session_id"]}))
        assert detail["state"] == "completed" and detail["stdout_bytes"] == 200_008


async def test_a_run_past_its_output_cap_is_ended_and_says_where_it_was_cut(config_file: Any) -> None:
    settings = load_settings(config_file("[local]\nmax_output_mb = 1\n"))
    async with connect(settings) as client:
        result = structured(await client.call_tool("execRun", {"command": "yes", "timeout_s": 30}))
    assert result["state"] == "failed" and "max_output_mb" in result["message"]
    cap = 1024 * 1024
    assert cap < result["stdout_bytes"] < cap + 200
    tail = (settings.data_dir / "sessions" / result["session_id"] / "stdout").read_bytes()[-120:]
    assert b"output cut here at 1048576 bytes" in tail
    assert result["duration_ms"] < 10_000


async def test_output_past_the_cap_is_cut_at_the_end_of_a_run_too_short_to_be_watched(config_file: Any) -> None:
    settings = load_settings(config_file("[local]\nmax_output_mb = 1\n"))
    async with connect(settings) as client:  # over before the supervisor's first look at its output
        result = structured(await client.call_tool("execRun", {"command": "head -c 3000000 /dev/zero >&2"}))
    assert result["state"] == "failed" and "stderr passed 1 MiB (local.max_output_mb)" in result["message"], result
    assert 1024 * 1024 < result["stderr_bytes"] < 1024 * 1024 + 200
    tail = (settings.data_dir / "sessions" / result["session_id"] / "stderr").read_bytes()[-120:]
    assert b"output cut here at 1048576 bytes" in tail


async def test_a_character_split_between_two_writes_reaches_an_agent_following_offsets_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "sessions")
    # The euro sign (E2 82 AC) split across two writes; the run ends on two bytes of a character never finished.
    command = "printf 'ab\\342\\202'; read go; printf '\\254cd\\342\\202'"
    async with connect() as client:
        started = await client.call_tool("execRun", {"command": command, "interactive": True, "wait": False})
        session = {"session_id": structured(started)["session_id"]}
        for _ in range(500):
            whole = structured(await client.call_tool("getSession", session))
            if whole["stdout_bytes"] == 4:
                break
            await anyio.sleep(0.01)
        page = structured(await client.call_tool("getSession", {**session, "stdout_offset": 0}))
        assert (whole["stdout"], whole["stdout_next_offset"]) == ("ab", 2), whole
        assert (page["stdout"], page["stdout_next_offset"], page["truncated"]) == ("ab", 2, False), page
        await client.call_tool("sendInput", {**session, "text": "go\n"})
        rest = structured(await client.call_tool("getSession", {**session, "stdout_offset": 2, "wait_s": 20}))
    assert rest["state"] == "completed" and (rest["stdout"], rest["stdout_next_offset"]) == ("\u20accd\ufffd", 9)


async def test_an_offset_past_the_end_of_the_output_is_refused_with_the_offset_to_use() -> None:
    async with connect() as client:
        ended = structured(await client.call_tool("execRun", {"command": "printf 0123456789"}))["session_id"]
        at_end = structured(await client.call_tool("getSession", {"session_id": ended, "stdout_offset": 10}))
        past = await client.call_tool("getSession", {"session_id": ended, "stdout_offset": 11})
        started = await client.call_tool("execRun", {"command": "printf abc; sleep 30", "wait": False})
        running = {"session_id": structured(started)["session_id"]}
        for _ in range(500):
            if structured(await client.call_tool("getSession", running))["stdout_bytes"] == 3:
                break
            await anyio.sleep(0.01)
        asked = time.monotonic()
        ahead = await client.call_tool("getSession", {**running, "stdout_offset": 4, "wait_s": 30})
        answered_in = time.monotonic() - asked
        await client.call_tool("stopSession", running)
    assert (at_end["stdout"], at_end["stdout_next_offset"]) == ("", 10)
    assert "stdout_offset=11 is past the end of its stdout (10 bytes)" in error_text(past)
    assert "Next: Pass stdout_offset=10 " in error_text(past)
    assert "stdout_offset=4 is past the end of its stdout (3 bytes so far)" in error_text(ahead)
    assert answered_in < 20  # refused before the wait, not after it


async def test_progress_is_reported_while_waiting() -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with connect() as client:
        result = await client.call_tool(
            "execRun", {"command": "sleep 2.5; echo ok", "timeout_s": 30}, progress_callback=on_progress
        )
    assert structured(result)["stdout"] == "ok\n"
    assert len(seen) >= 2
    assert all(total == 30 for _, total, _ in seen)
    assert seen[-1][0] > seen[0][0] and "running" in (seen[0][2] or "")


async def test_cancelling_a_waiting_call_leaves_the_session_running() -> None:
    mark = marker()
    async with connect() as client:
        with anyio.move_on_after(1.0):
            await client.call_tool("execRun", {"command": f"sleep {mark}", "timeout_s": 60})
            pytest.fail("the call should still be waiting")
        await anyio.sleep(0.3)
        running = structured(await client.call_tool("listSessions", {"status": "running"}))
        assert len(running["sessions"]) == 1 and await appears(mark)
        stop = structured(await client.call_tool("stopSession", {"session_id": running["sessions"][0]["id"]}))
        assert stop["stopped"] is True
    assert await wait_until_gone(mark) == []


async def test_list_sessions_filters_pages_and_checks_arguments() -> None:
    async with connect() as client:
        for code in (0, 1, 0, 2):
            await client.call_tool("execRun", {"command": f"exit {code}"})
        first = structured(await client.call_tool("listSessions", {"limit": 3}))
        assert first["count"] == 3 and first["next_cursor"]
        rest = structured(await client.call_tool("listSessions", {"limit": 3, "cursor": first["next_cursor"]}))
        assert rest["count"] == 1 and "next_cursor" not in rest
        assert [s["status"] for s in first["sessions"] + rest["sessions"]] == [
            "failed",
            "completed",
            "failed",
            "completed",
        ]
        failed = structured(await client.call_tool("listSessions", {"status": "failed"}))
        assert failed["count"] == 2 and {s["raw"]["exit_code"] for s in failed["sessions"]} == {1, 2}
        both = structured(await client.call_tool("listSessions", {"status": "failed,completed"}))
        assert both["count"] == 4
        bad_status = error_text(await client.call_tool("listSessions", {"status": "sleeping"}))
        bad_cursor = error_text(await client.call_tool("listSessions", {"cursor": "zzz"}))
    assert "unknown status sleeping" in bad_status and "running" in bad_status
    assert "not one this server returned" in bad_cursor


async def test_bad_exec_arguments_are_clear_errors(tmp_path: Any) -> None:
    async with connect() as client:
        cap = error_text(await client.call_tool("execRun", {"command": "true", "timeout_s": 99_999}))
        cwd = error_text(await client.call_tool("execRun", {"command": "true", "cwd": "/usr/absent-runtimes-mcp"}))
        private = error_text(await client.call_tool("execRun", {"command": "true", "cwd": str(tmp_path)}))
        env = error_text(await client.call_tool("execRun", {"command": "true", "env": {"N": 1}}))
        empty = error_text(await client.call_tool("execRun", {"command": "  "}))
        long_cwd = error_text(await client.call_tool("execRun", {"command": "true", "cwd": "/" + "x" * 5000}))
        relative = error_text(await client.call_tool("execRun", {"command": "true", "cwd": "tmp"}))
        a_file = error_text(await client.call_tool("execRun", {"command": "true", "cwd": "/etc/passwd"}))
    assert "local.max_timeout_s" in cap and "3600" in cap
    assert "is not an existing directory" in cwd and "is not an existing directory" in a_file
    assert "private" in private and "workspace" in private
    assert "is too long" in long_cwd and len(long_cwd) < 600
    assert "is not an absolute path" in relative
    assert "env values must be strings" in env and "N" in env
    assert "command is empty" in empty
    for text in (cap, cwd, env, empty, long_cwd, relative, a_file, private):
        assert "bug" not in text and "Next:" in text
        assert "Traceback" not in text and text.startswith("Error executing tool execRun: local:")


async def test_out_of_range_numbers_are_rejected_before_they_reach_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "events")
    huge = 2**70
    async with connect() as client:
        since = error_text(await client.call_tool("getEvents", {"since": huge}))
        offset = error_text(await client.call_tool("getLaunchers", {"offset": huge}))
        cursor = error_text(await client.call_tool("listSessions", {"cursor": str(huge)}))
        negative = error_text(await client.call_tool("listSessions", {"cursor": "-5"}))
    assert "less than or equal to 9007199254740991" in since and "less than or equal to" in offset
    assert "not one this server returned" in cursor and "not one this server returned" in negative
    for text in (since, offset, cursor, negative):
        assert "failed inside the server" not in text


async def test_the_data_directory_holds_exactly_the_listed_sessions(tmp_path: Any) -> None:
    # The next session's directory is made ahead of time; whatever was not used is removed at shutdown,
    # and a command that could not start leaves nothing behind.
    async with connect() as client:
        await client.call_tool("execRun", {"command": "echo one"})
        await client.call_tool("execRun", {"command": "cat", "stdin": "two", "cwd": "/usr"})
        too_long = error_text(await client.call_tool("execRun", {"command": "echo " + "x" * 200_000}))
        await client.call_tool("execRun", {"command": "echo three", "wait": False})
        listed = structured(await client.call_tool("listSessions", {}))
    assert "too large for the operating system" in too_long and "stdin" in too_long
    ids = {s["id"] for s in listed["sessions"]}
    assert len(ids) == 3
    sessions_dir = load_settings().data_dir / "sessions"
    deadline = time.monotonic() + 5
    while {entry.name for entry in sessions_dir.iterdir()} != ids and time.monotonic() < deadline:
        await anyio.sleep(0.05)  # the spare's supervisor removes its directory as it exits
    assert {entry.name for entry in sessions_dir.iterdir()} == ids
    cwd_run = next(s for s in listed["sessions"] if s.get("raw", {}).get("cwd") == "/usr")
    # A plain run's row leaves out what every plain run has: origin exec and its own directory (tokens)
    plain = [s.get("raw", {}) for s in listed["sessions"] if s is not cwd_run]
    assert len(plain) == 2 and not any("origin" in raw or "cwd" in raw for raw in plain), plain
    assert (sessions_dir / cwd_run["id"] / "stdin").read_text() == "two"


async def test_the_data_directory_is_private_to_the_servers_user() -> None:
    async with connect() as client:
        run = structured(await client.call_tool("execRun", {"command": "echo secret-output"}))
    data = load_settings().data_dir
    session = data / "sessions" / run["session_id"]
    for path in (data, data / "sessions", session, session / "work"):
        assert path.stat().st_mode & 0o777 == 0o700, path
    for path in (data / "local.sqlite3", session / "stdout", session / "job.json"):
        assert path.stat().st_mode & 0o777 == 0o600, path


async def test_an_unusable_data_directory_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    data = tmp_path / "blocked"
    data.mkdir()
    (data / "sessions").write_text("not a directory")
    monkeypatch.setenv("RUNTIMES_MCP_DATA_DIR", str(data))
    async with connect() as client:
        message = error_text(await client.call_tool("execRun", {"command": "true"}))
    assert "cannot create the session's files" in message and "RUNTIMES_MCP_DATA_DIR" in message
    assert "bug" not in message


# --- durable sessions: a session belongs to the data directory, not to the server that started it ---------
@pytest.fixture
def keep_on_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_ON_EXIT", "keep")


@pytest.mark.usefixtures("keep_on_exit")
async def test_a_background_run_outlives_its_server_and_the_next_reads_its_real_outcome() -> None:
    async with connect() as client:
        run = structured(await client.call_tool("execRun", {"command": "sleep 0.6; echo late; exit 3", "wait": False}))
    await anyio.sleep(1.2)  # it ends while no server runs
    async with connect() as client:
        detail = structured(await client.call_tool("listSessions", {}))["sessions"][0]
        output = structured(await client.call_tool("execRun", {"command": "true"}))  # the runtime still works
    assert detail["id"] == run["session_id"] and output["state"] == "completed"
    assert (detail["status"], detail["raw"]["exit_code"], detail["raw"]["end_reason"]) == ("failed", 3, "exit")
    record = json.loads((load_settings().data_dir / "sessions" / run["session_id"] / "job.json").read_text())
    assert record["result"]["exit_code"] == 3 and record["command"].endswith("exit 3")


@pytest.mark.usefixtures("keep_on_exit")
async def test_the_timeout_is_enforced_while_no_server_runs() -> None:
    mark = marker()
    async with connect() as client:
        run = structured(
            await client.call_tool("execRun", {"command": f"sleep {mark}", "wait": False, "timeout_s": 1.0})
        )
    assert await appears(mark, within_s=1.0)
    assert await wait_until_gone(mark, 5.0) == []
    async with connect() as client:
        listed = structured(await client.call_tool("listSessions", {}))
    session = next(s for s in listed["sessions"] if s["id"] == run["session_id"])
    assert session["status"] == "timed_out" and session["raw"]["end_reason"] == "timeout"


@pytest.mark.usefixtures("keep_on_exit")
async def test_two_servers_on_one_data_directory_see_and_stop_each_others_sessions() -> None:
    mark = marker()
    async with connect() as first, connect() as second:
        run = structured(await first.call_tool("execRun", {"command": f"sleep {mark}", "wait": False}))
        seen = structured(await second.call_tool("listSessions", {"status": "running"}))
        assert [s["id"] for s in seen["sessions"]] == [run["session_id"]]
        stop = structured(await second.call_tool("stopSession", {"session_id": run["session_id"]}))
        assert stop["stopped"] is True and stop["state"] == "stopped"
        assert await wait_until_gone(mark) == []
        for client in (first, second):
            listed = structured(await client.call_tool("listSessions", {}))["sessions"][0]
            assert (listed["status"], listed["raw"]["end_reason"]) == ("stopped", "stop")
        events = await first.read_resource("events://local")
    ended = [e for e in json.loads(events.contents[0].text)["events"] if e["type"] == "session.stopped"]  # type: ignore[union-attr]
    assert len(ended) == 1, "two servers recording one end must record it once"


async def test_on_exit_stop_ends_the_servers_sessions_with_that_reason() -> None:
    mark = marker()
    async with connect() as client:
        run = structured(await client.call_tool("execRun", {"command": f"sleep {mark}", "wait": False}))
    assert await wait_until_gone(mark) == []
    async with connect() as client:
        session = structured(await client.call_tool("listSessions", {}))["sessions"][0]
    assert session["id"] == run["session_id"]
    assert (session["status"], session["raw"]["end_reason"]) == ("stopped", "server_shutdown")
    assert "on_exit" in session["raw"]["message"]


@pytest.mark.usefixtures("keep_on_exit")
async def test_a_session_whose_supervisor_was_killed_is_lost_and_its_processes_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Unsandboxed, what the command started outlives its supervisor until a server ends it (in the sandbox it
    # dies with the supervisor: see test_sandbox).
    monkeypatch.setenv("RUNTIMES_MCP_SANDBOX", "off")
    mark = marker()
    async with connect() as client:
        run = structured(await client.call_tool("execRun", {"command": f"sleep {mark} & sleep {mark}", "wait": False}))
    job = json.loads((load_settings().data_dir / "sessions" / run["session_id"] / "job.json").read_text())
    os.kill(int(job["supervisor"].split(":")[1]), 9)
    assert await appears(mark), "the background grandchild outlives a SIGKILLed supervisor"
    async with connect() as client:
        session = structured(await client.call_tool("listSessions", {}))["sessions"][0]
    assert (session["status"], session["raw"]["end_reason"]) == ("lost", "lost")
    assert "leftover processes were stopped" in session["raw"]["message"]
    assert await wait_until_gone(mark) == []


def _disk_bytes(top: Path) -> int:
    """Blocks under `top`, counting what a retention pass deletes meanwhile as gone."""
    total = 0
    for folder, _, files in os.walk(top):
        for name in [".", *files]:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


async def test_retention_keeps_the_data_directory_under_its_cap(config_file: Any) -> None:
    settings = load_settings(config_file("[local]\nmax_data_mb = 1\n"))
    command = "head -c 20000 /dev/zero | tr '\\0' x"
    async with connect(settings) as client:
        for _ in range(300):
            last = structured(await client.call_tool("execRun", {"command": command}))
        # Retention runs beside the runs, so under load it lags by the runs of one pass; it must catch up
        # (a pass asked for during another is not dropped) while the server is idle.
        for _ in range(200):
            total = _disk_bytes(settings.data_dir)
            if total <= 1.5 * 1024 * 1024:
                break
            await anyio.sleep(0.05)
    assert total <= 1.5 * 1024 * 1024, total
    with sqlite3.connect(settings.data_dir / "local.sqlite3") as db:
        kept = {row[0] for row in db.execute("SELECT id FROM sessions")}
    assert last["session_id"] in kept and len(kept) < 300, "the newest runs stay, the oldest went"
    sessions_dir = settings.data_dir / "sessions"
    deadline = time.monotonic() + 5
    while {p.name for p in sessions_dir.iterdir()} != kept and time.monotonic() < deadline:
        await anyio.sleep(0.05)  # the spare's supervisor removes its directory as it exits
    assert {p.name for p in sessions_dir.iterdir()} == kept


def test_a_process_identity_survives_pid_reuse() -> None:
    # Ownership is a boot id, a pid and that process's start time: a restarted server that got the same pid
    # (PID 1 in a container) is not taken for the one that crashed.
    from providers.local.supervisor import records as supervisor

    me = supervisor.identity(os.getpid())
    assert me is not None and supervisor.alive(me)
    boot, pid, start = me.split(":")
    assert not supervisor.alive(f"{boot}:{pid}:{int(start) - 1}")
    assert not supervisor.alive(f"otherboot:{pid}:{start}")
    assert not supervisor.alive(None) and not supervisor.alive("garbage")


async def test_retention_counts_every_finished_session_however_many_and_prunes_by_age(tmp_path: Path) -> None:
    """Sizes are summed in the database over all finished sessions (the pass once looked at the oldest 10,000
    only, and stat'ed the rest on every pass); the oldest go first, those past retention_days always."""
    from providers.local.ids import place_of
    from providers.local.retention import Retention
    from providers.local.store import Store
    from providers.local.tables import SessionRow

    store = await Store.open(tmp_path / "local.sqlite3")
    place, now = place_of(tmp_path), time.time()
    (tmp_path / "sessions").mkdir()
    for n in range(12_000):  # records only: a missing directory is simply gone already
        row = SessionRow(0, f"ses_{n:05d}", "completed", "true", "/", "exec", started_at=now, ended_at=now - 12_000 + n)
        row.place = place
        store.save_session(row)
        store.set_disk_bytes(row.id, 10_000)
    old = tmp_path / "sessions" / "ses_00000"
    (old / "work").mkdir(parents=True)
    await store.flush()
    retention = Retention(store, tmp_path, retention_days=7, max_data_mb=50)  # the records say 120 MB
    deleted, _ = await retention.run_pass()
    kept = {r[0] for r in await store._rows("SELECT id FROM sessions")}
    assert 40 * 1024 * 1024 < 10_000 * len(kept) <= 50 * 1024 * 1024, len(kept)  # the database takes the rest
    assert kept == {f"ses_{n:05d}" for n in range(12_000 - len(kept), 12_000)}  # the newest
    assert deleted == 12_000 - len(kept) and not old.exists()

    aged = Retention(store, tmp_path, retention_days=1 / 86_400, max_data_mb=1024)  # one second
    await aged.run_pass()  # the rest ended more than a second ago...
    assert await store._rows("SELECT count(*) FROM sessions") == [(0,)]  # ...so they all go, whatever the size
    await store.close()


async def test_retention_prunes_the_oldest_events_to_fit_and_counts_only_what_it_deleted(tmp_path: Path) -> None:
    """Events past the cap go oldest first; a pass that deletes nothing says 0 however many events arrive
    meanwhile (a difference of counts once made every pass fold the WAL back, on the event loop)."""
    from providers.local.retention import Retention
    from providers.local.store import Store
    from providers.local.tables import EventRow

    store = await Store.open(tmp_path / "local.sqlite3")
    now_ms = int(time.time() * 1000)
    for n in range(300):  # ~3 MB of events against a 1 MB cap
        store.insert_event(EventRow(f"evt_{n:04d}", "box", "log", {"n": n, "text": "x" * 10_000}, now_ms + n))
    await store.flush()
    retention = Retention(store, tmp_path, retention_days=7, max_data_mb=1)
    _, deleted = await retention.run_pass()
    kept = [r[0] for r in await store._rows("SELECT id FROM events ORDER BY seq")]
    assert deleted == 300 - len(kept) and 0 < len(kept) < 100, (deleted, len(kept))
    assert kept == [f"evt_{n:04d}" for n in range(300 - len(kept), 300)]  # the newest

    roomy = Retention(store, tmp_path, retention_days=7, max_data_mb=1024)
    async with anyio.create_task_group() as tg:

        async def keep_adding() -> None:
            for n in range(200):
                store.insert_event(EventRow(f"new_{n:04d}", "box", "log", {"n": n}, now_ms + 1_000 + n))
                await store.flush()

        tg.start_soon(keep_adding)
        await anyio.lowlevel.checkpoint()
        assert await roomy.run_pass() == (0, 0)
    assert len(await store._rows("SELECT id FROM events")) == len(kept) + 200
    await store.close()


async def test_a_run_still_going_says_when_it_will_be_ended_and_how_to_allow_longer() -> None:
    async with connect() as client:
        result = structured(await client.call_tool("execRun", {"command": "sleep 30", "timeout_s": 20, "wait_s": 0.2}))
        background = structured(await client.call_tool("execRun", {"command": "sleep 30", "wait": False}))
        for session in (result, background):
            await client.call_tool("stopSession", {"session_id": session["session_id"]})
    assert result["state"] == "running"
    assert "timeout_s=20" in result["message"] and "larger timeout_s (up to 3600" in result["message"]
    assert "timeout_s=60" in background["message"] and "getSession" in background["message"]
