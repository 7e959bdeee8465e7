"""The local sandbox, tried from inside real sessions: every escape must fail, every limit must end the run with
its reason, and what the operator allows must work. Where the kernel refuses namespaces the server says so."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
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
from providers.local.sandbox import ROOT_ONLY_PATHS, bundled_bwrap, find_bwrap
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
        home_hidden = await run(client, "cat ~/notes.txt")
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
    # the home is hidden as a whole; the session's own directory is writable
    assert home_hidden["exit_code"] != 0 and workdir["stdout"] == "kept\n"


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
        read_only_cwd = await run(client, "echo x > nope", cwd="/usr")
        private = await client.call_tool("execRun", {"command": "ls", "cwd": str(tmp_path)})
    assert network["stdout"] == "connected\n" and received == [b"hello"]
    assert write["exit_code"] == 0 and (project / "file.txt").read_text() == "edited\n"
    assert read_only_cwd["exit_code"] != 0 and "Read-only" in read_only_cwd["stderr"]
    # the host's /tmp is not bound in (its sockets would come with it): a cwd there is refused
    assert private.is_error and "private" in private.content[0].text


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


async def session_record(config: Path | None, session_id: str, settings: Any = None) -> dict[str, Any]:
    async with connect(settings or load_settings(config)) as client:
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
    warnings = [line for line in auto.stderr.splitlines() if "sandbox" in line and "run_as" not in line]
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
            for extra in ({}, {"stdin": "input"}, {"cwd": "/usr"}, {"cwd": "/"}, {"wait": True})
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
    from providers.local.supervisor import records as supervisor

    own = supervisor.descendants(os.getpid())
    return [pid for pid in own if Path(_cmdline(pid).split(b"\0")[0].decode()).name == name]


# --- the home directory: hidden but for its toolchains and what the operator shows --------------------------
HOME_SECRETS = {
    ".claude/.credentials.json": "claude-credential",
    ".config/anthropic/key": "anthropic-key",
    ".m2/settings.xml": "maven-password",
    ".env": "dotenv-secret",
    "notes/todo.txt": "private-notes",
    ".cargo/credentials.toml": "cargo-token",  # inside a toolchain directory that is shown
}


@pytest.fixture
def rich_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    for relative, secret in HOME_SECRETS.items():
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_text(secret)
    for tool in (".pyenv/version", ".cargo/bin/tool", ".local/bin/tool", "shown/readme"):
        (home / tool).parent.mkdir(parents=True, exist_ok=True)
        (home / tool).write_text(f"tool {tool}")
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server's runs could read what only root may read")
async def test_what_only_root_may_read_is_hidden_from_a_root_servers_runs() -> None:
    files = [p for p in ROOT_ONLY_PATHS if os.path.isfile(p) and os.path.getsize(p) > 0]
    folders = [p for p in ROOT_ONLY_PATHS if os.path.isdir(p) and os.listdir(p)]
    assert files and folders  # this host has some of them (/etc/shadow at least)
    async with connect() as client:
        read = await run(client, " ; ".join([*(f"cat {p}" for p in files), *(f"ls -A {p}" for p in folders)]))
    assert read["stdout"] == "", read


async def test_the_home_is_hidden_but_for_toolchains_and_readable_paths(rich_home: Path, config_file: Any) -> None:
    shown = rich_home / "shown"
    settings = load_settings(config_file(f'[local.sandbox]\nreadable_paths = ["{shown}"]\n'))
    async with connect(settings) as client:
        reads = {rel: await run(client, f"cat ~/{rel}") for rel in HOME_SECRETS}
        every = await run(client, "grep -rIh . ~ 2>/dev/null; true")
        tools = await run(client, "cat ~/.pyenv/version ~/.cargo/bin/tool ~/.local/bin/tool ~/shown/readme")
        scratch = await run(client, "echo made > ~/scratch && cat ~/scratch && ls -A ~")
        in_readable = await run(client, "ls", cwd=str(shown))
        refused = await client.call_tool("execRun", {"command": "ls", "cwd": str(rich_home / "notes")})
    for relative, secret in HOME_SECRETS.items():
        assert secret not in reads[relative]["stdout"], relative
        assert secret not in every["stdout"], relative
    assert tools["exit_code"] == 0 and tools["stdout"].count("tool ") == 4, tools
    assert scratch["stdout"].startswith("made\n") and not (rich_home / "scratch").exists()  # private, and writable
    assert in_readable["stdout"].split() == ["readme"]
    assert refused.is_error and "readable_paths" in refused.content[0].text


async def test_credentials_stay_hidden_when_the_operator_shows_the_whole_home(
    rich_home: Path, config_file: Any
) -> None:
    settings = load_settings(config_file(f'[local.sandbox]\nreadable_paths = ["{rich_home}"]\n'))
    async with connect(settings) as client:
        every = await run(client, "grep -rIh . ~ 2>/dev/null; true")
    assert "private-notes" in every["stdout"]  # shown, as asked
    for relative, secret in HOME_SECRETS.items():
        if not relative.startswith("notes/"):
            assert secret not in every["stdout"], relative


async def test_a_cwd_that_holds_hidden_paths_shows_them_hidden(
    rich_home: Path, tmp_path: Path, config_file: Any
) -> None:
    """The operator shows a directory that holds the data directory and the home: both stay hidden in it."""
    settings = load_settings(config_file(f'[local.sandbox]\nwritable_paths = ["{tmp_path}"]\n'))
    data = settings.data_dir
    async with connect(settings) as client:
        (data / "planted.txt").write_text("in the data directory")
        command = f"cat data/planted.txt; ls -A data home; cat home/.env; cat {data}/planted.txt"
        above = await run(client, command, cwd=str(tmp_path))
    assert "in the data directory" not in above["stdout"] and "dotenv-secret" not in above["stdout"], above
    assert above["exit_code"] != 0


async def test_a_cwd_swapped_while_it_is_checked_never_shows_what_it_was_swapped_to(
    tmp_path: Path, config_file: Any
) -> None:
    """A symlink flipped between an ordinary directory and the data directory while runs are started with it
    as their cwd: each run gets the directory that was opened and judged, or is refused; never the data."""
    settings = load_settings(config_file(f'[local.sandbox]\nwritable_paths = ["{tmp_path}"]\n'))
    data = settings.data_dir
    ordinary = tmp_path / "ordinary"
    ordinary.mkdir()
    (ordinary / "ordinary.txt").write_text("ordinary")
    link = tmp_path / "link"
    link.symlink_to(ordinary)
    stop = threading.Event()

    def flip() -> None:
        spare = tmp_path / "link.new"
        while not stop.is_set():
            for target in (data, ordinary):
                with contextlib.suppress(FileNotFoundError):
                    spare.unlink()
                spare.symlink_to(target)
                spare.replace(link)

    flipper = threading.Thread(target=flip, daemon=True)
    async with connect(settings) as client:
        (data / "planted.txt").write_text("in the data directory")
        flipper.start()
        try:
            results = [
                await client.call_tool("execRun", {"command": "ls -A; cat planted.txt", "cwd": str(link)})
                for _ in range(60)
            ]
        finally:
            stop.set()
            flipper.join()
    ran = [structured(r) for r in results if not r.is_error]
    refused = [r for r in results if r.is_error]
    assert ran and all("ordinary.txt" in r["stdout"] and "in the data directory" not in r["stdout"] for r in ran)
    assert all("hidden from sandboxed commands" in r.content[0].text for r in refused)


# --- disk: what a run writes is bounded while it runs --------------------------------------------------------
async def test_a_run_that_fills_its_directory_is_ended_with_the_disk_limit(config_file: Any) -> None:
    # 1 MiB files, one every 10 ms (about 100 MB/s): the cap is 4 MiB (local.max_data_mb bounds disk_mb)
    settings = load_settings(config_file("[local]\nmax_data_mb = 4\n"))
    writer = "i=0; while :; do i=$((i+1)); head -c 1048576 /dev/zero > f$i; echo $i; sleep 0.01; done"
    async with connect(settings) as client:
        result = await run(client, writer, timeout_s=60)
    session = await session_record(None, result["session_id"], settings)
    written_mib = int(result["stdout"].split()[-1])  # it says each file it has written
    assert (
        session["raw"]["end_reason"] == "disk_limit" and "over its 4 MiB (local.limits.disk_mb)" in result["message"]
    ), result
    assert result["state"] == "failed" and written_mib <= 4 + 20, written_mib


async def test_private_tmp_and_shm_are_bounded_and_filling_them_never_loses_the_session(config_file: Any) -> None:
    settings = load_settings(config_file("[local.limits]\ntmp_mb = 8\nmemory_mb = 64\n"))
    async with connect(settings) as client:
        tmp = await run(client, "head -c 100000000 /dev/zero > /tmp/x; s=$?; du -k /tmp/x; exit $s", timeout_s=30)
        shm = await run(
            client, "head -c 100000000 /dev/zero > /dev/shm/x; s=$?; du -k /dev/shm/x; exit $s", timeout_s=30
        )
        home = await run(client, "head -c 100000000 /dev/zero > ~/x; s=$?; du -k ~/x; exit $s", timeout_s=30)
        after = await run(client, "echo fine")
    for result in (tmp, shm, home):
        assert result["state"] == "failed" and "No space left" in result["stderr"], result
        assert int(result["stdout"].split()[0]) <= 8 * 1024, result
    assert after["stdout"] == "fine\n"


async def test_a_run_that_fills_its_memory_with_shm_is_ended_not_its_supervisor(config_file: Any) -> None:
    settings = load_settings(config_file("[local.limits]\ntmp_mb = 512\nmemory_mb = 64\n"))
    async with connect(settings) as client:
        result = await run(client, "head -c 300000000 /dev/zero > /dev/shm/x; sleep 1", timeout_s=30)
    session = await session_record(None, result["session_id"], settings)
    if session["raw"]["end_reason"] == "exit":  # no cgroup here: the rlimits do not count tmpfs pages
        pytest.skip("this host makes no memory cgroup for a run")
    assert (result["state"], session["raw"]["end_reason"]) == ("failed", "memory_limit"), session


async def command_pid(mark: str, name: str) -> int:
    """The pid of our process called `name` whose command line holds `mark`, once it has exec'd."""
    for _ in range(500):
        for pid in await appears(mark):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    return pid
        await anyio.sleep(0.01)
    raise AssertionError(f"no {name} process with {mark}")


