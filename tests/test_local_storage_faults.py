"""Storage faults never end the server: a full disk, a read-only or a damaged database, an unusable data
directory. The call gets an error that names the cause and what to do; other sessions keep running."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.conftest import error_text, marker, processes_matching, stdio_params, structured, wait_until_gone


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB filesystem of its own (a tmpfs), where the machine lets us mount one."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root here")
    if not _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)):
        pytest.skip("mounting a small tmpfs needs root here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


async def test_a_full_disk_fails_calls_clearly_and_the_server_carries_on(small_disk: Path, tmp_path: Path) -> None:
    mark = marker()
    data = small_disk / "data"
    # min_free_mb off: otherwise the supervisor may end `yes` before the disk is full (a race with its
    # schedule), and what this test needs is a disk that is full.
    config = tmp_path / "runtimes.toml"
    config.write_text("[local.limits]\nmin_free_mb = 0\n", encoding="utf-8")
    params = stdio_params(env={"RUNTIMES_MCP_DATA_DIR": str(data), "RUNTIMES_MCP_CONFIG": str(config)})
    async with Client(params) as client:
        other = structured(await client.call_tool("execRun", {"command": f"sleep {mark}", "wait": False}))

        filled = await client.call_tool("execRun", {"command": "yes", "timeout_s": 30})
        text = filled.content[0].text  # type: ignore[union-attr]
        assert "Traceback" not in text and "bug" not in text
        if not filled.is_error:
            assert structured(filled)["state"] == "failed"  # yes: "No space left on device"

        # Directories made ahead still take a run, which fails and says why; once none is left, the call is
        # refused with the cause and what to do.
        started = [other["session_id"], structured(filled)["session_id"]] if not filled.is_error else []
        for _ in range(80):
            hello = await client.call_tool("execRun", {"command": "echo hi"})
            if hello.is_error:
                break
            result = structured(hello)
            started.append(result["session_id"])
            assert result["state"] == "failed"  # echo cannot write its output either
            assert "disk is full" in result["message"] and "RUNTIMES_MCP_DATA_DIR" in result["message"], result
        text = error_text(hello)
        assert "No space left" in text and "RUNTIMES_MCP_DATA_DIR" in text and "bug" not in text
        event = error_text(await client.call_tool("storeEvent", {"type": "t", "data": {"big": "x" * 200_000}}))
        assert "full" in event and "RUNTIMES_MCP_DATA_DIR" in event

        listed = structured(await client.call_tool("listSessions", {"limit": 500}))
        assert set(started) <= {s["id"] for s in listed["sessions"]}, "every session is listed, disk full or not"
        running = structured(await client.call_tool("listSessions", {"status": "running"}))
        assert other["session_id"] in [s["id"] for s in running["sessions"]]
        assert processes_matching(mark), "another client's session keeps running"

        for big in (data / "sessions").glob("*/stdout"):  # the operator frees space
            if big.stat().st_size > 1024 * 1024:
                big.unlink()
        again = structured(await client.call_tool("execRun", {"command": "echo hi"}))
        assert again["stdout"] == "hi\n"

        stopped = structured(await client.call_tool("stopSession", {"session_id": other["session_id"]}))
        assert stopped["stopped"] is True
    assert await wait_until_gone(mark) == []


def test_a_damaged_database_stops_start_up_with_one_line_naming_the_setting(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "local.sqlite3").write_bytes(b"this is not a database" * 100)
    env = {**os.environ, "RUNTIMES_MCP_DATA_DIR": str(data)}
    for args in (["call", "listSessions", "{}"], ["--transport", "http", "--port", "0"]):
        result = subprocess.run(
            [sys.executable, "-m", "server.cli", *args], capture_output=True, text=True, env=env, timeout=60
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert "RUNTIMES_MCP_DATA_DIR" in lines[0] and "not a database" in lines[0]


def test_a_data_directory_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    env = {**os.environ, "RUNTIMES_MCP_DATA_DIR": str(blocker / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "call", "execRun", '{"command": "true"}'],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "RUNTIMES_MCP_DATA_DIR" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_a_read_only_database_fails_writes_clearly_and_reads_still_work(tmp_path: Path) -> None:
    from providers.local.events import EventLog
    from providers.local.store import Store, StoreError

    store = await Store.open(tmp_path / "local.sqlite3")
    events = EventLog(store)
    await events.record("before", {"n": 1}, durable=True)
    store.db.writer.execute("PRAGMA query_only = 1")  # what a read-only file or mount does to writes
    with pytest.raises(StoreError) as caught:
        await events.record("after", {"n": 2}, durable=True)
    text = str(caught.value)
    assert text.startswith("local: state store unavailable:") and "readonly" in text
    assert "writable" in text and "RUNTIMES_MCP_DATA_DIR" in text
    assert [e.type for e in (await events.query()).events] == ["before"]
    store.db.writer.execute("PRAGMA query_only = 0")
    await events.record("after", {"n": 3}, durable=True)  # and it recovers without a restart
    await store.close()


async def test_a_version_4_database_gains_places_and_its_sessions_stay_this_machines(tmp_path: Path) -> None:
    import sqlite3

    from providers.local.store import Store
    from providers.local.tables import SCHEMA, SCHEMA_VERSION

    path = tmp_path / "local.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(SCHEMA.replace(",\n    place TEXT", "") + "PRAGMA user_version = 4;")
    old.execute(
        "INSERT INTO sessions (id, state, command, cwd, origin, started_at)"
        " VALUES ('ses_old', 'running', 'x', '/', 'exec', 1)"
    )
    old.close()
    store = await Store.open(path)
    row = await store.get_session("ses_old")
    assert row is not None and row.place is None
    assert [r.id for r in await store.running_sessions("another-host:/data")] == ["ses_old"]
    assert (await store.db.rows("PRAGMA user_version")) == [(SCHEMA_VERSION,)]
    await store.close()


async def test_a_refused_commit_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A COMMIT that SQLite refuses (here: a statement left unfinished on the writer, as a checkpoint's unread
    row once was, under load) is rolled back, so the next write works; before, the writer stayed inside the
    transaction and every later write failed with "cannot start a transaction within a transaction"."""
    import sqlite3

    from providers.local.database import _sqlite_transaction
    from providers.local.store import Store
    from providers.local.tables import EventRow

    store = await Store.open(tmp_path / "local.sqlite3")
    writer = store.db.writer  # type: ignore[attr-defined]
    unfinished = writer.execute("PRAGMA wal_checkpoint(PASSIVE)")  # its row not read
    with pytest.raises(sqlite3.OperationalError, match="in progress"):
        _sqlite_transaction(writer, lambda db: db.execute("CREATE TABLE scratch (x)"), 0)
    assert not writer.in_transaction
    unfinished.fetchall()
    store.insert_event(EventRow("evt_1", "box", "log", {"n": 1}, 1))
    await store.flush()
    await store.checkpoint()
    store.insert_event(EventRow("evt_2", "box", "log", {"n": 2}, 2))
    await store.flush()
    assert [r[0] for r in await store._rows("SELECT id FROM events ORDER BY seq")] == ["evt_1", "evt_2"]
    assert not await store._rows("SELECT name FROM sqlite_master WHERE name = 'scratch'")
    await store.close()


