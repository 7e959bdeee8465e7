"""A server started as root: it says so, and with `local.sandbox.run_as` its runs belong to that user."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.config import load_settings
from tests.conftest import connect, structured
from tests.test_sandbox import PYTHON

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only a server started as root can change user")
USER = "nobody"


def call(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_a_root_server_says_in_one_line_that_its_commands_run_as_root() -> None:
    done = call("call", "execRun", '{"command": "id -u"}')
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "root" in line]
    assert len(lines) == 1 and "run_as" in lines[0], done.stderr


def test_run_as_refuses_a_data_directory_the_user_cannot_reach(config_file: Any) -> None:
    # the test's data directory is below pytest's 0700 base directory, as a root server's default is below /root
    config = config_file(f'[local.sandbox]\nrun_as = "{USER}"\n')
    done = call("--config", str(config), "call", "execRun", '{"command": "true"}')
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert (
        "run_as" in lines[0] and "cannot reach the data directory" in lines[0] and "RUNTIMES_MCP_DATA_DIR" in lines[0]
    )


def test_run_as_refuses_root_and_unknown_users(config_file: Any) -> None:
    for user, words in (("root", "unprivileged"), ("no-such-user-here", "no such user")):
        done = call("--config", str(config_file(f'[local.sandbox]\nrun_as = "{user}"\n')), "call", "listSessions", "{}")
        assert done.returncode == 2 and words in done.stderr, done.stderr


@pytest.fixture
def reachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data directory and a shared writable directory below /tmp, which any user may pass through."""
    top = Path(tempfile.mkdtemp(prefix="runtimes-mcp-run-as-", dir="/tmp"))
    top.chmod(0o711)
    (top / "shared").mkdir(mode=0o777)
    (top / "shared").chmod(0o777)
    monkeypatch.setenv("RUNTIMES_MCP_DATA_DIR", str(top / "data"))
    yield top
    shutil.rmtree(top)


@pytest.mark.parametrize("mode", ["auto", "off"])
async def test_runs_and_what_they_write_belong_to_the_run_as_user(reachable: Path, config_file: Any, mode: str) -> None:
    nobody = 65534
    shared = reachable / "shared"
    config = config_file(f'[local.sandbox]\nrun_as = "{USER}"\nmode = "{mode}"\nwritable_paths = ["{shared}"]\n')
    settings = load_settings(config)
    async with connect(settings) as client:
        command = f"id -u; cat /proc/1/comm; echo x > mine; echo y > {shared}/f"
        own = structured(await client.call_tool("execRun", {"command": command}))
    assert own["exit_code"] == 0, own
    uid, init = own["stdout"].split()[:2]
    assert int(uid) == nobody and (init == "bwrap") == (mode == "auto"), own  # sandboxed, unless switched off
    work = settings.data_dir / "sessions" / own["session_id"] / "work"
    assert (work / "mine").stat().st_uid == nobody and (shared / "f").stat().st_uid == nobody


async def test_a_workspace_and_the_files_written_into_it_belong_to_the_run_as_user(
    reachable: Path, config_file: Any
) -> None:
    settings = load_settings(config_file(f'[local.sandbox]\nrun_as = "{USER}"\n'))
    async with connect(settings) as client:
        structured(await client.call_tool("writeFile", {"workspace": "w", "path": "src/a.py", "content": "x"}))
        ran = structured(
            await client.call_tool("execRun", {"command": "echo y >> src/a.py && id -u", "workspace": "w"})
        )
    workspace = settings.data_dir / "workspaces" / "local" / "w"
    assert ran["exit_code"] == 0 and ran["stdout"] == "65534\n", ran
    for path in (workspace, workspace / "src", workspace / "src" / "a.py"):
        assert path.stat().st_uid == 65534, path
    assert (workspace / "src" / "a.py").read_text() == "xy\n"


async def test_a_run_as_users_run_reaches_the_proxy_and_publishes_a_port(reachable: Path, config_file: Any) -> None:
    """The relay, as that user, gets the proxy's socket and its ports' sockets as descriptors: nothing of the
    supervisor's (root's) network directory has to be reachable by it."""
    serve = "import socket; c, _ = socket.create_server(('127.0.0.1', 8999)).accept(); c.sendall(b'inside')"
    with socket.create_server(("127.0.0.1", 0)) as web:
        port = web.getsockname()[1]
        body = (
            f'[local.sandbox]\nrun_as = "{USER}"\nnetwork = "allowlist"\n'
            f'allow = ["web.test:{port}"]\n[local.sandbox.hosts]\n"web.test" = "127.0.0.1"\n'
        )
        settings = load_settings(config_file(body))
        async with connect(settings) as client:
            command = f'{PYTHON} -c "{serve}" & curl -sS -m 5 http://web.test:{port}/ -o /dev/null; wait'
            started = structured(
                await client.call_tool("execRun", {"command": command, "ports": [8999], "wait": False})
            )
            web.settimeout(30)
            conn, _ = await anyio.to_thread.run_sync(web.accept)  # the proxy connected on the run's behalf
            conn.close()
            answer = await anyio.to_thread.run_sync(read_until_answered, started["ports"]["8999"])
            ended = structured(
                await client.call_tool("getSession", {"session_id": started["session_id"], "wait_s": 30})
            )
    assert answer == b"inside" and ended["state"] == "completed", (answer, ended)


def read_until_answered(port: int, within_s: float = 30) -> bytes:
    """What the service behind a published port says, once it listens (until then the relay closes at once).
    Nothing (b"") when the port is closed: the run has ended, and the caller's assertion shows how."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                if said := conn.recv(100):
                    return said
        except ConnectionRefusedError:
            return b""
        time.sleep(0.02)
    return b""
