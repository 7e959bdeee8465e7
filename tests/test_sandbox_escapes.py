"""Escapes and crashes an adversarial review found in the sandbox and the supervisors, each tried again here:
descriptors that reach a command, host directories bound in with their sockets, trees no walk could
measure or remove, limits a run could dodge or turn against its supervisor, a zygote that was not replaced."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest

from providers.local.sandbox import TOOLCHAIN_PATHS
from providers.local.spawner import IDLE_SUPERVISORS
from providers.local.supervisor import trees
from providers.local.supervisor.trees import TooMany, remove_tree, tree_size
from server.config import load_settings
from tests.conftest import appears, connect, marker, wait_until_gone
from tests.test_sandbox import run, sandbox_works

pytestmark = pytest.mark.skipif(not sandbox_works(), reason="this machine refuses unprivileged user namespaces")

DEEP = 1200  # deeper than Python's recursion limit, and past PATH_MAX as a path


def make_deep(top: Path, levels: int = DEEP) -> None:
    """A tree `levels` deep with a 64 KiB file at the bottom, made with relative steps (its path is too long to
    use whole)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d" * 10, dir_fd=fd)
            below = os.open("d" * 10, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
        leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
        os.write(leaf, b"x" * 65536)
        os.close(leaf)
    finally:
        os.close(fd)


def test_a_tree_of_any_depth_is_measured_and_removed(tmp_path: Path) -> None:
    (tmp_path / "deep").mkdir()
    make_deep(tmp_path / "deep")
    size, entries = tree_size(str(tmp_path / "deep"))
    assert entries == DEEP + 1 and size >= 65536
    remove_tree(str(tmp_path / "deep"))
    assert not (tmp_path / "deep").exists()


def test_a_directory_moved_up_during_a_removal_never_leads_it_out_of_the_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run working in a workspace being deleted moves the directory the walk is in three levels up: ".." then
    leads above the tree, where the names the walk still has to visit may be the host's own."""
    top = tmp_path / "host" / "ws"
    chain = top / "L0" / "L1" / "L2" / "deep"
    chain.mkdir(parents=True)
    for i in range(20):
        (top / "L0" / f"p{i:02}").mkdir()  # still to visit when the walk is at the bottom, whatever the order
        (tmp_path / f"p{i:02}").mkdir()
        (tmp_path / f"p{i:02}" / "precious").write_text("the host's")
    for i in range(10):
        (chain / f"f{i}").write_bytes(b"x")
    deep = os.stat(chain)
    scan = trees._scan
    moved = []

    def scan_then_move(directory: int, on_entry: Any, remove: bool) -> list[str]:
        found = scan(directory, on_entry, remove)
        here = os.fstat(directory)
        if not moved and (here.st_dev, here.st_ino) == (deep.st_dev, deep.st_ino):
            os.rename(chain, top / "deep-moved")  # as the run does, the moment the walk is in it
            moved.append(True)
        return found

    monkeypatch.setattr(trees, "_scan", scan_then_move)
    removed = remove_tree(str(top))
    assert moved and all((tmp_path / f"p{i:02}" / "precious").exists() for i in range(20))
    assert removed and not top.exists()
    # measured the same way, it counts the tree, not what is above it
    chain.mkdir(parents=True)
    (chain / "f").write_bytes(b"x" * 100_000)
    deep = os.stat(chain)  # a new directory: its inode number is the old one's only when the kernel reuses it
    moved.clear()
    size, _ = tree_size(str(top))
    assert moved and 100_000 <= size < 1_000_000


def test_a_tree_that_moves_under_every_measure_is_not_taken_for_a_small_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that moves a directory each time the measure is in it (it can watch for that) would choose what is
    counted: the disk limit's measure says so instead of a size, and ends the run."""
    top = tmp_path / "ws"
    (top / "T" / "C").mkdir(parents=True)
    (top / "U").mkdir()
    (top / "T" / "C" / "f").write_bytes(b"x" * 4096)
    (top / "big").write_bytes(b"x" * 1_000_000)
    scan = trees._scan

    def scan_then_move(directory: int, on_entry: Any, remove: bool) -> list[str]:
        found = scan(directory, on_entry, remove)
        here = os.fstat(directory)
        for parent, other in ((top / "T", top / "U"), (top / "U", top / "T")):
            moving = parent / "C"
            if moving.exists() and (here.st_dev, here.st_ino) == (os.stat(moving).st_dev, os.stat(moving).st_ino):
                os.rename(moving, other / "C")
                break
        return found

    monkeypatch.setattr(trees, "_scan", scan_then_move)
    with pytest.raises(trees.Moved) as moved:
        tree_size(str(top))
    assert moved.value.counted[1] >= 3  # what the walks saw, for those that only report a size
    assert trees.tree_bytes(str(top)) > 0
    monkeypatch.setattr(trees, "_scan", scan)
    assert remove_tree(str(top)) and not top.exists()


def as_unprivileged_server(body: str) -> Any:
    """What `body` prints as JSON, run as a server that is not root would run it (as nobody when this is root),
    with the tree walk imported (`trees`) and `top` a fresh directory that user owns."""
    script = (
        "import json, os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
        "from providers.local.supervisor import trees\n"
        "if os.geteuid() == 0:  # as a server that is not root (after the imports: /root is out of its reach)\n"
        "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "top = sys.argv[1]\n" + body
    )
    top = tempfile.mkdtemp(prefix="runtimes-mcp-test-")  # not below pytest's directory: the user must reach it
    try:
        if os.geteuid() == 0:
            os.chown(top, 65534, 65534)
        done = subprocess.run([sys.executable, "-I", "-c", script, top], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", top], capture_output=True)  # what the script left unreadable
        shutil.rmtree(top, ignore_errors=True)


def test_a_directory_a_run_made_unreadable_is_measured_and_removed_all_the_same() -> None:
    """A run may leave a directory its owner can write into but not list (mode 300). A server that is not root
    (its runs' files are its own) opens it up, rather than miss what it holds in the limits and in removal."""
    result = as_unprivileged_server(
        "os.makedirs(os.path.join(top, 'h', 'inner'))\n"
        "with open(os.path.join(top, 'h', 'inner', 'f'), 'wb') as f: f.write(b'x' * 1_000_000)\n"
        "os.chmod(os.path.join(top, 'h', 'inner'), 0o100); os.chmod(os.path.join(top, 'h'), 0o300)\n"
        "size = trees.tree_size(top)[0]\n"
        "mode = oct(os.stat(os.path.join(top, 'h')).st_mode & 0o777)\n"
        "removed = trees.remove_tree(top)\n"
        "print(json.dumps({'size': size, 'mode': mode, 'removed': removed, 'left': os.path.lexists(top)}))\n"
    )
    assert result["size"] >= 1_000_000 and result["removed"] and not result["left"], result
    assert result["mode"] == "0o300", result  # measured only (as while the run runs), it is given back its mode


def test_a_measure_that_finds_the_tree_moved_gives_no_directory_another_ones_mode() -> None:
    """The measure opens up a directory the run made unreadable and gives its mode back as it leaves it; when the
    run moves a directory below it meanwhile, ".." leads elsewhere, and that other directory must not get it."""
    result = as_unprivileged_server(
        "os.makedirs(os.path.join(top, 'h', 'd')); os.makedirs(os.path.join(top, 'x'))\n"
        "os.chmod(os.path.join(top, 'x'), 0o755); os.chmod(os.path.join(top, 'h'), 0o300)\n"
        "deep, scan, moved = os.stat(os.path.join(top, 'h', 'd')), trees._scan, []\n"
        "def scan_then_move(directory, on_entry, remove):\n"
        "    found = scan(directory, on_entry, remove)\n"
        "    here = os.fstat(directory)\n"
        "    if not moved and (here.st_dev, here.st_ino) == (deep.st_dev, deep.st_ino):\n"
        "        os.rename(os.path.join(top, 'h', 'd'), os.path.join(top, 'x', 'd')); moved.append(1)\n"
        "    return found\n"
        "trees._scan = scan_then_move\n"
        "trees.tree_size(top)\n"
        "print(json.dumps({'moved': bool(moved), 'x': oct(os.stat(os.path.join(top, 'x')).st_mode & 0o777)}))\n"
    )
    assert result == {"moved": True, "x": "0o755"}, result


def test_hard_links_count_once_and_links_are_not_followed(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "big").write_bytes(b"x" * 1_000_000)
    for i in range(20):
        os.link(tmp_path / "t" / "big", tmp_path / "t" / f"link{i}")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "huge").write_bytes(b"y" * 3_000_000)
    (tmp_path / "t" / "away").symlink_to(tmp_path / "outside")
    size, _ = tree_size(str(tmp_path / "t"))
    assert 1_000_000 <= size < 1_500_000
    with pytest.raises(TooMany):
        tree_size(str(tmp_path / "t"), most=5)
    remove_tree(str(tmp_path / "t"))
    assert (tmp_path / "outside" / "huge").exists()  # a link is removed, never what it points to


async def test_a_command_holds_only_its_three_descriptors(config_file: Any, tmp_path: Path) -> None:
    launcher = marker()
    (tmp_path / "shown").mkdir()
    body = f'[local.sandbox]\nwritable_paths = ["{tmp_path / "shown"}"]\n'
    body += f'[local.launchers.fds]\ncommand = "ls -l /proc/self/fd > {tmp_path / "shown"}/fds; sleep {launcher}"\n'
    settings = load_settings(config_file(body))
    async with connect(settings) as client:
        results = [
            await run(client, "ls /proc/$$/fd", **extra)
            for extra in ({}, {"cwd": "/usr"}, {"cwd": str(tmp_path / "shown")}, {"stdin": "x"})
        ]
        assert await appears(launcher)
    for extra, result in zip(({}, "cwd /usr", "cwd shown", "stdin"), results, strict=True):
        assert result["stdout"].split() == ["0", "1", "2"], (extra, result)
    launcher_fds = (tmp_path / "shown" / "fds").read_text()  # ls's own: 0, 1, 2 and the directory it reads
    assert ".lock" not in launcher_fds and len(launcher_fds.splitlines()) == 5, launcher_fds
    assert await wait_until_gone(launcher) == []


async def test_a_cwd_in_the_hosts_tmp_is_refused_so_its_sockets_stay_out_of_reach(tmp_path: Path) -> None:
    where = tmp_path / "with-a-socket"
    where.mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(where / "agent.sock"))
    listener.listen()
    try:
        async with connect() as client:
            for cwd in (where, "/tmp", "/dev/shm", "/run"):
                result = await client.call_tool("execRun", {"command": "ls", "cwd": str(cwd)})
                assert result.is_error and "private" in result.content[0].text, cwd
            inside = await run(client, f"ls {where}")
        assert inside["exit_code"] != 0  # the sandbox's own /tmp has no such directory
    finally:
        listener.close()


