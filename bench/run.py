"""Benchmarks of runtimes-mcp against its floors, measured in the same run, printed as a table and written to
bench/RESULTS.md under a label (`--label before`, `--label after`, ...). Not a test: numbers, not verdicts.

    python -m bench.run [--label NAME] [--quick]

Every server is driven by the same raw JSON-RPC client over stdio (or the same httpx loop over HTTP), so
the ratios compare servers, not clients. Everything runs on this machine: stdio pipes and 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import io
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.load_http import NO_AUTH, LoadResult, launch_http_server, rss_kib, run_lean_load, run_load

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PY = sys.executable
OURS = [PY, "-m", "server.cli"]
SDK_FLOOR = [PY, str(ROOT / "bench" / "floor_sdk.py")]
RAW_FLOOR = [PY, str(ROOT / "bench" / "floor_raw.py")]
PACKAGES = ("server", "tools", "providers", "docs_topics")
INIT_PARAMS: dict[str, Any] = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "bench", "version": "1"},
}


# --- a raw JSON-RPC client over stdio ---------------------------------------------------------------------
class StdioPeer:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._id = 0

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        message = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or {}}
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"{method}: the server closed the pipe")
            answer: dict[str, Any] = json.loads(line)
            if answer.get("id") == self._id:
                return answer

    def initialize(self) -> None:
        self.request("initialize", INIT_PARAMS)
        assert self.process.stdin
        self.process.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        self.process.stdin.flush()

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        answer = self.request("tools/call", {"name": tool, "arguments": arguments})
        if "error" in answer or answer["result"].get("isError"):
            raise RuntimeError(f"{tool} failed: {str(answer)[:300]}")
        return answer

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def timed_calls(peer: StdioPeer, tool: str, arguments: dict[str, Any], n: int, warmup: int = 0) -> list[float]:
    """`n` timed calls, after `warmup` untimed ones (the first calls to a server that sat idle while another
    was measured run ~2x slower: cold caches, a sleeping process)."""
    for _ in range(warmup):
        peer.call(tool, arguments)
    out = []
    for _ in range(n):
        started = time.perf_counter()
        peer.call(tool, arguments)
        out.append((time.perf_counter() - started) * 1000)
    return out


def timed_spawns(argv: list[str], n: int, warmup: int) -> list[float]:
    """`n` timed spawns of a command (and wait for it), after `warmup` untimed ones."""
    for _ in range(warmup):
        subprocess.run(argv, check=True)
    out = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run(argv, check=True)
        out.append((time.perf_counter() - started) * 1000)
    return out


def bare_bwrap_argv(data_dir: str) -> list[str] | None:
    """bwrap with the profile a session gets, running `true` in a working directory of its own; None where
    the sandbox cannot run."""
    from providers.local.config import SandboxConfig
    from providers.local.sandbox import build, find_bwrap, probe

    bwrap = find_bwrap(SandboxConfig())
    if bwrap is None:
        return None
    sandbox = build(SandboxConfig(), bwrap, Path(data_dir))
    if probe(sandbox) is not None:
        return None
    workdir = Path(data_dir) / "bwrap-floor"
    workdir.mkdir(exist_ok=True)
    return sandbox.argv("true", str(workdir), str(workdir))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- results ----------------------------------------------------------------------------------------------
@dataclass
class Row:
    metric: str
    ours: float
    floor: float | None
    unit: str
    target: str
    ok: bool | None

    def cells(self) -> list[str]:
        ratio = f"{self.ours / self.floor:.2f}x" if self.floor else "-"
        floor = f"{self.floor:,.2f}" if self.floor is not None else "-"
        verdict = {True: "meets", False: "MISSES", None: "info"}[self.ok]
        return [
            self.metric,
            f"{self.ours:,.2f} {self.unit}",
            f"{floor} {self.unit if self.floor else ''}".strip(),
            ratio,
            self.target,
            verdict,
        ]


def ratio_row(metric: str, ours: float, floor: float, unit: str, limit: float, higher_is_better: bool = False) -> Row:
    ratio = ours / floor
    ok = ratio >= limit if higher_is_better else ratio <= limit
    return Row(metric, ours, floor, unit, f"{'>=' if higher_is_better else '<='} {limit}x floor", ok)


# --- the measurements -------------------------------------------------------------------------------------
def cpu_ms(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; 10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def cold_start_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) from spawn to the initialize result."""
    started = time.perf_counter()
    peer = StdioPeer(argv, env)
    peer.initialize()
    elapsed = (time.perf_counter() - started) * 1000
    cpu = cpu_ms(peer.process.pid)
    peer.close()
    return elapsed, cpu


