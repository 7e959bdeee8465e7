"""What a call costs: the tool listing's size, a cold start, a call over stdio and over HTTP, against a bare SDK
server (bench/floor_sdk.py) and a raw JSON-RPC loop (bench/floor_raw.py); the server's memory over a soak."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import time

import anyio

from bench.common import (
    OURS,
    RAW_FLOOR,
    SDK_FLOOR,
    Owned,
    Rounds,
    Row,
    StdioPeer,
    info,
    owned,
    pct,
    ratio_row,
    rss_kib,
    timed_calls,
)
from bench.load_http import NO_AUTH, LoadResult, launch_http_server, run_lean_load, run_load


def context_cost(quick: bool) -> list[Row]:
    """What an agent pays before its first call: the tools it is shown, and the docs' table of contents, in bytes
    as they travel (compact JSON)."""

    def compact(value: object) -> int:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())

    sizes: dict[str, tuple[int, int]] = {}
    with owned() as mine:
        for toolsets in ("", "all"):
            env = {"RUNTIMES_MCP_DATA_DIR": str(mine.directory("context")), "RUNTIMES_MCP_TOOLSETS": toolsets}
            peer = StdioPeer(OURS, env, mine).initialize()
            listing = {"tools": peer.request("tools/list")["result"]["tools"]}
            sizes[toolsets] = compact(listing), compact(peer.call("getDocs", {})["result"])
            peer.close()
    return [
        info(
            "tools/list bytes, default (~tokens = bytes/4; tests/test_surface.py keeps its budget)", sizes[""][0], "B"
        ),
        info("tools/list bytes, all toolsets", sizes["all"][0], "B"),
        info("getDocs() table of contents bytes", sizes[""][1], "B"),
    ]


def cpu_ms(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; 10 ms resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def cold_start_once(argv: list[str], env: dict[str, str], mine: Owned) -> tuple[float, float]:
    """(wall ms, CPU ms) from spawn to the initialize result."""
    started = time.perf_counter()
    peer = StdioPeer(argv, env, mine).initialize()
    elapsed = (time.perf_counter() - started) * 1000
    cpu = cpu_ms(peer.pid)
    peer.close()
    return elapsed, cpu


def cold_start(quick: bool) -> list[Row]:
    """Spawn to the initialize result, ours / bare SDK / raw loop interleaved. CPU time is the steadier figure on
    a shared machine: it does not count time spent waiting for a core."""
    runs = 5 if quick else 15
    commands = {"ours": OURS, "sdk": SDK_FLOOR, "raw": RAW_FLOOR}
    wall, cpu = Rounds(), Rounds()
    with owned() as mine:
        env = {"RUNTIMES_MCP_DATA_DIR": str(mine.directory("cold")), "RUNTIMES_MCP_ON_EXIT": "stop"}
        for _ in range(runs):
            for name, argv in commands.items():
                w, c = cold_start_once(argv, env, mine)
                wall.add(name, [w])
                cpu.add(name, [c])
    return [
        ratio_row(
            f"cold start stdio, median of {runs} interleaved (vs bare SDK)",
            wall.p50("ours"),
            wall.p50("sdk"),
            "ms",
            1.2,
            spread=wall.spread("ours", "sdk"),
        ),
        info("cold start CPU time to initialize (vs bare SDK)", cpu.p50("ours"), "ms", cpu.p50("sdk")),
        info("cold start stdio (vs raw JSON-RPC loop)", wall.p50("ours"), "ms", wall.p50("raw")),
    ]


def call_latency(quick: bool) -> list[Row]:
    """getDocs and listSessions over stdio against the SDK's echo, in interleaved rounds; then the memory of each
    server over a soak of calls."""
    calls = 200 if quick else 1000
    rounds, warm = 25, 3
    rows: list[Row] = []
    with owned() as mine:
        env = {"RUNTIMES_MCP_DATA_DIR": str(mine.directory("calls")), "RUNTIMES_MCP_ON_EXIT": "stop"}
        sdk, ours = StdioPeer(SDK_FLOOR, env, mine).initialize(), StdioPeer(OURS, env, mine).initialize()
        twin = StdioPeer(SDK_FLOOR, env, mine).initialize()  # A/A: what the host's noise alone makes of a ratio
        sdk_rss_start, rss_start = rss_kib(sdk.pid), rss_kib(ours.pid)
        measured = Rounds()
        for _ in range(rounds):
            measured.add("echo", timed_calls(sdk, "echo", {"text": "hi"}, calls // rounds, warm))
            measured.add("twin", timed_calls(twin, "echo", {"text": "hi"}, calls // rounds, warm))
            measured.add("getDocs", timed_calls(ours, "getDocs", {"topic": "errors"}, calls // rounds, warm))
            measured.add("listSessions", timed_calls(ours, "listSessions", {"limit": 5}, calls // rounds, warm))
        twin.close()
        soak = 2000 if quick else 10_000
        timed_calls(sdk, "echo", {"text": "hi"}, soak)
        sdk_rss_end = rss_kib(sdk.pid)
        sdk.close()
        timed_calls(ours, "getDocs", {"topic": "errors"}, soak // 2)
        rss_mid = rss_kib(ours.pid)
        timed_calls(ours, "getDocs", {"topic": "errors"}, soak // 2)
        rss_end = rss_kib(ours.pid)
        ours.close()

    echo_p50 = measured.p50("echo")
    for tool, name in (("getDocs", "getDocs(topic)"), ("listSessions", "listSessions (local, empty)")):
        values = measured.all(tool)
        p50, p99 = statistics.median(values), pct(values, 0.99)
        spread = measured.spread(tool, "echo")
        rows.append(
            ratio_row(f"{name} p50 over stdio, {calls} calls (vs SDK echo)", p50, echo_p50, "ms", 1.3, spread=spread)
        )
        rows.append(Row(f"{name} p99 / p50", p99 / p50, None, "x", "<= 2x", p99 / p50 <= 2))
    echo = measured.all("echo")
    rows.append(info("SDK echo p99 / p50 (the floor's own, the same rounds)", pct(echo, 0.99) / echo_p50, "x"))
    rows.append(
        ratio_row(
            "A/A: SDK echo p50 against a second SDK echo server (the host's noise)",
            measured.p50("twin"),
            echo_p50,
            "ms",
            None,
            spread=measured.spread("twin", "echo"),
        )
    )
    rows.append(ratio_row("RSS after start (vs bare SDK)", rss_start / 1024, sdk_rss_start / 1024, "MiB", 1.2))
    growth = (rss_end - rss_mid) / 1024
    rows.append(
        Row(
            f"RSS growth over the second half of a {soak}-call soak",
            growth,
            None,
            "MiB",
            "flat (<= 1 MiB)",
            growth <= 1,
        )
    )
    rows.append(info(f"RSS after {soak} calls (vs bare SDK after as many)", rss_end / 1024, "MiB", sdk_rss_end / 1024))
    return rows


def _http_server(argv: list[str], env: dict[str, str], mine: Owned) -> tuple[subprocess.Popen[bytes], str]:
    if argv is SDK_FLOOR:
        process, base = launch_http_server(lambda port: [*argv, "http", str(port)], env)
    else:
        args = ["--transport", "http", NO_AUTH, "--stateless", "--json-response"]
        process, base = launch_http_server(lambda port: [*argv, *args, "--port", str(port)], env)
    mine.processes.append(process)
    return process, f"{base}/mcp"


def http(quick: bool) -> list[Row]:
    """Streamable HTTP (stateless, JSON answers), 1 and 32 clients, ours and the bare SDK side by side, the load
    alternating between them in rounds."""
    single, many_clients, per_client = (150, 32, 20) if quick else (300, 32, 50)
    rounds = 3 if quick else 5
    rows: list[Row] = []
    with owned() as mine:
        env = {"RUNTIMES_MCP_DATA_DIR": str(mine.directory("http")), "RUNTIMES_MCP_ON_EXIT": "stop"}
        targets = {
            "ours": (_http_server(OURS, env, mine), {"name": "getDocs", "arguments": {"topic": "errors"}}),
            "sdk": (_http_server(SDK_FLOOR, env, mine), {"name": "echo", "arguments": {"text": "hi"}}),
        }
        measured: dict[str, dict[int, LoadResult]] = {
            label: {1: LoadResult(1, 0), many_clients: LoadResult(many_clients, 0)} for label in targets
        }
        throughput = Rounds()
        for _ in range(rounds):
            for label, ((process, url), params) in targets.items():
                body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
                for clients, calls in ((1, single // rounds), (many_clients, per_client // rounds)):
                    part = anyio.run(run_load, url, clients, calls, process.pid, 120, [body])
                    _merge(measured[label][clients], part)
                    throughput.add(f"{label}{clients}", [part.throughput])
    for clients in (1, many_clients):
        ours, sdk = measured["ours"][clients], measured["sdk"][clients]
        if ours.errors or sdk.errors:
            raise RuntimeError(f"HTTP errors: ours {ours.errors} ({ours.first_error}), sdk {sdk.errors}")
        spread = throughput.spread(f"ours{clients}", f"sdk{clients}")
        rows.append(
            ratio_row(
                f"HTTP req/s, {clients} client(s), stateless (vs bare SDK)",
                ours.throughput,
                sdk.throughput,
                "req/s",
                0.8,
                higher_is_better=True,
                spread=spread,
            )
        )
        rows.append(
            info(f"HTTP p99, {clients} client(s) (vs bare SDK)", ours.percentile(0.99), "ms", sdk.percentile(0.99))
        )
    return rows


def _merge(total: LoadResult, part: LoadResult) -> None:
    total.latencies_ms += part.latencies_ms
    total.elapsed_s += part.elapsed_s
    total.errors += part.errors
    total.first_error = total.first_error or part.first_error


def workers(quick: bool) -> list[Row]:
    """HTTP throughput with --workers 2 against one worker, 32 clients, alternating rounds."""
    clients, seconds, rounds = (32, 1.0, 3) if quick else (32, 3.0, 5)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "getDocs", "arguments": {}}}
    with owned() as mine:
        env = {"RUNTIMES_MCP_DATA_DIR": str(mine.directory("workers")), "RUNTIMES_MCP_ON_EXIT": "stop"}

        def serve(count: int) -> str:
            argv = [*OURS, "--transport", "http", NO_AUTH, "--stateless", "--json-response", "--workers", str(count)]
            process, base = launch_http_server(lambda port: [*argv, "--port", str(port)], env)
            mine.processes.append(process)
            return f"{base}/mcp"

        targets: dict[int, str] = {count: serve(count) for count in (1, 2)}
        measured = {count: LoadResult(clients, 0) for count in targets}
        throughput = Rounds()
        for _ in range(rounds):
            for count, url in targets.items():
                part = asyncio.run(run_lean_load(url, clients, seconds, body))
                _merge(measured[count], part)
                throughput.add(str(count), [part.throughput])
    one, two = measured[1], measured[2]
    if one.errors or two.errors:
        raise RuntimeError(f"HTTP errors: 1 worker {one.errors} ({one.first_error}), 2 workers {two.errors}")
    cores = os.cpu_count() or 1
    return [
        ratio_row(
            f"HTTP req/s, {clients} clients, --workers 2 (vs 1 worker; {cores} cores, lean load generator)",
            two.throughput,
            one.throughput,
            "req/s",
            1.7,
            higher_is_better=True,
            spread=throughput.spread("2", "1"),
        ),
        info(
            f"HTTP p99, {clients} clients, --workers 2 (vs 1 worker)", two.percentile(0.99), "ms", one.percentile(0.99)
        ),
    ]


def sign_in(quick: bool) -> list[Row]:
    """bench/auth.py: an HTTP tool call signed in with a JWT against the static token, in process (#35)."""
    from bench import auth

    with owned():  # the in-process server's zygote and supervisors
        static, same, fresh = auth.measure(calls=300 if quick else 1000)
    added = same.p50_ms - static.p50_ms
    return [
        Row(
            f"HTTP tool call signed in with a JWT vs the static token, p50 ({same.way})",
            same.p50_ms,
            static.p50_ms,
            "ms",
            f"<= +0.2 ms (measured {added:+.3f} ms)",
            added <= 0.2,
        ),
        info(
            f"HTTP tool call signed in with a JWT vs the static token, p50 ({fresh.way})",
            fresh.p50_ms,
            "ms",
            static.p50_ms,
        ),
    ]