async def test_hidden_cwds_say_the_same_whether_they_exist_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    async with connect() as client:
        there = (await client.call_tool("execRun", {"command": "true", "cwd": str(home / ".aws")})).content[0].text
        absent = (await client.call_tool("execRun", {"command": "true", "cwd": str(home / ".gcp")})).content[0].text
    assert "hidden" in there and there.replace(".aws", "X") == absent.replace(".gcp", "X")


async def test_dev_is_read_only_and_run_is_bounded(config_file: Any) -> None:
    settings = load_settings(config_file("[local.limits]\ntmp_mb = 8\n"))
    async with connect(settings) as client:
        dev = await run(client, "echo x > /dev/null && echo null-ok; touch /dev/planted")
        fill = await run(client, "head -c 50000000 /dev/zero > /run/x; du -k /run/x")
    assert dev["stdout"] == "null-ok\n" and "Read-only" in dev["stderr"]
    assert "No space left" in fill["stderr"] and int(fill["stdout"].split()[0]) <= 8 * 1024


async def test_credentials_made_after_start_linked_or_uvs_stay_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere-cargo"
    (home / ".local" / "share" / "uv").mkdir(parents=True)
    (home / ".local" / "share" / "uv" / "credentials").mkdir()
    (home / ".local" / "share" / "uv" / "credentials" / "credentials.toml").write_text("uv-token")
    elsewhere.mkdir()
    (elsewhere / "credentials.toml").write_text("cargo-token")
    (home / ".cargo").symlink_to(elsewhere)
    (home / ".pyenv").mkdir()
    monkeypatch.setenv("HOME", str(home))
    async with connect() as client:
        (home / ".pyenv" / ".netrc").write_text("not a credential location")
        (home / ".cargo" / "credentials").write_text("made-after-start")  # written after the server started
        every = await run(client, f"grep -rIh . ~ {elsewhere} 2>/dev/null; cat ~/.cargo/credentials; true")
    for secret in ("uv-token", "cargo-token", "made-after-start"):
        assert secret not in every["stdout"], secret