def cold_starts(commands: list[list[str]], runs: int, env: dict[str, str]) -> list[tuple[float, float]]:
    """Median (wall, CPU) spawn -> initialize of each command, runs interleaved so noise hits all alike.
    CPU time is the steadier figure on a shared machine: it does not count time spent waiting for a core."""
    times: list[list[tuple[float, float]]] = [[] for _ in commands]
    for _ in range(runs):
        for i, argv in enumerate(commands):
            times[i].append(cold_start_once(argv, env))
    return [(statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for t in times]


def context_cost() -> list[Row]:
    from mcp import Client

    from server.app import create_server
    from server.config import load_settings

    async def sizes(toolsets: str) -> tuple[int, int]:
        os.environ["RUNTIMES_MCP_TOOLSETS"] = toolsets
        async with Client(create_server(load_settings())) as client:
            tools = (await client.list_tools()).tools
            listing = json.dumps(
                {"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]},
                separators=(",", ":"),
            )
            toc = await client.call_tool("getDocs", {})
            toc_bytes = len(
                json.dumps(toc.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":"))
            )
        return len(listing), toc_bytes

    default, toc = anyio.run(sizes, "")
    everything, _ = anyio.run(sizes, "all")
    os.environ.pop("RUNTIMES_MCP_TOOLSETS", None)
    return [
        Row("tools/list bytes, default (~tokens = bytes/4)", default, None, "B", "<= 10,000 B", default <= 10_000),
        Row("tools/list bytes, all toolsets", everything, None, "B", "-", None),
        Row("getDocs() table of contents bytes", toc, None, "B", "-", None),
    ]


def storage_throughput(quick: bool) -> list[Row]:
    from providers.local.config import LocalConfig
    from providers.local.startup import open_runtime

    n = 500 if quick else 2000

    def sqlite_floor() -> float:
        with tempfile.TemporaryDirectory() as d:
            db = sqlite3.connect(Path(d) / "floor.sqlite3", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT, sandbox_id TEXT, type TEXT, "
                "data TEXT, timestamp INTEGER)"
            )
            started = time.perf_counter()
            for i in range(n):
                db.execute(
                    "INSERT INTO events (id, sandbox_id, type, data, timestamp) VALUES (?, ?, ?, ?, ?)",
                    (f"e{i}", "local", "bench", json.dumps({"i": i}), i),
                )
            elapsed = time.perf_counter() - started
            db.close()
        return n / elapsed

    async def ours(concurrency: int) -> float:
        with tempfile.TemporaryDirectory() as d:
            async with open_runtime(LocalConfig(), Path(d)) as runtime:
                per_task = n // concurrency

                async def writer(k: int) -> None:
                    for i in range(per_task):
                        await runtime.store_event("bench", {"i": i, "k": k})

                started = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for k in range(concurrency):
                        tg.start_soon(writer, k)
                return (per_task * concurrency) / (time.perf_counter() - started)

    floor = sqlite_floor()
    one, many = anyio.run(ours, 1), anyio.run(ours, 32)
    return [
        Row("storeEvent (local) events/s, 1 caller", one, floor, "ev/s", "info (floor: plain WAL inserts)", None),
        Row("storeEvent (local) events/s, 32 callers", many, floor, "ev/s", "info (floor: plain WAL inserts)", None),
    ]


def stdio_rows(quick: bool, env: dict[str, str]) -> list[Row]:
    runs = 5 if quick else 15
    calls = 200 if quick else 1000
    rows: list[Row] = []
    (ours_cold, ours_cpu), (sdk_cold, sdk_cpu), (raw_cold, _) = cold_starts([OURS, SDK_FLOOR, RAW_FLOOR], runs, env)
    rows.append(
        ratio_row(f"cold start stdio, median of {runs} interleaved (vs bare SDK)", ours_cold, sdk_cold, "ms", 1.2)
    )
    rows.append(Row("cold start CPU time to initialize (vs bare SDK)", ours_cpu, sdk_cpu, "ms", "info", None))
    rows.append(Row("cold start stdio (vs raw JSON-RPC loop)", ours_cold, raw_cold, "ms", "info", None))

    # `ours` has the default configuration (sandboxed where the kernel allows, as here); `plain` runs
    # commands unsandboxed, for the unsandboxed figure and the sandbox's cost over it.
    plain_dir = tempfile.mkdtemp()
    sdk, ours = StdioPeer(SDK_FLOOR, env), StdioPeer(OURS, env)
    plain = StdioPeer(OURS, {**env, "RUNTIMES_MCP_SANDBOX": "off", "RUNTIMES_MCP_DATA_DIR": plain_dir})
    for peer in (sdk, ours, plain):
        peer.initialize()
    sdk_rss_start, rss_start = rss_kib(sdk.process.pid), rss_kib(ours.process.pid)
    bwrap_true = bare_bwrap_argv(plain_dir)
    # Interleaved in rounds, each server idle while the other works, so machine noise hits all alike.
    echo: list[float] = []
    docs: list[float] = []
    listing: list[float] = []
    execs: list[float] = []
    naive: list[float] = []
    sandboxed: list[float] = []
    shell: list[float] = []
    bwrap: list[float] = []
    rounds, warm = 25, 3
    for _ in range(rounds):
        echo += timed_calls(sdk, "echo", {"text": "hi"}, calls // rounds, warm)
        docs += timed_calls(ours, "getDocs", {"topic": "errors"}, calls // rounds, warm)
        listing += timed_calls(ours, "listSessions", {"limit": 5}, calls // rounds, warm)
        execs += timed_calls(plain, "execRun", {"command": "true"}, calls // rounds // 2, warm)
        naive += timed_calls(sdk, "run", {"command": "true"}, calls // rounds // 2, warm)
        shell += timed_spawns(["/bin/sh", "-c", "true"], calls // rounds // 2, warm)
        if bwrap_true is not None:
            sandboxed += timed_calls(ours, "execRun", {"command": "true"}, calls // rounds // 4, warm)
            bwrap += timed_spawns(bwrap_true, calls // rounds // 4, warm)
    plain.close()
    soak = 2000 if quick else 10_000
    timed_calls(sdk, "echo", {"text": "hi"}, soak)
    sdk_rss_end = rss_kib(sdk.process.pid)
    sdk.close()
    timed_calls(ours, "getDocs", {"topic": "errors"}, soak // 2)
    rss_mid = rss_kib(ours.process.pid)
    timed_calls(ours, "getDocs", {"topic": "errors"}, soak // 2)
    rss_end = rss_kib(ours.process.pid)
    ours.close()

    echo_p50 = statistics.median(echo)
    for name, values in (("getDocs(topic)", docs), ("listSessions (local)", listing)):
        p50, p99 = statistics.median(values), pct(values, 0.99)
        rows.append(ratio_row(f"{name} p50 over stdio, {calls} calls (vs SDK echo)", p50, echo_p50, "ms", 1.3))
        rows.append(Row(f"{name} p99 / p50", p99 / p50, None, "x", "<= 2x", p99 / p50 <= 2))
    exec_floor = statistics.median(shell) + echo_p50
    exec_p50 = statistics.median(execs)
    rows.append(ratio_row("execRun `true` p50, unsandboxed (vs sh spawn + SDK call)", exec_p50, exec_floor, "ms", 1.5))
    rows.append(Row("execRun `true` p99, unsandboxed", pct(execs, 0.99), None, "ms", "info", None))
    naive_p50 = statistics.median(naive)
    rows.append(
        Row(
            "execRun `true` p50, unsandboxed (vs a bare SDK tool that runs it: no record, supervisor or output files)",
            exec_p50,
            naive_p50,
            "ms",
            "info",
            None,
        )
    )
    if sandboxed:
        sandboxed_p50 = statistics.median(sandboxed)
        bwrap_floor = statistics.median(bwrap) + echo_p50
        rows.append(
            ratio_row(
                "execRun `true` p50, sandboxed (vs bare bwrap spawn + SDK call)", sandboxed_p50, bwrap_floor, "ms", 1.5
            )
        )
        extra = sandboxed_p50 - exec_p50
        bwrap_cost = statistics.median(bwrap) - statistics.median(shell)
        rows.append(
            Row("bare bwrap spawn minus bare sh spawn (the sandbox's own price)", bwrap_cost, None, "ms", "info", None)
        )
        rows.append(
            Row(
                "execRun `true` p50, sandboxed (vs unsandboxed execRun)",
                sandboxed_p50,
                exec_p50,
                "ms",
                f"<= +5 ms (measured {extra:+.2f} ms)",
                extra <= 5.0,
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
            growth <= 1.0,
        )
    )
    rows.append(
        Row(
            f"RSS after {soak} calls (SDK floor: {sdk_rss_end / 1024:.1f} MiB)",
            rss_end / 1024,
            sdk_rss_end / 1024,
            "MiB",
            "info",
            None,
        )
    )
    return rows


def http_rows(quick: bool, env: dict[str, str]) -> list[Row]:
    single, many_clients, per_client = (150, 32, 20) if quick else (300, 32, 50)
    rows: list[Row] = []

    def serve(argv: list[str]) -> tuple[subprocess.Popen[bytes], str]:
        if argv is SDK_FLOOR:
            process, base = launch_http_server(lambda port: [*argv, "http", str(port)], env)
        else:
            process, base = launch_http_server(
                lambda port: [
                    *argv,
                    "--transport",
                    "http",
                    NO_AUTH,
                    "--port",
                    str(port),
                    "--stateless",
                    "--json-response",
                ],
                env,
            )
        return process, f"{base}/mcp"

    # Both servers run side by side and the load alternates between them in rounds, so machine noise
    # falls on both alike; each round's results are merged.
    targets = {
        "ours": (serve(OURS), {"name": "getDocs", "arguments": {"topic": "errors"}}),
        "sdk": (serve(SDK_FLOOR), {"name": "echo", "arguments": {"text": "hi"}}),
    }
    rounds = 3 if quick else 5
    measured: dict[str, dict[int, LoadResult]] = {
        label: {1: LoadResult(1, 0), 32: LoadResult(many_clients, 0)} for label in targets
    }
    try:
        for _ in range(rounds):
            for label, ((process, url), params) in targets.items():
                body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
                for clients, calls in ((1, single // rounds), (many_clients, per_client // rounds)):
                    part = anyio.run(run_load, url, clients, calls, process.pid, 120, [body])
                    total = measured[label][clients]
                    total.latencies_ms += part.latencies_ms
                    total.elapsed_s += part.elapsed_s
                    total.errors += part.errors
                    total.first_error = total.first_error or part.first_error
    finally:
        for (process, _), _ in targets.values():
            process.terminate()
            process.wait(20)
    for clients in (1, 32):
        ours, sdk = measured["ours"][clients], measured["sdk"][clients]
        if ours.errors or sdk.errors:
            raise RuntimeError(f"HTTP errors: ours {ours.errors} ({ours.first_error}), sdk {sdk.errors}")
        rows.append(
            ratio_row(
                f"HTTP req/s, {clients} client(s), stateless (vs bare SDK)",
                ours.throughput,
                sdk.throughput,
                "req/s",
                0.8,
                higher_is_better=True,
            )
        )
        rows.append(
            Row(
                f"HTTP p99, {clients} client(s) (SDK floor {sdk.percentile(0.99):.1f} ms)",
                ours.percentile(0.99),
                sdk.percentile(0.99),
                "ms",
                "info",
                None,
            )
        )
    return rows


def workers_rows(quick: bool, env: dict[str, str]) -> list[Row]:
    """HTTP throughput with --workers 2 against one worker, 32 clients, alternating rounds."""
    clients, seconds, rounds = (32, 1.0, 3) if quick else (32, 3.0, 5)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "getDocs", "arguments": {}}}

    def serve(workers: int) -> tuple[subprocess.Popen[bytes], str]:
        argv = [*OURS, "--transport", "http", NO_AUTH, "--stateless", "--json-response", "--workers", str(workers)]
        process, base = launch_http_server(lambda port: [*argv, "--port", str(port)], env)
        return process, f"{base}/mcp"

    targets = {workers: serve(workers) for workers in (1, 2)}
    measured = {workers: LoadResult(clients, 0) for workers in targets}
    try:
        for _ in range(rounds):
            for workers, (_, url) in targets.items():
                part = asyncio.run(run_lean_load(url, clients, seconds, body))
                total = measured[workers]
                total.latencies_ms += part.latencies_ms
                total.elapsed_s += part.elapsed_s
                total.errors += part.errors
                total.first_error = total.first_error or part.first_error
    finally:
        for process, _ in targets.values():
            process.terminate()
            process.wait(30)
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
        ),
        Row(
            f"HTTP p99, {clients} clients, --workers 2 (1 worker: {one.percentile(0.99):.1f} ms)",
            two.percentile(0.99),
            one.percentile(0.99),
            "ms",
            "info",
            None,
        ),
    ]


def postgres_throughput(quick: bool) -> list[Row]:
    """storeEvent on the PostgreSQL backend against bare psycopg inserts, 32 callers each (skipped without
    PostgreSQL server binaries)."""
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    from providers.local.config import LocalConfig
    from providers.local.startup import open_runtime
    from tests import postgres

    if postgres.server_binaries() is None:
        return [Row("storeEvent (PostgreSQL) events/s, 32 callers", 0, None, "ev/s", "skipped: no PostgreSQL", None)]
    n, callers = (640 if quick else 3200), 32
    server = postgres.start_postgres()
    try:
        floor_url, ours_url = server.database("bench_floor"), server.database("bench_ours")
        with psycopg.connect(floor_url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE events (seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE, sandbox_id TEXT, type TEXT, "
                "data TEXT, timestamp BIGINT)"
            )

        def bare(k: int) -> None:
            with psycopg.connect(floor_url, autocommit=True) as conn:
                for i in range(n // callers):
                    conn.execute(
                        "INSERT INTO events (id, sandbox_id, type, data, timestamp) VALUES (%s, %s, %s, %s, %s)",
                        (f"e{k}-{i}", "local", "bench", json.dumps({"i": i}), i),
                    )

        started = time.perf_counter()
        with ThreadPoolExecutor(callers) as pool:
            list(pool.map(bare, range(callers)))
        floor = n / (time.perf_counter() - started)

        async def ours() -> float:
            with tempfile.TemporaryDirectory() as d:
                async with open_runtime(LocalConfig(), Path(d), state_url=ours_url) as runtime:

                    async def writer(k: int) -> None:
                        for i in range(n // callers):
                            await runtime.store_event("bench", {"i": i, "k": k})

                    began = time.perf_counter()
                    async with anyio.create_task_group() as tg:
                        for k in range(callers):
                            tg.start_soon(writer, k)
                    return n / (time.perf_counter() - began)

        ours_rate = anyio.run(ours)
    finally:
        postgres.remove(server)
    return [
        ratio_row(
            f"storeEvent (PostgreSQL) events/s, {callers} callers (vs bare psycopg inserts, {callers} connections)",
            ours_rate,
            floor,
            "ev/s",
            0.7,
            higher_is_better=True,
        )
    ]


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def event_page_memory() -> list[Row]:
    """Peak RSS of a server while it answers the largest getEvents page (a few large events, cut at the page
    cap), over its level before the call, over stdio and over HTTP (SSE): information, against the page cap."""
    from providers.models import MAX_PAGE_CHARS

    payloads = [{"blob": "x" * 60_000} for _ in range(6)]
    rises = {}
    for transport in ("stdio", "HTTP SSE"):
        with tempfile.TemporaryDirectory() as data_dir:
            rises[transport], reply = largest_page_rise(transport, payloads, data_dir)
    measured = ", ".join(f"{transport} {rise:.2f}" for transport, rise in rises.items())
    metric = f"getEvents largest page ({reply:.2f} MiB reply): peak RSS rise, the larger of {measured} MiB"
    return [Row(metric, max(rises.values()), MAX_PAGE_CHARS / (1 << 20), "MiB", "info (floor: the page cap)", None)]


def largest_page_rise(transport: str, payloads: list[dict[str, Any]], data_dir: str) -> tuple[float, float]:
    """(peak RSS rise in MiB while answering the largest getEvents page, the reply's size in MiB)."""
    env = {"RUNTIMES_MCP_DATA_DIR": data_dir, "RUNTIMES_MCP_TOOLSETS": "events"}
    if transport == "stdio":
        peer = StdioPeer(OURS, env)
        peer.initialize()
        pid, call, close = peer.process.pid, peer.call, peer.close
    else:
        argv = [*OURS, "--transport", "http", NO_AUTH, "--port"]
        process, base = launch_http_server(lambda port: [*argv, str(port)], env)
        client = httpx.Client(timeout=60, headers={"Accept": "application/json, text/event-stream"})

        def post(body: dict[str, Any]) -> dict[str, Any]:
            response = client.post(f"{base}/mcp", json=body)
            if "mcp-session-id" in response.headers:
                client.headers.update({"mcp-session-id": response.headers["mcp-session-id"]})
            if not response.headers["content-type"].startswith("text/event-stream"):
                return dict(response.json())
            data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ") and line[6:]]
            return dict(json.loads(data[-1]))

        def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
            params = {"name": tool, "arguments": arguments}
            return post({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})

        def close() -> None:
            client.close()
            process.terminate()
            process.wait(20)

        post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT_PARAMS})
        client.headers.update({"mcp-protocol-version": INIT_PARAMS["protocolVersion"]})
        client.post(f"{base}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        pid = process.pid
    try:
        for data in payloads:
            call("storeEvent", {"type": "big", "data": data})
        for _ in range(3):
            call("getEvents", {"limit": 1, "type": "none"})
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts from here
        before = rss_kib(pid)
        reply = call("getEvents", {"limit": 1000, "type": "big"})
        peak = peak_kib(pid) - before
    finally:
        close()
    assert reply["result"]["structuredContent"]["events"], reply
    line = len(json.dumps(reply, separators=(",", ":"), ensure_ascii=False).encode())
    return peak / 1024, line / (1 << 20)


def remote_answer_memory() -> list[Row]:
    """Peak RSS of a stdio server while a provider answers 100 MB (a fake Sprites API on loopback), over its level
    before the call, against the answer cap: the answer is read up to the cap and refused, never held whole."""
    from providers.http import MAX_RESPONSE_BYTES
    from tests.fakes import Reply, fake_api

    with fake_api() as api, tempfile.TemporaryDirectory() as data_dir:
        api.routes[("GET", "/v1/sprites/box/exec")] = Reply(body=b'{"sessions": ["' + b"x" * 100_000_000 + b'"]}')
        env = {"RUNTIMES_MCP_DATA_DIR": data_dir, "SPRITES_TOKEN": "t", "SPRITES_BASE_URL": api.url()}
        peer = StdioPeer(OURS, env)
        try:
            peer.initialize()
            peer.call("listSessions", {"provider": "local"})
            Path(f"/proc/{peer.process.pid}/clear_refs").write_text("5")
            before = rss_kib(peer.process.pid)
            arguments = {"provider": "sprites", "sprite": "box"}
            with contextlib.redirect_stderr(io.StringIO()):  # the fake's report of the connection we dropped
                answer = peer.request("tools/call", {"name": "listSessions", "arguments": arguments})
            rise = (peak_kib(peer.process.pid) - before) / 1024
        finally:
            peer.close()
    assert answer["result"]["isError"], answer
    cap = MAX_RESPONSE_BYTES / (1 << 20)
    metric = "remote answer of 100 MB (refused): peak RSS rise (vs the 16 MiB answer cap)"
    return [ratio_row(metric, rise, cap, "MiB", 2)]


def remote_overhead(quick: bool) -> list[Row]:
    from providers.sprites.client import SpritesClient
    from tests.fakes import Reply, fake_api

    n = 300 if quick else 1000

    async def measure(url: str) -> tuple[float, float]:
        """Median ms per call of each, timed call by call in alternating rounds of 50."""
        ours: list[float] = []
        bare_times: list[float] = []
        client = SpritesClient(base_url=url, token="t")
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer t"}, timeout=30) as bare:
            try:
                for _ in range(n // 50):
                    for _ in range(50):
                        started = time.perf_counter()
                        (await bare.get("/v1/sprites/box/exec")).json()
                        bare_times.append((time.perf_counter() - started) * 1000)
                    for _ in range(50):
                        started = time.perf_counter()
                        await client.list_sessions("box")
                        ours.append((time.perf_counter() - started) * 1000)
            finally:
                await client.aclose()
        return statistics.median(ours[50:]), statistics.median(bare_times[50:])  # the first round warms up

    with fake_api() as api:
        api.routes[("GET", "/v1/sprites/box/exec")] = Reply(
            body={
                "sessions": [
                    {"id": i, "command": "python server.py", "created": "2026-01-15T10:30:00Z", "is_active": i % 2 == 0}
                    for i in range(5)
                ]
            }
        )
        ours_ms, bare_ms = anyio.run(measure, api.url())
    delta = ours_ms - bare_ms
    return [
        Row(
            f"remote provider call (Sprites list) vs bare httpx, p50 of {n} calls",
            ours_ms,
            bare_ms,
            "ms",
            f"<= +1 ms (measured {delta:+.3f} ms)",
            delta <= 1.0,
        )
    ]


def sign_in_overhead(quick: bool) -> list[Row]:
    from bench import auth

    static, same, fresh = auth.measure(calls=300 if quick else 1000)
    return [
        Row(
            f"HTTP tool call signed in with a JWT vs the static token, p50 ({way.way})",
            way.p50_ms,
            static.p50_ms,
            "ms",
            f"{target} (measured {way.p50_ms - static.p50_ms:+.3f} ms)",
            ok,
        )
        for way, target, ok in (
            (same, "<= +0.2 ms", same.p50_ms - static.p50_ms <= 0.2),
            (fresh, "info", None),
        )
    ]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )


def render(rows: list[Row], label: str, elapsed: float) -> str:
    header = ["metric", "ours", "floor", "ratio", "target", "verdict"]
    lines = [
        f"## {label}",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}; the whole run took {elapsed:.0f} s.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(section: str, label: str) -> None:
    text = (
        RESULTS.read_text()
        if RESULTS.exists()
        else (
            "# Benchmark results\n\nWritten by `python -m bench.run --label NAME`; each label keeps its latest run.\n"
            "Numbers are from noisy shared machines: read the ratios, measured in the same run, not the absolutes.\n\n"
        )
    )
    pattern = re.compile(rf"^## {re.escape(label)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="latest", help="section of RESULTS.md to write (default latest)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.perf_counter()
    # `pip install` byte-compiles a package, and the SDK we compare with was. Do the same for this tree, so
    # that an environment with PYTHONDONTWRITEBYTECODE does not time our compiling from source on each start.
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)
    with tempfile.TemporaryDirectory() as data_dir:
        env = {"RUNTIMES_MCP_DATA_DIR": data_dir}
        steps: list[Callable[[], list[Row]]] = [
            context_cost,
            lambda: stdio_rows(args.quick, env),
            lambda: http_rows(args.quick, env),
            lambda: workers_rows(args.quick, env),
            lambda: storage_throughput(args.quick),
            lambda: postgres_throughput(args.quick),
            lambda: remote_overhead(args.quick),
            lambda: sign_in_overhead(args.quick),
            remote_answer_memory,
            event_page_memory,
        ]
        rows = [row for step in steps for row in step()]
    section = render(rows, args.label, time.perf_counter() - started)
    print(section)
    if not args.no_write:
        write_results(section, args.label)
    return 0


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    sys.exit(main())
