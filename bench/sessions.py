"""How cost grows with work: many live sessions, many records.

One server ramps up to N live `sleep` sessions (started `wait: false` over stdio, sandboxed as by default):
the start rate at 0, N/2 and N live, the memory of a session (the PSS of its supervisor) and of all of them,
`listSessions` with N live against a server with none, and the time to stop them all. A third server reads a
data directory holding M finished sessions' records (written through the local store), and a retention pass
goes over them. N, M = 1,000, 100,000 (--quick: 100, 10,000).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import anyio

from bench.common import (
    OURS,
    Owned,
    Rounds,
    Row,
    StdioPeer,
    cmdline,
    descendants,
    info,
    memory_kib,
    owned,
    ratio_row,
    timed_calls,
)

SLEEP = {"command": "sleep 900", "wait": False, "timeout_s": 900}  # a leftover would end by itself
LISTING = {"status": "running", "limit": 50}


def _server(mine: Owned, data_dir: Path) -> StdioPeer:
    env = {"RUNTIMES_MCP_DATA_DIR": str(data_dir), "RUNTIMES_MCP_ON_EXIT": "stop"}
    return StdioPeer(OURS, env, mine).initialize()


def write_records(data_dir: Path, count: int) -> None:
    """`count` finished sessions' records, one a second up to now, as a server writes them (Store.save_session,
    their size on disk measured as retention does), with no session directories behind them."""
    from providers.local.ids import place_of
    from providers.local.store import Store
    from providers.local.tables import SessionRow

    async def write() -> None:
        store = await Store.open(data_dir / "local.sqlite3")
        place, now = place_of(data_dir), time.time()
        try:
            for i in range(count):
                session_id = f"ses_{i:012x}"
                started = now - (count - i)
                failed = i % 10 == 0
                row = SessionRow(
                    rowid=0,
                    id=session_id,
                    state="failed" if failed else "completed",
                    command=f"echo record {i}",
                    cwd=str(data_dir / "sessions" / session_id / "work"),
                    origin="exec",
                    owner="bench",
                    timeout_s=60,
                    started_at=started,
                    ended_at=started + 0.5,
                    exit_code=1 if failed else 0,
                    end_reason="exit",
                    stdout_bytes=12,
                    stderr_bytes=0,
                    place=place,
                    principal="local",  # the caller over stdio
                )
                store.save_session(row)
                store.set_disk_bytes(session_id, 0)
                if i % 10_000 == 9_999:
                    await store.flush()
            await store.flush()
        finally:
            await store.close()

    anyio.run(write)


def retention_pass(data_dir: Path, retention_days: float) -> tuple[float, int]:
    """(seconds, sessions deleted) of one retention pass over the data directory."""
    from providers.local.retention import Retention
    from providers.local.store import Store

    async def run() -> tuple[float, int]:
        store = await Store.open(data_dir / "local.sqlite3")
        try:
            retention = Retention(store, data_dir, retention_days, max_data_mb=1024)
            started = time.perf_counter()
            deleted, _ = await retention.run_pass()
            return time.perf_counter() - started, deleted
        finally:
            await store.close()

    return anyio.run(run)


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


def session_memory(server_pid: int) -> tuple[list[dict[str, int]], int, int]:
    """(smaps_rollup of each supervisor, PSS KiB of everything the server started, how many processes that is).
    Supervisors are the zygote's children; the rest are the zygote and each session's bwrap and command."""
    tree = descendants(server_pid)
    zygotes = [pid for pid in tree if _ppid(pid) == server_pid and "supervisor/__main__.py zygote" in cmdline(pid)]
    supervisors = [pid for pid in tree if _ppid(pid) in zygotes]
    memories = {pid: memory_kib(pid) for pid in tree}
    total = sum(m.get("Pss", 0) for m in memories.values())
    return [memories[pid] for pid in supervisors if memories[pid]], total, len(tree)


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """User + system CPU time (clock ticks) each process has used so far."""
    out = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        out[pid] = int(fields[11]) + int(fields[12])
    return out


def idle_cpu(server_pid: int, seconds: float) -> float:
    """The share of one core (%) a server and everything it started use over `seconds` while nobody calls."""
    pids = [server_pid, *descendants(server_pid)]
    before = cpu_ticks(pids)
    time.sleep(seconds)
    after = cpu_ticks(pids)
    used = sum(after[pid] - before[pid] for pid in after.keys() & before.keys())
    return used / os.sysconf("SC_CLK_TCK") / seconds * 100


def scale(quick: bool) -> list[Row]:
    live, records, window = (100, 10_000, 20) if quick else (1000, 100_000, 50)
    rounds, per_round, warm = (5, 10, 2) if quick else (10, 20, 2)
    rows: list[Row] = []
    with owned() as mine:
        records_dir = mine.directory("records")
        started = time.perf_counter()
        write_records(records_dir, records)
        written_s = time.perf_counter() - started
        empty, with_records = _server(mine, mine.directory("empty")), _server(mine, records_dir)
        busy, page = _server(mine, mine.directory("live")), _server(mine, mine.directory("page"))
        for _ in range(50):  # exactly one page of live sessions: what a listing of the busy server returns
            page.structured("execRun", SLEEP)
        ids: list[str] = []

        def start(count: int) -> float:
            """Start `count` sessions; their rate per second."""
            began = time.perf_counter()
            for _ in range(count):
                ids.append(busy.structured("execRun", SLEEP)["session_id"])
            return count / (time.perf_counter() - began)

        rate = {0: start(window)}
        start(live // 2 - len(ids))
        rate[live // 2] = start(window)
        start(live - len(ids))
        running = busy.structured("listSessions", {"status": "running", "limit": 500})["count"]
        if running < min(live, 500):
            raise RuntimeError(f"{running} sessions run, not {live}")

        supervisors, total_kib, processes = session_memory(busy.pid)
        idle = idle_cpu(busy.pid, 2 if quick else 5)
        measured = Rounds()
        for _ in range(rounds):
            measured.add("empty", timed_calls(empty, "listSessions", LISTING, per_round, warm))
            measured.add("page", timed_calls(page, "listSessions", LISTING, per_round, warm))
            measured.add("live", timed_calls(busy, "listSessions", LISTING, per_round, warm))
            measured.add("records", timed_calls(with_records, "listSessions", LISTING, per_round, warm))
        counts = [peer.structured("listSessions", LISTING)["count"] for peer in (empty, page, busy, with_records)]
        if counts != [0, 50, 50, 0]:
            raise RuntimeError(f"listSessions counted {counts}, not [0, 50, 50, 0]")

        rate[live] = start(window)
        began = time.perf_counter()
        for session_id in ids:
            if not busy.structured("stopSession", {"session_id": session_id})["stopped"]:
                raise RuntimeError(f"stopSession did not stop {session_id}")
        stop_s = time.perf_counter() - began
        left = [pid for pid in descendants(busy.pid) if "sleep 900" in cmdline(pid)]
        if left:
            raise RuntimeError(f"{len(left)} sleep processes still run after every session was stopped")
        for peer in (empty, with_records, busy, page):
            peer.close()  # the page server stops its sessions as it closes (on_exit stop)
        kept_s, kept = retention_pass(records_dir, retention_days=7)
        aged_s, aged = retention_pass(records_dir, retention_days=1e-6)
        if kept or aged != records:
            raise RuntimeError(f"retention deleted {kept} then {aged} of {records} records")

    pss = statistics.median(m["Pss"] for m in supervisors) / 1024
    private = statistics.median(m.get("Private_Clean", 0) + m.get("Private_Dirty", 0) for m in supervisors) / 1024
    rows.append(
        Row(
            f"memory of a live session: PSS of its supervisor (median of {len(supervisors)}, {live} live)",
            pss,
            None,
            "MiB",
            "<= 3 MiB",
            pss <= 3,
        )
    )
    rows.append(info("memory of a live session: its supervisor's private pages (USS, median)", private, "MiB"))
    rows.append(
        info(
            f"memory of {live} live `sleep` sessions: PSS of all {processes} processes the server started, per session",
            total_kib / 1024 / live,
            "MiB",
        )
    )
    rows.append(info(f"memory of {live} live `sleep` sessions: PSS of all, total", total_kib / 1024, "MiB"))
    rows.append(info(f"CPU of {live} live `sleep` sessions while nobody calls (server, supervisors)", idle, "% core"))
    for level, per_s in rate.items():
        rows.append(info(f"start rate of `sleep` sessions (wait: false) at {level} live, {window} starts", per_s, "/s"))
    rows.append(info(f"stopSession of {len(ids)} live sessions, one after another: all stopped in", stop_s, "s"))
    for name, text in (("live", f"{live} live sessions"), ("records", f"{records:,} finished sessions' records")):
        rows.append(
            ratio_row(
                f"listSessions p50 (status running, limit 50) with {text} (vs an empty data directory)",
                measured.p50(name),
                measured.p50("empty"),
                "ms",
                2,
                spread=measured.spread(name, "empty"),
            )
        )
    rows.append(
        ratio_row(
            f"listSessions p50 (status running, limit 50) with {live} live sessions (vs 50 live: the same page)",
            measured.p50("live"),
            measured.p50("page"),
            "ms",
            None,
            spread=measured.spread("live", "page"),
        )
    )
    rows.append(info(f"retention pass over {records:,} records, none due", kept_s * 1000, "ms"))
    rows.append(info(f"retention pass over {records:,} records, all past their age (deleted)", aged_s * 1000, "ms"))
    rows.append(info(f"writing {records:,} records through the local store (setup)", written_s * 1000, "ms"))
    return rows