def cgroups_of(pid: int) -> dict[str, str]:
    """controller -> cgroup path of a process."""
    found = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            found[controller] = path
    return found


async def test_the_supervisor_is_never_in_its_runs_cgroup_and_none_is_left_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_ON_EXIT", "keep")
    mark = marker()
    data = load_settings().data_dir
    async with connect() as client:
        started = await run(client, f"sleep {mark}", wait=False)
        pid = await command_pid(mark, "sleep")
        record = json.loads((data / "sessions" / started["session_id"] / "job.json").read_text())
        if not record.get("cgroup"):
            pytest.skip("this host makes no cgroup for a run")
        supervisor_pid = int(record["supervisor"].split(":")[1])
        run_groups, own_groups = cgroups_of(pid), cgroups_of(supervisor_pid)
        assert "runtimes-mcp-" in run_groups["memory"] and "runtimes-mcp-" not in own_groups["memory"]
        assert all(Path(path).is_dir() for path in record["cgroup"])
        os.kill(supervisor_pid, signal.SIGKILL)  # it cannot remove its cgroup now
    async with connect() as client:  # the next server finds the session lost, and removes what was left
        listed = structured(await client.call_tool("listSessions", {}))
    assert listed["sessions"][0]["status"] == "lost"
    assert await wait_until_gone(mark) == []
    assert not any(Path(path).exists() for path in record["cgroup"])


