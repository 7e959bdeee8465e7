"""What a run costs, as a user feels it over stdio: execRun against a bare SDK tool that runs the same command
(unsandboxed) or the same bwrap (sandboxed), in a workspace or not, with the allow-list network or none; how
soon a follower hears a line a run prints; a workspace's files against plain file I/O; the egress proxy."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from bench.common import (
    OURS,
    SDK_FLOOR,
    Owned,
    Rounds,
    Row,
    StdioPeer,
    cpu_used_ms,
    info,
    owned,
    pct,
    ratio_row,
    skipped,
    timed,
    timed_calls,
    tree_cpu,
)

TRUE = {"command": "true"}


def calls_with_cpu(measured: Rounds, name: str, peer: StdioPeer, tool: str, arguments: dict[str, Any], n: int) -> None:
    """`n` timed calls after 3 untimed ones, and the CPU time per call of the server and all below it."""
    timed_calls(peer, tool, arguments, 3)
    before = tree_cpu(peer.pid)
    measured.add(name, timed_calls(peer, tool, arguments, n))
    measured.add(f"{name} cpu", [cpu_used_ms(before, tree_cpu(peer.pid)) / n])


def bare_bwrap_argv(data_dir: Path) -> list[str] | None:
    """bwrap with the profile a session of a default server on `data_dir` gets (the same mounts, namespaces and
    environment), running `/bin/sh -c true` in a working directory of its own; None where the sandbox cannot
    run here."""
    from providers.local.config import LimitsConfig, SandboxConfig
    from providers.local.processes import child_env
    from providers.local.sandbox import prepare

    sandbox, _ = prepare(SandboxConfig(), LimitsConfig(), data_dir)
    if sandbox is None:
        return None
    workdir = data_dir / "bwrap-floor"
    workdir.mkdir(exist_ok=True)
    options, command = sandbox.argv(["/bin/sh", "-c", "true"], str(workdir), child_env(), workdir=str(workdir))
    return [*options, "--", *command]


def _server(mine: Owned, data_dir: Path, env: dict[str, str] | None = None, config: Path | None = None) -> StdioPeer:
    """Ours over stdio on a data directory of its own; the sessions it started end with it."""
    argv = [*OURS, "--config", str(config)] if config else OURS
    env = {"RUNTIMES_MCP_DATA_DIR": str(data_dir), "RUNTIMES_MCP_ON_EXIT": "stop", **(env or {})}
    return StdioPeer(argv, env, mine).initialize()


def exec_run(quick: bool) -> list[Row]:
    """execRun `true` p50, each against its floor, the measures interleaved in rounds."""
    calls, rounds, warm = (200, 10, 3) if quick else (1000, 25, 3)
    n = calls // rounds
    with owned() as mine:
        sdk = StdioPeer(SDK_FLOOR, {}, mine).initialize()
        plain = _server(mine, mine.directory("plain"), {"RUNTIMES_MCP_SANDBOX": "off"})
        ours_dir = mine.directory("ours")
        ours = _server(mine, ours_dir)
        bwrap = bare_bwrap_argv(ours_dir)
        allow = None
        if bwrap is not None:
            config = mine.directory("config") / "allowlist.toml"
            config.write_text('[local.sandbox]\nnetwork = "allowlist"\nallow = ["example.com"]\n')
            allow = _server(mine, mine.directory("allowlist"), config=config)
        measured = Rounds()
        for _ in range(rounds):
            calls_with_cpu(measured, "sdk run", sdk, "run", TRUE, n)
            calls_with_cpu(measured, "plain", plain, "execRun", TRUE, n)
            if bwrap is not None and allow is not None:
                calls_with_cpu(measured, "sdk bwrap", sdk, "spawn", {"argv": bwrap}, n)
                calls_with_cpu(measured, "sandboxed", ours, "execRun", TRUE, n)
                measured.add("workspace", timed_calls(ours, "execRun", {**TRUE, "workspace": "bench"}, n, warm))
                measured.add("allowlist", timed_calls(allow, "execRun", TRUE, max(2, n // 4), warm))
    rows = [
        ratio_row(
            "execRun `true` p50, unsandboxed (vs a bare SDK tool that runs it)",
            measured.p50("plain"),
            measured.p50("sdk run"),
            "ms",
            1.3,
            spread=measured.spread("plain", "sdk run"),
        ),
        info("execRun `true` p99, unsandboxed", pct(measured.all("plain"), 0.99), "ms"),
        _cpu_row(measured, "plain", "sdk run", "unsandboxed (server, supervisor and command; vs the bare SDK tool's)"),
    ]
    if bwrap is None:
        return [*rows, skipped("execRun `true` p50, sandboxed", "the sandbox cannot run on this host")]
    return [
        *rows,
        ratio_row(
            "execRun `true` p50, sandboxed (vs a bare SDK tool that runs bwrap with the same profile)",
            measured.p50("sandboxed"),
            measured.p50("sdk bwrap"),
            "ms",
            1.5,
            spread=measured.spread("sandboxed", "sdk bwrap"),
        ),
        info("execRun `true` p99, sandboxed", pct(measured.all("sandboxed"), 0.99), "ms"),
        _cpu_row(measured, "sandboxed", "sdk bwrap", "sandboxed (vs the bare SDK tool running bwrap)"),
        ratio_row(
            "execRun `true` p50 in a workspace (vs in its own directory; both sandboxed)",
            measured.p50("workspace"),
            measured.p50("sandboxed"),
            "ms",
            1.2,
            spread=measured.spread("workspace", "sandboxed"),
        ),
        ratio_row(
            "execRun `true` p50, network allowlist (vs none: the proxy and the relay start with each run)",
            measured.p50("allowlist"),
            measured.p50("sandboxed"),
            "ms",
            None,
            spread=measured.spread("allowlist", "sandboxed"),
        ),
    ]


def _cpu_row(measured: Rounds, ours: str, floor: str, what: str) -> Row:
    """CPU time per call (a steadier figure than wall time on a busy host: it leaves out waiting for a core)."""
    cpu = f"{ours} cpu", f"{floor} cpu"
    return ratio_row(
        f"CPU per execRun `true`, {what}",
        statistics.mean(measured.all(cpu[0])),
        statistics.mean(measured.all(cpu[1])),
        "ms",
        None,
        spread=measured.spread(*cpu),
    )


LAST_LINE = re.compile(r"last line: (\d+\.\d+)$")


def first_output(quick: bool) -> list[Row]:
    """The delay from a line a run prints (the time it prints, by `date`) to the progress notification that
    carries it reaching a client that follows the run with getSession wait_s and a progressToken. Lines come
    0.4 s apart: a follower is told at most every 0.25 s (providers/local/progress.py)."""
    runs, lines = (1, 10) if quick else (3, 10)
    script = f"for i in $(seq {lines}); do sleep 0.4; date +%s.%N; done; sleep 0.4"
    delays: list[float] = []
    with owned() as mine:
        ours = _server(mine, mine.directory("follow"))
        ours.keep_notifications = True
        for run in range(runs):
            started = ours.structured("execRun", {"command": script, "wait": False})
            ours.notifications.clear()
            meta = {"progressToken": f"follow-{run}"}
            ended = ours.structured("getSession", {"session_id": started["session_id"], "wait_s": 60}, meta)
            if ended["state"] != "completed":
                raise RuntimeError(f"the followed run did not complete: {ended}")
            heard: dict[str, float] = {}
            for arrived, note in ours.notifications:
                found = LAST_LINE.search(str(note.get("params", {}).get("message", "")))
                if note.get("method") == "notifications/progress" and found:
                    heard.setdefault(found.group(1), arrived)
            delays += [(arrived - float(printed)) * 1000 for printed, arrived in heard.items()]
    if not delays:
        return [Row("first output: line printed -> progress notification", 0, None, "ms", "<= 50 ms", False)]
    p50 = statistics.median(delays)
    return [
        Row(
            f"first output: line printed -> its progress notification at the client, p50 of {len(delays)} lines "
            f"(of {runs * lines})",
            p50,
            None,
            "ms",
            "<= 50 ms",
            p50 <= 50,
        ),
        info("first output: the same, p90", pct(delays, 0.9), "ms"),
    ]


def workspace_files(quick: bool) -> list[Row]:
    """writeFile and readFile (three pages of up to 4 MiB) of 10 MB against open().write and open().read of the
    same bytes, interleaved."""
    rounds = 2 if quick else 5
    size = 10_000_000
    content = ("0123456789abcdef" * (size // 16 + 1))[:size]
    with owned() as mine:
        ours = _server(mine, mine.directory("files"))
        plain = mine.directory("plain") / "file.txt"

        def through_tools() -> None:
            ours.call("writeFile", {"workspace": "bench", "path": "big.txt", "content": content})
            offset, got = 0, 0
            while True:
                page = ours.structured(
                    "readFile", {"workspace": "bench", "path": "big.txt", "offset": offset, "length": 4 << 20}
                )
                got += len(page["content"])
                if page.get("next_offset") is None:
                    break
                offset = page["next_offset"]
            if got != size:
                raise RuntimeError(f"readFile gave {got} of {size} bytes")

        def plain_io() -> None:
            with open(plain, "w") as f:
                f.write(content)
            with open(plain) as f:
                if len(f.read()) != size:
                    raise RuntimeError("short read")

        measured = Rounds()
        for _ in range(rounds):
            measured.add("tools", timed(through_tools, 1, 1))
            measured.add("plain", timed(plain_io, 1, 1))
    return [
        ratio_row(
            "workspace writeFile + readFile of 10 MB over stdio (vs open() write + read of the same bytes)",
            measured.p50("tools"),
            measured.p50("plain"),
            "ms",
            None,
            spread=measured.spread("tools", "plain"),
        )
    ]


def egress(quick: bool) -> list[Row]:
    """bench/egress.py: an HTTPS GET (a new connection each) through the allow-list proxy against a direct one,
    to a local server."""
    from bench.egress import measure

    results = {result.way: result for result in measure(requests=50 if quick else 200, warmup=10 if quick else 20)}
    direct = results["direct"].p50_ms
    how = {
        "tunnelled": "tunnelled (a host without a secret: CONNECT, bytes untouched)",
        "terminated": "terminated (a secret's host: TLS to the proxy, the secret added, TLS again)",
    }
    return [
        info(f"HTTPS GET through the egress proxy, {text} (vs direct), p50", results[way].p50_ms, "ms", direct)
        for way, text in how.items()
    ]