async def test_values_that_look_like_separators_or_are_huge_in_json_start_cleanly() -> None:
    with anyio.fail_after(60):  # a start that hangs on them fails here, not at the suite's timeout
        async with connect() as client:
            dashes = await run(client, 'printf "%s|%s" "$A" "$B"', env={"A": "--", "B": "--setenv"})
            emoji = await run(client, "echo " + "\U0001f600" * 16_000 + " | wc -c")
    assert dashes["stdout"] == "--|--setenv"
    assert emoji["exit_code"] == 0 and int(emoji["stdout"]) == 16_000 * 4 + 1


async def test_a_runs_cpu_and_memory_rlimits_are_its_own_not_its_supervisors(config_file: Any) -> None:
    settings = load_settings(config_file("[local.limits]\ncpu_s = 30\ncgroups = false\nmemory_mb = 256\n"))
    mark = marker()
    async with connect(settings) as client:
        started = await run(client, f"sleep {mark}", wait=False)
        assert await appears(mark)
        record = json.loads((settings.data_dir / "sessions" / started["session_id"] / "job.json").read_text())
        supervisor = int(record["supervisor"].split(":")[1])
        command = next(p for p in await appears(mark) if Path(f"/proc/{p}/comm").read_text().strip() == "sleep")
        own, runs = limits_of(supervisor), limits_of(command)
        await client.call_tool("stopSession", {"session_id": started["session_id"]})
    assert own["Max cpu time"] == "unlimited" and own["Max data size"] == "unlimited"
    assert runs["Max cpu time"] == "30" and runs["Max data size"] == str(256 * 1024 * 1024)
    assert await wait_until_gone(mark) == []


