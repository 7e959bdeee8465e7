"""The local sandbox, tried from inside real sessions: every escape must fail, every limit must end the run with
its reason, and what the operator allows must work. Where the kernel refuses namespaces the server says so."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from providers.local.config import SandboxConfig
from providers.local.sandbox import bundled_bwrap, find_bwrap
from server.config import load_settings
from tests.conftest import appears, connect, marker, structured, wait_until_gone

# Commands see a private /tmp: an interpreter from a venv in a clone under /tmp would be out of their sight.
PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or sys.executable

SECRET = "secret-marker-in-the-home"


def sandbox_works() -> bool:
    bwrap = find_bwrap(SandboxConfig())
    if bwrap is None:
        return False
    probe = subprocess.run(
        [bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/", "--", "/bin/true"],
        capture_output=True,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not sandbox_works(), reason="this machine refuses unprivileged user namespaces")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server user's home, with a key in ~/.ssh and a token in ~/.netrc, as a real one has."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(SECRET)
    (home / ".netrc").write_text(f"machine example.com password {SECRET}")
    (home / "notes.txt").write_text("readable")
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP listener on 127.0.0.1 that records what reaches it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                received.append(conn.recv(100) or b"(connected)")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


def connect_command(port: int) -> str:
    return (
        f"{PYTHON} -c \"import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=2); "
        "s.sendall(b'hello'); print('connected')\""
    )


async def run(client: Any, command: str, **arguments: Any) -> dict[str, Any]:
    return structured(await client.call_tool("execRun", {"command": command, **arguments}))


@pytest.mark.usefixtures("home")
async def test_every_escape_fails_from_inside_a_session(
    tmp_path: Path, listener: tuple[int, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, received = listener
    monkeypatch.setenv("SPRITES_TOKEN", "secret-marker-credential")
    outside = tmp_path / "outside"
    outside.mkdir()
    data = load_settings().data_dir
    server_pid = os.getpid()  # in-process: the server is this process
    daemon = marker()
    async with connect() as client:
        (data / "planted.txt").write_text("in the data directory")
        checks = {
            "write outside": await run(client, f"echo x > {outside}/escaped"),
            "read ssh key": await run(client, "cat ~/.ssh/id_ed25519"),
            "read netrc": await run(client, "cat ~/.netrc"),
            "read data dir": await run(client, f"cat {data}/planted.txt; ls {data}/local.sqlite3"),
            "network": await run(client, connect_command(port)),
            "environ": await run(client, f"cat /proc/{server_pid}/environ"),
            "every environ": await run(client, "cat /proc/*/environ | tr '\\0' '\\n'"),
            "signal server": await run(client, f"kill -TERM {server_pid}"),
            "daemonize": await run(client, f"setsid sh -c 'sleep {daemon} &' < /dev/null > /dev/null 2>&1; echo ok"),
        }
        home_readable = await run(client, "cat ~/notes.txt")
        workdir = await run(client, "echo kept > here && cat here")
    assert not (outside / "escaped").exists() and checks["write outside"]["exit_code"] != 0
    for name in ("read ssh key", "read netrc", "read data dir", "network", "environ", "signal server"):
        result = checks[name]
        assert SECRET not in result["stdout"] and "secret-marker-credential" not in result["stdout"], name
        assert "in the data directory" not in result["stdout"], name
        if name != "read netrc":  # a hidden file reads as empty
            assert result["exit_code"] != 0, (name, result)
    every = checks["every environ"]["stdout"]
    assert "PATH=" in every and "secret-marker" not in every and "SPRITES_TOKEN" not in every
    assert "connected" not in checks["network"]["stdout"] and received == []
    assert "No such process" in checks["signal server"]["stderr"] or "No such" in checks["signal server"]["stderr"]
    assert checks["daemonize"]["stdout"] == "ok\n" and await wait_until_gone(daemon, 2.0) == []
    # what is not hidden stays readable, and the session's own directory is writable
    assert home_readable["stdout"] == "readable" and workdir["stdout"] == "kept\n"


async def test_what_the_operator_allows_works(
    tmp_path: Path, listener: tuple[int, list[bytes]], config_file: Any
) -> None:
    port, received = listener
    project = tmp_path / "project"
    project.mkdir()
    settings = load_settings(config_file(f'[local.sandbox]\nnetwork = true\nwritable_paths = ["{project}"]\n'))
    async with connect(settings) as client:
        network = await run(client, connect_command(port))
        write = await run(client, "echo edited > file.txt", cwd=str(project))
        read_only_cwd = await run(client, "echo x > nope", cwd=str(tmp_path))
    assert network["stdout"] == "connected\n" and received == [b"hello"]
    assert write["exit_code"] == 0 and (project / "file.txt").read_text() == "edited\n"
    assert read_only_cwd["exit_code"] != 0 and "Read-only" in read_only_cwd["stderr"]


@pytest.fixture(params=["cgroups", "rlimits"])
def limits_config(request: pytest.FixtureRequest, config_file: Any) -> Path:
    """Small limits, enforced with cgroups where the host lets us make them, and with rlimits and the
    supervisor's own watch where it does not."""
    cgroups = request.param == "cgroups"
    path: Path = config_file(
        f"[local.limits]\nmemory_mb = 100\ncpu_s = 2\nprocesses = 24\ncgroups = {str(cgroups).lower()}\n"
    )
    return path


