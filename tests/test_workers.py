"""`--workers N`: several server processes on one port share the load and the state, and stop together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.load_http import free_port
from tests.conftest import structured
from tests.test_http import TOKEN, authed_client

ROOT = Path(__file__).resolve().parent.parent


def start_workers(port: int, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "server.cli", "--transport", "http", "--port", str(port), *extra]
    env = {**os.environ, "RUNTIMES_MCP_HTTP_TOKEN": TOKEN}
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)


def health_pid(base: str) -> int | None:
    try:
        return int(httpx.get(f"{base}/healthz", timeout=2, headers={"Connection": "close"}).json()["pid"])
    except httpx.HTTPError:
        return None


def wait_for(condition: object, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


async def test_two_workers_share_one_port_and_the_state_and_a_dead_worker_is_replaced() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    parent = start_workers(port, "--stateless", "--json-response", "--workers", "2")
    try:
        wait_for(lambda: health_pid(base) is not None)
        with ThreadPoolExecutor(8) as pool:
            pids = set(pool.map(lambda _: health_pid(base), range(200)))
        pids.discard(None)
        assert len(pids) == 2 and parent.pid not in pids, pids

        async with authed_client(base) as client:
            stored = [
                structured(await client.call_tool("storeEvent", {"type": "w", "data": {"n": n}})) for n in range(10)
            ]
            seen = structured(await client.call_tool("listSessions", {}))
        assert len({s["event_id"] for s in stored}) == 10 and seen["provider"] == "local"

        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len({health_pid(base) for _ in range(40)} - {None, victim}) == 2)
    finally:
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0
    stderr = parent.stderr.read().decode() if parent.stderr else ""
    assert "2 worker processes" in stderr and f"worker {victim} exited" in stderr


@pytest.mark.parametrize("flags", [("--workers", "2"), ("--stateless", "--workers", "0")])
def test_workers_need_stateless_http_and_a_sane_count(flags: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "--transport", "http", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--workers" in result.stderr and len(result.stderr.strip().splitlines()) == 1