def limits_of(pid: int) -> dict[str, str]:
    """/proc/PID/limits: name -> soft limit."""
    found = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft = line[:26].strip(), line[26:].split()[0]
        found[name] = soft
    return found


async def test_a_killed_zygote_is_started_again() -> None:
    """More runs at once than there are idle supervisors need the zygote to fork more: a new one does."""
    mark = marker()
    many = IDLE_SUPERVISORS + 3
    async with connect() as client:
        await run(client, "true")
        killed, before = _zygotes(), set(_own_processes())
        assert len(killed) == 1
        os.kill(killed[0], signal.SIGKILL)
        started = [await run(client, f"sleep {mark}", wait=False) for _ in range(many)]
        sleeping = await appears(mark, at_least=many, within_s=60)
        replaced = [p for p in _zygotes() if p not in before]  # its orphaned supervisors come to us: not new
        for session in started:
            await client.call_tool("stopSession", {"session_id": session["session_id"]})
    assert all(s["state"] in ("running", "starting") for s in started), started
    assert len(sleeping) >= many and len(replaced) == 1
    assert await wait_until_gone(mark) == []


def _zygotes() -> list[int]:
    return [p for p in _own_processes() if b"zygote" in _cmdline(p) and _parent(p) == os.getpid()]


async def test_many_files_end_a_run_with_the_disk_limit(config_file: Any) -> None:
    settings = load_settings(config_file("[local.limits]\nfiles = 500\n"))
    async with connect(settings) as client:
        result = await run(client, "mkdir d && cd d && i=0; while :; do i=$((i+1)); : > f$i; done", timeout_s=60)
    assert result["state"] == "failed" and "local.limits.files" in result["message"], result


def _own_processes() -> list[int]:
    from providers.local.supervisor.records import descendants

    return descendants(os.getpid())


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _parent(pid: int) -> int:
    from providers.local.supervisor.records import stat_fields

    fields = stat_fields(pid)
    return int(fields[1]) if len(fields) > 1 else 0


@pytest.mark.parametrize("home", ["elsewhere", "/"])
async def test_the_accounts_own_home_stays_hidden_whatever_home_says(
    home: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Path(pwd.getpwuid(os.geteuid()).pw_dir).resolve()
    if account == Path("/") or not account.is_dir():
        pytest.skip("this user has no home of its own")
    monkeypatch.setenv("HOME", str(tmp_path) if home == "elsewhere" else "/")
    async with connect() as client:
        listing = await run(client, f"ls -A {account}")
        refused = await client.call_tool("execRun", {"command": "true", "cwd": str(account)})
    toolchains = {Path(rel).parts[0] for rel in TOOLCHAIN_PATHS}
    assert set(listing["stdout"].split()) <= toolchains, listing  # what it holds is not shown, toolchains aside
    assert refused.is_error and "hidden" in refused.content[0].text  # type: ignore[union-attr]