async def test_each_limit_ends_the_run_with_its_reason(limits_config: Path) -> None:
    hog = f"{PYTHON} -c \"a = bytearray(400 * 1024 * 1024); print('allocated')\""
    spin = "while :; do :; done"
    many = f"for i in $(seq 60); do sleep {marker()} & done; wait"
    async with connect(load_settings(limits_config)) as client:
        memory = await run(client, hog, timeout_s=30)
        cpu = await run(client, spin, timeout_s=30)
        processes = await run(client, many, timeout_s=30)
        after = await run(client, "echo still fine")
    assert (memory["state"], memory.get("message") and "memory_mb" in memory["message"]) == ("failed", True), memory
    assert "allocated" not in memory["stdout"]
    assert cpu["state"] == "failed" and "cpu_s" in cpu["message"] and cpu["duration_ms"] < 20_000, cpu
    assert processes["state"] == "failed" and "local.limits.processes" in processes["message"], processes
    assert after["stdout"] == "still fine\n"
    for reason, result in (("memory_limit", memory), ("cpu_limit", cpu), ("process_limit", processes)):
        session = await session_record(limits_config, result["session_id"])
        assert session["raw"]["end_reason"] == reason


async def session_record(config: Path, session_id: str) -> dict[str, Any]:
    async with connect(load_settings(config)) as client:
        listed = structured(await client.call_tool("listSessions", {"limit": 50}))
    return next(s for s in listed["sessions"] if s["id"] == session_id)


async def test_a_sandboxed_session_outlives_its_server_and_stays_stoppable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_ON_EXIT", "keep")
    mark = marker()
    async with connect() as client:
        run_ = await run(client, f"sleep {mark}", wait=False)
    assert await appears(mark)
    async with connect() as client:
        stop = structured(await client.call_tool("stopSession", {"session_id": run_["session_id"]}))
    assert stop["stopped"] is True and await wait_until_gone(mark) == []


def test_the_bundled_bwrap_is_there() -> None:
    # The dependency puts a bwrap binary in the environment, so no system package is needed.
    path = bundled_bwrap()
    assert path is not None and os.access(path, os.X_OK)