async def test_a_run_the_sandbox_stopped_says_which_setting_would_allow_it() -> None:
    async with connect() as client:
        network = await run(client, f"{PYTHON} -c \"import socket; socket.getaddrinfo('example.com', 443)\"")
        read_only = await run(client, "touch /usr/planted-by-a-test")
        loopback = await run(client, f"{PYTHON} -c \"import socket; socket.create_connection(('127.0.0.1', 9))\"")
        fine = await run(client, "exit 3")
    assert 'network = "allowlist"' in network["message"] and "local.sandbox.network" in network["message"]
    assert "127.0.0.1 and localhost in a run are the run's own" in loopback["message"], loopback
    assert "writable_paths" in read_only["message"], read_only
    assert "message" not in fine  # a run that failed for its own reasons gets no hint


STOPPER = """
import contextlib, os, signal, subprocess, sys, time
from providers.local.supervisor.reaping import signal_all
from providers.local.supervisor.records import children
# As a supervisor sees a sandbox whose command has not started: bubblewrap's monitor and its init only, and
# with a network the relay below them (argv[1] == "relay")
wrapped = sys.argv[1] == "relay"
inner = 'sh -c "sleep 1000; :"; :' if wrapped else "sleep 1000; :"
run = subprocess.Popen(["sh", "-c", inner], start_new_session=True)
while not children(run.pid) or (wrapped and not children(children(run.pid)[0])):
    time.sleep(0.005)
signal_all(run.pid, True, signal.SIGTERM, wrapped=wrapped)
try:
    print(run.wait(timeout=30))
finally:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.pid, signal.SIGKILL)  # what a failed check left
"""


def test_a_stop_before_the_sandboxed_command_starts_ends_the_sandbox_at_once() -> None:
    # A SIGTERM spares bubblewrap's two processes; with nothing else there yet, it reached no one and the
    # command, started a moment later, ran until the SIGKILL after the grace. Now it is SIGKILL at once.
    root = Path(__file__).resolve().parent.parent
    for layers in ("bubblewrap", "relay"):
        done = subprocess.run(
            [sys.executable, "-c", STOPPER, layers], capture_output=True, text=True, timeout=120, cwd=root
        )
        assert done.returncode == 0 and done.stdout.strip() == str(-signal.SIGKILL), (layers, done)
