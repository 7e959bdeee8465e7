"""Local routines (config-defined commands, idempotent by key) and launchers (kept running, then stopped)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.config import load_settings
from tests.conftest import appears, connect, error_text, marker, processes_matching, structured, wait_until_gone

ECHO_ROUTINE = 'echo ran >> "$COUNTER"; cat; printf "|%s|%s|%s" "$ROUTINE_MESSAGE" "$ROUTINE_NAME" "$ROUTINE_METADATA"'


@pytest.fixture
def routines_config(config_file: Any, tmp_path: Path) -> Path:
    counter = tmp_path / "runs.log"
    path: Path = config_file(
        f"""
        toolsets = ["routines", "launchers"]

        [local.sandbox]
        writable_paths = ["{tmp_path}"]  # the routines count their runs in a file here

        [local.routines.echo]
        command = '{ECHO_ROUTINE}'
        description = "echo the message back"
        env = {{ COUNTER = "{counter}" }}

        [local.routines.slow]
        command = 'echo ran >> "$COUNTER"; sleep 1; echo slow-done'
        env = {{ COUNTER = "{counter}" }}

        [local.routines.flaky]
        command = 'echo ran >> "$COUNTER"; echo "it broke" >&2; exit 3'
        env = {{ COUNTER = "{counter}" }}
        """
    )
    return path


def runs_logged(tmp_path: Path) -> int:
    log = tmp_path / "runs.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


async def test_routine_gets_its_message_on_stdin_and_in_the_environment(routines_config: Path) -> None:
    async with connect(load_settings(routines_config)) as client:
        run = structured(
            await client.call_tool(
                "invokeRoutine", {"routine": "echo", "message": "hello there", "metadata": {"ticket": 7}}
            )
        )
        listed = structured(await client.call_tool("listSessions", {}))["sessions"]
    assert [row["raw"]["origin"] for row in listed] == ["routine:echo"]  # not a plain run: its row says so
    assert run["status"] == "completed" and run["exit_code"] == 0
    assert run["output"] == 'hello there|hello there|echo|{"ticket": 7}'
    assert run["run_id"].startswith("run_") and run["session_id"].startswith("ses_")
    assert run["deduplicated"] is False


async def test_same_idempotency_key_returns_the_same_run_without_running_twice(
    routines_config: Path, tmp_path: Path
) -> None:
    async with connect(load_settings(routines_config)) as client:
        first = structured(
            await client.call_tool("invokeRoutine", {"routine": "echo", "message": "once", "idempotency_key": "job-1"})
        )
        again = structured(
            await client.call_tool("invokeRoutine", {"routine": "echo", "message": "once", "idempotency_key": "job-1"})
        )
        reused = error_text(
            await client.call_tool(
                "invokeRoutine", {"routine": "echo", "message": "other work", "idempotency_key": "job-1"}
            )
        )
        other = structured(
            await client.call_tool(
                "invokeRoutine", {"routine": "echo", "message": "new key", "idempotency_key": "job-2"}
            )
        )
        fetched = structured(await client.call_tool("getRoutineRun", {"run_id": first["run_id"]}))
    assert again["run_id"] == first["run_id"] and again["deduplicated"] is True
    assert again["output"] == first["output"]
    assert other["run_id"] != first["run_id"]
    assert fetched["run_id"] == first["run_id"] and fetched["status"] == "completed"
    assert "job-1" in reused and "different message" in reused and first["run_id"] in reused
    assert runs_logged(tmp_path) == 2


async def test_concurrent_invocations_with_one_key_run_once(routines_config: Path, tmp_path: Path) -> None:
    results: list[dict[str, Any]] = []
    async with connect(load_settings(routines_config)) as client:

        async def invoke() -> None:
            results.append(
                structured(
                    await client.call_tool(
                        "invokeRoutine", {"routine": "slow", "message": "m", "idempotency_key": "same"}
                    )
                )
            )

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(invoke)
    assert len({r["run_id"] for r in results}) == 1
    assert sum(not r["deduplicated"] for r in results) == 1
    assert runs_logged(tmp_path) == 1


async def test_failed_routine_reports_why_and_a_retry_with_its_key_runs_again(
    routines_config: Path, tmp_path: Path
) -> None:
    async with connect(load_settings(routines_config)) as client:
        failed = structured(
            await client.call_tool("invokeRoutine", {"routine": "flaky", "message": "x", "idempotency_key": "retry-me"})
        )
        retried = structured(
            await client.call_tool("invokeRoutine", {"routine": "flaky", "message": "x", "idempotency_key": "retry-me"})
        )
    assert failed["status"] == "failed" and failed["exit_code"] == 3 and "it broke" in failed["message"]
    assert retried["run_id"] != failed["run_id"] and retried["deduplicated"] is False
    assert runs_logged(tmp_path) == 2


async def test_concurrent_retries_after_a_failure_start_exactly_one_new_run(
    routines_config: Path, tmp_path: Path
) -> None:
    async with connect(load_settings(routines_config)) as client:
        failed = structured(
            await client.call_tool("invokeRoutine", {"routine": "flaky", "message": "x", "idempotency_key": "k8"})
        )
        assert failed["status"] == "failed"
        results: list[dict[str, Any]] = []

        async def retry() -> None:
            results.append(
                structured(
                    await client.call_tool(
                        "invokeRoutine", {"routine": "flaky", "message": "x", "idempotency_key": "k8"}
                    )
                )
            )

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(retry)
    run_ids = {r["run_id"] for r in results}
    assert len(run_ids) == 1 and failed["run_id"] not in run_ids
    assert sum(not r["deduplicated"] for r in results) == 1
    assert runs_logged(tmp_path) == 2


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('[local.launchers.web]\ncommand = "true"\ncwd = "/no/such/dir"\n', "local.launchers.web.cwd"),
        ('[local.routines.r]\ncommand = "   "\n', "local.routines.r.command"),
    ],
)
def test_a_bad_launcher_or_routine_setting_stops_start_up_with_one_line(
    config_file: Any, body: str, named: str
) -> None:
    path = config_file(body)
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "--config", str(path), "tools"], capture_output=True, text=True
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in result.stderr


async def test_unknown_routine_names_the_configured_ones(routines_config: Path) -> None:
    async with connect(load_settings(routines_config)) as client:
        text = error_text(await client.call_tool("invokeRoutine", {"routine": "nope", "message": "x"}))
        listed = structured(await client.call_tool("listRoutines", {}))
    assert "no local routine 'nope'" in text and "echo, flaky, slow" in text and "[local.routines.NAME]" in text
    assert [r["name"] for r in listed["items"]] == ["echo", "flaky", "slow"]


@pytest.fixture
def launchers_config(config_file: Any) -> tuple[Path, str]:
    mark = marker()
    path: Path = config_file(
        f"""
        toolsets = ["launchers"]

        [local.launchers.web]
        command = "sleep {mark}"
        description = "stays up"

        [local.launchers.crashy]
        command = "exit 3"

        [local.launchers.worker]
        command = "sleep {mark}"
        """
    )
    return path, mark


async def test_launchers_start_with_the_server_and_stop_with_it(
    launchers_config: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_ON_EXIT", "keep")  # launchers stop with their server all the same
    monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "launchers,sessions")
    path, mark = launchers_config
    async with connect(load_settings(path)) as client:
        assert len(await appears(mark, at_least=2)) >= 2  # one per launcher (plus its shell, if sh does not exec)
        listed = structured(await client.call_tool("getLaunchers", {}))
        by_id = {item["id"]: item for item in listed["launchers"]}
        assert listed["total"] == 3 and listed["offset"] == 0 and listed["limit"] == 20
        web = by_id["web"]
        assert web["state"] == "running" and web["description"] == "stays up"
        assert [r["type"] for r in web["running"]] == ["session"]
        session = structured(await client.call_tool("getSession", {"session_id": web["running"][0]["id"]}))
        assert session["state"] == "running"
    assert await wait_until_gone(mark) == []


async def test_a_launcher_that_exits_is_recreated_with_backoff(launchers_config: tuple[Path, str]) -> None:
    path, _ = launchers_config
    async with connect(load_settings(path)) as client:
        deadline = time.monotonic() + 5
        crashy: dict[str, Any] = {}
        while time.monotonic() < deadline:
            crashy = structured(await client.call_tool("getLauncher", {"launcher_id": "crashy"}))
            if crashy["raw"]["restarts"] >= 2:
                break
            await anyio.sleep(0.1)
        events = structured(await client.call_tool("getLaunchers", {"ids": ["crashy"]}))
    assert crashy["raw"]["restarts"] >= 2 and crashy["raw"]["last_exit_code"] == 3
    assert crashy["state"] in ("starting", "running") and "exit code 3" in crashy["raw"]["error"]
    assert events["total"] == 1


async def test_get_launchers_pages_filters_and_sorts(launchers_config: tuple[Path, str]) -> None:
    path, _ = launchers_config
    async with connect(load_settings(path)) as client:
        by_name = structured(await client.call_tool("getLaunchers", {"sort": "name", "sort_direction": "desc"}))
        page = structured(await client.call_tool("getLaunchers", {"sort": "name", "offset": 1, "limit": 1}))
        search = structured(await client.call_tool("getLaunchers", {"search_name": "WE"}))
        ids = structured(await client.call_tool("getLaunchers", {"ids": ["worker", "ghost"]}))
        bad_sort = error_text(await client.call_tool("getLaunchers", {"sort": "colour"}))
        missing = error_text(await client.call_tool("getLauncher", {"launcher_id": "ghost"}))
    assert [x["name"] for x in by_name["launchers"]] == ["worker", "web", "crashy"]
    assert [x["name"] for x in page["launchers"]] == ["web"] and page["total"] == 3
    assert [x["name"] for x in search["launchers"]] == ["web"]
    assert [x["name"] for x in ids["launchers"]] == ["worker"] and ids["total"] == 1
    assert "sort must be one of createdAt, name, id" in bad_sort
    assert "no local launcher 'ghost'" in missing


def test_the_call_cli_lists_configured_launchers_and_starts_none(tmp_path: Path) -> None:
    mark = marker()
    config = tmp_path / "runtimes.toml"
    config.write_text(f'[local.launchers.web]\ncommand = "sleep {mark}"\ndescription = "stays up"\n')
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "--config", str(config), "call", "getLaunchers", "{}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    listed = json.loads(done.stdout)
    assert [(x["name"], x["state"]) for x in listed["launchers"]] == [("web", "stopped")], done.stdout
    assert processes_matching(mark) == []  # a one-shot call starts no service


async def test_a_launcher_lives_while_any_serving_server_does(tmp_path: Path) -> None:
    mark = marker()
    config = tmp_path / "runtimes.toml"
    config.write_text(f'[local.launchers.web]\ncommand = "sleep {mark}"\n')
    settings = load_settings(config)
    started: dict[str, Any] = {}
    up, down, gone = anyio.Event(), anyio.Event(), anyio.Event()

    async def first_server() -> None:
        async with connect(settings) as a:
            assert await appears(mark)
            started.update(structured(await a.call_tool("getLaunchers", {}))["launchers"][0])
            up.set()
            await down.wait()
        gone.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(first_server)
        await up.wait()
        async with connect(settings) as b:  # a second serving server on the same data directory
            seen = structured(await b.call_tool("getLaunchers", {}))["launchers"][0]
            down.set()
            await gone.wait()  # the server that started the launcher has gone
            after = structured(await b.call_tool("getLaunchers", {}))["launchers"][0]
            alive = processes_matching(mark)
            default = structured(await b.call_tool("listSessions", {}))["sessions"]
            with_launchers = structured(await b.call_tool("listSessions", {"include_launchers": True}))["sessions"]
    assert alive, ("the launcher lives on while a serving server does", [s.get("raw") for s in with_launchers])
    assert seen["state"] == after["state"] == "running"
    assert seen["running"] == after["running"] == started["running"]  # the same run, not a restart
    assert default == [] and [s["id"] for s in with_launchers] == [started["running"][0]["id"]]
    assert await wait_until_gone(mark) == []  # the last serving server has gone: so has the launcher
