"""Shared fixtures: isolated settings per test, in-process and stdio MCP clients, process inspection."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from providers.local.supervisor import records as supervisor
from server.app import create_server
from server.config import Settings, load_settings
from tests.fakes import FakeAPI, fake_api

CREDENTIAL_ENV = (
    "SPRITES_TOKEN",
    "XANO_ACCESS_TOKEN",
    "ARCHASTRO_API_KEY",
    "DECTHINGS_API_KEY",
    "COMPUTESDK_ACCESS_TOKEN",
    "COMPUTESDK_API_KEY",
)


def live_descendants() -> list[tuple[int, str]]:
    """(pid, command line) of every live process this test process started, however far down."""
    found = []
    for pid in supervisor.descendants(os.getpid()):
        if supervisor.identity(pid) is None:
            continue  # a zombie: it has ended
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((pid, cmdline.strip()))
    return found


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_suite() -> Iterator[None]:
    """The suite fails if any process it started is still alive at its end. This process becomes a child
    subreaper, so what a test started stays its descendant even after a double fork or setsid."""
    if not supervisor.prctl(supervisor.PR_SET_CHILD_SUBREAPER, 1):
        yield
        return
    yield
    deadline = time.monotonic() + 15  # supervisors told to stop get their grace period
    while live_descendants() and time.monotonic() < deadline:
        time.sleep(0.1)
    leftovers = live_descendants()
    for pid, _ in leftovers:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"processes started by the tests outlived them: {leftovers}"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's real settings; each gets its own data directory. Servers stop the
    sessions they started when they exit (tests of durable sessions switch that back to "keep")."""
    for name in list(os.environ):
        if name.startswith(("RUNTIMES_MCP_", "COMPUTESDK_")) or name in CREDENTIAL_ENV or name.endswith("_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
        if name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE"):  # the ray provider honours them
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNTIMES_MCP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RUNTIMES_MCP_ON_EXIT", "stop")
    yield


@pytest.fixture
def config_file(tmp_path: Path) -> Any:
    """Write a TOML config file and return its path."""

    def write(body: str) -> Path:
        path = tmp_path / "runtimes.toml"
        path.write_text(textwrap.dedent(body), encoding="utf-8")
        return path

    return write


@asynccontextmanager
async def connect(settings: Settings | None = None, **client_options: Any) -> AsyncIterator[Client]:
    """An in-process MCP client session against a fresh server."""
    async with Client(create_server(settings or load_settings()), **client_options) as client:
        yield client


# The headline tools: the seed tools, getSession to follow a run, getEvents to read back what storeEvent keeps.
HEADLINE_NAMES = [
    "listSessions",
    "execRun",
    "getSession",
    "stopSession",
    "invokeRoutine",
    "getLaunchers",
    "storeEvent",
    "getEvents",
]
# The default tools/list, in order: the headline tools, the workspace file tools, and getDocs.
DEFAULT_TOOLS = [*HEADLINE_NAMES, "writeFile", "readFile", "getDocs"]


def stdio_params(*args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    """A real `runtimes-mcp` process over stdio, with this test's environment."""
    full_env = {k: v for k, v in os.environ.items()}
    full_env.update(env or {})
    return StdioServerParameters(command=sys.executable, args=["-m", "server.cli", *args], env=full_env)


def processes_matching(marker: str) -> list[int]:
    """Live (non-zombie) pids whose command line contains `marker`; the sandbox's own bubblewrap processes
    (whose command line holds the command too) are not counted."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2 :].split()[0]
        bwrap = stat[stat.find(b"(") + 1 : stat.rfind(b")")] == b"bwrap"
        if marker.encode() in cmdline and state != b"Z" and not bwrap and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def marker() -> str:
    """A sleep duration no other process on the machine uses, to find ours in /proc."""
    return str(random.randint(700_000, 999_999))


async def appears(mark: str, at_least: int = 1, within_s: float = 10.0) -> list[int]:
    """The live processes matching `mark`, once there are `at_least`. A started session's command comes into being
    a few ms after the start is reported (a sandboxed one once bubblewrap has set up), more under load."""
    deadline = time.monotonic() + within_s
    while len(found := processes_matching(mark)) < at_least and time.monotonic() < deadline:
        await anyio.sleep(0.01)
    return found


async def wait_until_gone(mark: str, within_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while processes_matching(mark) and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    return processes_matching(mark)


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text if result.content else result
    assert result.structured_content is not None
    return dict(result.structured_content)


def error_text(result: Any) -> str:
    assert result.is_error, result.structured_content
    return "\n".join(block.text for block in result.content)


# --- remote providers: every base URL on one recording fake, every credential a unique marker ----------
TOKENS = {
    "SPRITES_TOKEN": "tok-sprites-SECRET1",
    "XANO_ACCESS_TOKEN": "tok-xano-SECRET2",
    "ARCHASTRO_API_KEY": "sk_archastro_SECRET3",
    "DECTHINGS_API_KEY": "tok-decthings-SECRET4",
    "COMPUTESDK_ACCESS_TOKEN": "tok-computesdk-SECRET5",
    "COMPUTESDK_API_KEY": "key-computesdk-SECRET6",
}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    with fake_api() as fake:
        for name, value in TOKENS.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("SPRITES_BASE_URL", fake.url("/sprites"))
        monkeypatch.setenv("XANO_RUN_BASE_URL", fake.url("/xano/api:run"))
        monkeypatch.setenv("ARCHASTRO_BASE_URL", fake.url("/archastro"))
        monkeypatch.setenv("DECTHINGS_BASE_URL", fake.url("/decthings/v0"))
        monkeypatch.setenv("COMPUTESDK_GATEWAY_URL", fake.url("/computesdk"))
        monkeypatch.setenv("RUNTIMES_MCP_TOOLSETS", "all")
        yield fake


# --- PostgreSQL: one real server for the session (tests/postgres.py), a fresh database per test -------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    from tests import postgres

    if postgres.server_binaries() is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    server = postgres.start_postgres()
    try:
        yield server
    finally:
        postgres.remove(server)


@pytest.fixture
def state_url(postgres_server: Any, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh PostgreSQL database for this test, set as RUNTIMES_MCP_STATE_URL."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    url: str = postgres_server.database(name)
    monkeypatch.setenv("RUNTIMES_MCP_STATE_URL", url)
    return url


# --- a real OAuth 2.0 / OIDC authorization server for the session (tests/oidc_server.py) -----------------------
@pytest.fixture(scope="session")
def identity_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests import oidc_server

    if not oidc_server.node_available():
        pytest.skip("node/npm not found: install Node.js to run the sign-in tests")
    provider = oidc_server.start(tmp_path_factory.mktemp("oidc"))
    try:
        yield provider
    finally:
        provider.stop()


class RawStdio:
    """A real `runtimes-mcp` over stdio, spoken to line by line (raw bytes both ways), initialized with the
    legacy handshake. For what a client library would hide: the exact bytes on the wire, unparsable input."""

    def __init__(self, *args: str, initialize: bool = True) -> None:
        import subprocess

        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self._buffer = b""
        if initialize:
            hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
            self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello})
            assert self.lines(1), self.stderr()
            self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict[str, Any] | bytes) -> None:
        import json

        assert self.process.stdin is not None
        line = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.process.stdin.write(line + b"\n")

    def lines(self, count: int, within_s: float = 60) -> list[bytes]:
        """The next `count` lines the server writes (fewer if it stops or the time runs out)."""
        import select

        assert self.process.stdout is not None
        found: list[bytes] = []
        deadline = time.monotonic() + within_s
        while len(found) < count and time.monotonic() < deadline:
            if b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                found.append(line)
                continue
            if select.select([self.process.stdout], [], [], 0.2)[0]:
                data = os.read(self.process.stdout.fileno(), 1 << 20)
                if not data:
                    break
                self._buffer += data
        return found

    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr(self) -> str:
        if self.alive() or self.process.stderr is None:
            return ""
        return self.process.stderr.read().decode(errors="replace")

    def __enter__(self) -> RawStdio:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except Exception:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