# --- where the kernel refuses user namespaces ---------------------------------------------------------------
def refused_namespaces(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `runtimes-mcp ARGS` in a user namespace that may create no further one: what an
    AppArmor-restricted host or a container's seccomp profile does to unprivileged user namespaces."""
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" "$@"'
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", script, sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def unshare_can_refuse() -> bool:
    if shutil.which("unshare") is None:
        return False
    return refused_namespaces("--version").returncode == 0


@pytest.mark.skipif(not unshare_can_refuse(), reason="needs unshare(1) and user namespaces to set up the refusal")
def test_where_namespaces_are_refused_auto_runs_unsandboxed_and_says_so_and_required_refuses() -> None:
    auto = refused_namespaces("call", "execRun", '{"command": "cat /proc/1/comm"}')
    assert auto.returncode == 0, auto.stderr
    warnings = [line for line in auto.stderr.splitlines() if "sandbox" in line]
    assert len(warnings) == 1 and "off" in warnings[0] and "user namespaces" in warnings[0]
    assert "bwrap" not in auto.stdout  # PID 1 is the host's init (or unshare's sh), not a sandbox's
    required = refused_namespaces("call", "execRun", '{"command": "true"}', env={"RUNTIMES_MCP_SANDBOX": "required"})
    lines = required.stderr.strip().splitlines()
    assert required.returncode == 2 and len(lines) == 1
    assert "required" in lines[0] and "namespace" in lines[0]


async def test_the_servers_config_file_is_hidden(config_file: Any) -> None:
    path = config_file('xano_access_token = "secret-in-the-config-file"\n')
    async with connect(load_settings(path)) as client:
        result = await run(client, f"cat {path}; echo done")
    assert "secret-in-the-config-file" not in result["stdout"] and result["stdout"].endswith("done\n")


AGE_OF_THIS_PROCESS = (
    # seconds since this process started: the sandbox's shell execs the command, so it keeps the shell's start
    "read -r up _ < /proc/uptime; set -- $(cut -d')' -f2 /proc/$$/stat); echo \"$up $(getconf CLK_TCK) ${20}\""
)


def started_ahead_by(stdout: str) -> float:
    uptime, ticks, start = stdout.split()
    return float(uptime) - int(start) / int(ticks)


async def test_a_sandbox_made_ahead_takes_the_run_exactly_as_a_fresh_one_would(tmp_path: Path) -> None:
    """Idle supervisors start their next session's sandbox ahead of time. A run it takes behaves as one in a
    sandbox of its own: variables with quotes and newlines, a multi-line command, its exit code. What it cannot
    take (a cwd of the caller's, stdin, a variable name the shell cannot export) starts a fresh sandbox. Either
    way, no process is left behind once the server has gone."""
    tricky = {"QUOTED": 'it\'s "quoted" $HOME `x`', "LINES": "one\ntwo"}
    async with connect() as client:
        await client.call_tool("execRun", {"command": "true"})
        await anyio.sleep(0.5)  # the next sandbox is made while nothing runs
        ahead = structured(await client.call_tool("execRun", {"command": AGE_OF_THIS_PROCESS}))
        assert started_ahead_by(ahead["stdout"]) >= 0.3, ahead  # it was waiting for this command
        printed = structured(
            await client.call_tool(
                "execRun",
                {"command": 'printf "%s|%s|" "$QUOTED" "$LINES"\nif true; then\n  exit 4\nfi', "env": tricky},
            )
        )
        assert (printed["stdout"], printed["exit_code"]) == (f"{tricky['QUOTED']}|one\ntwo|", 4)
        await anyio.sleep(0.5)
        fresh = [
            structured(await client.call_tool("execRun", {"command": AGE_OF_THIS_PROCESS, **extra}))
            for extra in (
                {"cwd": str(tmp_path)},
                {"stdin": "x"},
                {"env": {"not-a-shell-name": "1"}},
            )
        ]
        for result in fresh:
            assert result["exit_code"] == 0 and started_ahead_by(result["stdout"]) < 0.3, result
        own = structured(await client.call_tool("execRun", {"command": "pwd; ls -A"}))
        data_dir = str(load_settings().data_dir)
        assert own["stdout"] == f"{data_dir}/sessions/{own['session_id']}/work\n"  # an empty directory of its own
    assert await wait_until_gone("read -r l <&3") == []  # idle supervisors leave with the server


# --- nothing an agent sends reaches a process outside the sandbox ---------------------------------------------
LOADER_HOOK = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void loaded(void) {
    int fd = open("MARK", O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) { write(fd, "loaded\n", 7); close(fd); }
}
unsigned int la_version(unsigned int version) { return version; }
"""


@pytest.fixture
def loader_hook(tmp_path: Path) -> tuple[Path, Path]:
    """A shared library that leaves a mark when any process loads it (the file is out of the sandbox's sight,
    in the host's /tmp: only a process outside the sandbox can load it, and leave the mark)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the library")
    mark, source, library = tmp_path / "loaded", tmp_path / "hook.c", tmp_path / "hook.so"
    source.write_text(LOADER_HOOK.replace("MARK", str(mark)))
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library, mark


async def test_the_agents_variables_are_set_inside_the_sandbox_only(
    loader_hook: tuple[Path, Path], tmp_path: Path
) -> None:
    library, mark = loader_hook
    steering = {"LD_PRELOAD": str(library), "LD_AUDIT": str(library), "LD_LIBRARY_PATH": str(tmp_path)}
    steering |= {"BASH_ENV": str(library), "ENV": str(library), "PYTHONSTARTUP": str(library), "GCONV_PATH": "/x"}
    long_command = "true " + "x" * 20_000 + "; echo $LD_PRELOAD"
    async with connect() as client:
        results = [
            await run(client, "echo $LD_PRELOAD", env=steering, **extra)
            for extra in ({}, {"stdin": "input"}, {"cwd": "/usr"}, {"cwd": str(tmp_path)}, {"wait": True})
        ]
        results.append(await run(client, long_command, env=steering))
        plain_env = await run(client, "env", env={"MY_VAR": "inside"})
    assert not mark.exists(), "a process outside the sandbox loaded the agent's library"
    for result in results:
        assert result["stdout"] == f"{library}\n", result  # set, inside
    assert "MY_VAR=inside" in plain_env["stdout"].splitlines()


async def test_bubblewrap_runs_with_an_empty_environment_and_no_variable_on_its_command_line() -> None:
    mark = marker()
    async with connect() as client:
        await run(client, f"sleep {mark}", wait=False, env={"AGENT_SECRET": "agent-secret-value"}, stdin="x")
        assert await appears(mark)
        bwraps = [pid for pid in _descendants_running("bwrap") if mark.encode() in _cmdline(pid)]
        assert bwraps, "bubblewrap's processes run on the host"
        for pid in bwraps:
            assert b"agent-secret-value" not in _cmdline(pid)
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"agent-secret-value" not in environ and b"AGENT_SECRET" not in environ
        stopped = structured(await client.call_tool("listSessions", {"status": "running"}))["sessions"]
        for session in stopped:
            await client.call_tool("stopSession", {"session_id": session["id"]})
    assert await wait_until_gone(mark) == []


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _descendants_running(name: str) -> list[int]:
    from providers.local import supervisor

    own = supervisor.descendants(os.getpid())
    return [pid for pid in own if Path(_cmdline(pid).split(b"\0")[0].decode()).name == name]