async def test_sessions_started_while_the_database_cannot_grow_stay_listed(small_disk: Path) -> None:
    """The disk fills up after directories were made ahead: runs still start in them, but their records cannot
    be committed. They are listed all the same (and recorded once there is room), not lost until a restart."""
    marks = [marker() for _ in range(3)]
    data = small_disk / "data"
    params = stdio_params(env={"RUNTIMES_MCP_DATA_DIR": str(data), "RUNTIMES_MCP_ON_EXIT": "stop"})
    async with Client(params) as client:
        async with anyio.create_task_group() as tg:  # three supervisors, each idle with a directory made ahead
            for _ in range(3):
                tg.start_soon(client.call_tool, "execRun", {"command": "sleep 0.3"})
        filler = small_disk / "filler"
        with filler.open("wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        started = []
        for mark in marks:
            result = await client.call_tool("execRun", {"command": f"sleep {mark}", "wait": False})
            if not result.is_error:
                started.append(structured(result)["session_id"])
        assert len(started) >= 2, "runs start in the directories made ahead"
        listed = structured(await client.call_tool("listSessions", {"status": "running"}))
        assert set(started) <= {s["id"] for s in listed["sessions"]}
        filler.unlink()  # room again: the records are committed
        for session_id in started:
            stopped = structured(await client.call_tool("stopSession", {"session_id": session_id}))
            assert stopped["state"] == "stopped", stopped
    with sqlite3.connect(data / "local.sqlite3") as db:
        recorded = {row[0] for row in db.execute("SELECT id FROM sessions")}
    assert set(started) <= recorded
    for mark in marks:
        assert await wait_until_gone(mark) == []
