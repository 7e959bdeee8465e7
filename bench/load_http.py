"""Bounded loopback load test of the Streamable HTTP server (stateless, JSON responses).

N concurrent clients each make M tool calls (getDocs of a small topic, then local listSessions, alternating)
against a real `runtimes-mcp --transport http` process on 127.0.0.1. Prints errors, throughput, latency
percentiles and the server's resident memory before and after; exits non-zero on any error.

    python -m bench.load_http [--clients 32] [--calls 200]

It only ever talks to 127.0.0.1, stops by itself (bounded count and an overall deadline), and stops the
server it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

ROOT = Path(__file__).resolve().parent.parent
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}


@dataclass
class LoadResult:
    clients: int
    calls: int
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    rss_start_kib: int = 0
    rss_end_kib: int = 0
    first_error: str | None = None

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


OUR_HTTP = [sys.executable, "-m", "server.cli", "--transport", "http"]
# The bare SDK floor authenticates nothing; so that the figures compare like with like, neither do we here.
NO_AUTH = "--insecure-no-auth"


def launch_http_server(
    argv_for_port: Callable[[int], list[str]],
    env: dict[str, str] | None = None,
    stderr: int = subprocess.DEVNULL,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start an HTTP server on a free loopback port and wait until it answers at all (any status: the SDK
    floor has no /healthz). Returns the process and its base URL; raises if it exits or never answers."""
    port = free_port()
    process = subprocess.Popen(
        argv_for_port(port), cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=stderr
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/", timeout=1)  # a 404 will do; GET /mcp would open an SSE stream
            return process, base
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            detail = process.stderr.read().decode()[-2000:] if process.stderr else ""
            if process.poll() is None:
                process.kill()
            raise RuntimeError(f"the server did not start: {detail}")
        time.sleep(0.1)


DEFAULT_BODIES: list[dict[str, Any]] = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "getDocs", "arguments": {"topic": "errors"}},
    },
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "listSessions", "arguments": {"limit": 5}}},
]


class _LeanClient(asyncio.Protocol):
    """One keep-alive connection sending the same request back to back until the deadline; answers are framed
    by Content-Length and checked with a substring test. A bare Protocol: no coroutine per request."""

    def __init__(self, request: bytes, deadline: float, result: LoadResult, done: asyncio.Future[None]) -> None:
        self.request, self.deadline, self.result, self.done = request, deadline, result, done
        self.buffer = b""
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.started = time.perf_counter()
        if self.started >= self.deadline:
            self.transport.close()
            return
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:") + 15
        stop = head.find(b"\r\n", at)
        length = int(head[at : stop if stop >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        answer, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
        if head.startswith(b"http/1.1 200") and b'"result"' in answer and b'"isError":true' not in answer:
            self.result.latencies_ms.append((time.perf_counter() - self.started) * 1000)
        else:
            self.result.errors += 1
            self.result.first_error = self.result.first_error or answer[:200].decode(errors="replace")
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def run_lean_load(url: str, clients: int, duration_s: float, body: dict[str, Any]) -> LoadResult:
    """`clients` keep-alive connections sending `body` back to back for `duration_s`. The load generator costs
    the machine little (a bare asyncio Protocol per connection, Content-Length framing), so that on a small
    machine the servers get the cores; and it runs for a time, not a count, so that a server process that got
    fewer connections is not left idle at the end. The server must answer plain JSON (--json-response)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{head}Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    result = LoadResult(clients, 0)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    deadline = started + duration_s
    done = [loop.create_future() for _ in range(clients)]
    for future in done:
        await loop.create_connection(
            lambda f=future: _LeanClient(request, deadline, result, f),
            parts.hostname,
            parts.port,  # type: ignore[misc]
        )
    await asyncio.gather(*done)
    result.elapsed_s = time.perf_counter() - started
    return result


async def run_load(
    url: str,
    clients: int,
    calls: int,
    pid: int,
    deadline_s: float = 300,
    bodies: list[dict[str, Any]] | None = None,
) -> LoadResult:
    """`clients` concurrent loops of `calls` requests each, cycling through `bodies`."""
    result = LoadResult(clients, calls, rss_start_kib=rss_kib(pid))
    cycle = bodies or DEFAULT_BODIES

    async def client(index: int) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            for n in range(calls):
                started = time.perf_counter()
                try:
                    response = await http.post(url, json=cycle[(index + n) % len(cycle)], headers=HEADERS)
                    answer = response.json()
                    ok = response.status_code == 200 and "result" in answer and not answer["result"].get("isError")
                except (httpx.HTTPError, ValueError) as exc:
                    ok, answer = False, {"exception": repr(exc)}
                if ok:
                    result.latencies_ms.append((time.perf_counter() - started) * 1000)
                else:
                    result.errors += 1
                    result.first_error = result.first_error or str(answer)[:300]

    started = time.perf_counter()
    with anyio.fail_after(deadline_s):
        async with anyio.create_task_group() as tg:
            for index in range(clients):
                tg.start_soon(client, index)
    result.elapsed_s = time.perf_counter() - started
    result.rss_end_kib = rss_kib(pid)
    return result


def load_test(clients: int, calls: int) -> LoadResult:
    with tempfile.TemporaryDirectory() as data_dir:
        server, base = launch_http_server(
            lambda port: [*OUR_HTTP, NO_AUTH, "--port", str(port), "--stateless", "--json-response"],
            env={"RUNTIMES_MCP_DATA_DIR": data_dir},
        )
        try:
            return anyio.run(run_load, f"{base}/mcp", clients, calls, server.pid)
        finally:
            server.terminate()
            server.wait(20)


def report(result: LoadResult) -> str:
    median = statistics.median(result.latencies_ms) if result.latencies_ms else 0.0
    return (
        f"clients={result.clients} calls/client={result.calls} total={result.clients * result.calls}\n"
        f"errors={result.errors} elapsed={result.elapsed_s:.1f}s throughput={result.throughput:.0f} req/s\n"
        f"latency p50={median:.1f}ms p99={result.percentile(0.99):.1f}ms "
        f"max={max(result.latencies_ms, default=0):.1f}ms\n"
        f"server RSS start={result.rss_start_kib / 1024:.1f} MiB end={result.rss_end_kib / 1024:.1f} MiB"
        + (f"\nfirst error: {result.first_error}" if result.first_error else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    result = load_test(args.clients, args.calls)
    print(report(result))
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
