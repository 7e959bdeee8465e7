"""`--workers N`: several server processes on one port share the load and the state, and stop together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
import pytest

from bench.load_http import free_port
from tests.conftest import structured
from tests.fakes import Reply, fake_api
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


def worker_pids(parent: int) -> set[int]:
    """The live worker processes of a `--workers` parent (its children; zombies are not live)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        state, ppid = stat[stat.rfind(b")") + 2 :].split()[:2]
        if int(ppid) == parent and state != b"Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie has ended); a zombie that is this process's child (the suite is a subreaper) is reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    if stat[stat.rfind(b")") + 2 :].split()[0] in (b"Z", b"X"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def test_workers_end_soon_after_their_parent_is_killed_with_sigkill(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    parent = start_workers(port, "--stateless", "--json-response", "--workers", "2")
    try:
        wait_for(lambda: len(worker_pids(parent.pid)) == 2 and health_pid(base) is not None)
        with ThreadPoolExecutor(8) as pool:
            serving = set(pool.map(lambda _: health_pid(base), range(100))) - {None}
        workers = worker_pids(parent.pid)
        assert serving == workers, (serving, workers)
        killed = time.monotonic()
        parent.kill()
        parent.wait(10)
        deadline = killed + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.005)
        took = time.monotonic() - killed
        assert not any(alive(pid) for pid in workers), f"workers still serving {took:.1f} s after the parent's SIGKILL"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    print(f"SIGKILL of the parent to its last worker's exit: {took * 1000:.0f} ms")
    assert health_pid(base) is None  # nobody answers on the port any more
    assert took < 10, took


PARENT_DIES_FIRST = """
import os, subprocess, sys
from server.parent_watch import PARENT_ENV, parent_spec
read_fd, write_fd = os.pipe()
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(1.5); from server.parent_watch import follow_parent; "
     "follow_parent(); time.sleep(60)"],
    env={**os.environ, PARENT_ENV: parent_spec(read_fd, 5)}, pass_fds=(read_fd,),
)
print(child.pid, flush=True)
"""


@pytest.mark.parametrize("watch_first", [False, True], ids=["parent-gone-before-watching", "parent-gone-after"])
def test_a_worker_ends_when_its_parent_died_before_or_after_it_asked_to_be_told(watch_first: bool) -> None:
    script = PARENT_DIES_FIRST if not watch_first else PARENT_DIES_FIRST.replace("time.sleep(1.5); ", "")
    if watch_first:  # the parent waits until the child watches, then dies: only the pipe tells it
        script = script.replace(
            "print(child.pid, flush=True)", "print(child.pid, flush=True); import time; time.sleep(1.5)"
        )
    parent = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30)
    child = int(parent.stdout.strip())
    deadline = time.monotonic() + 15
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(child), "the child outlived its parent"


def test_workers_import_only_the_installed_package_and_get_a_fixed_environment(tmp_path: Path) -> None:
    """An `mcp.py` or a `server/` in the directory the parent starts in is never imported (an `mcp.py` there made
    every worker crash-loop); the parent's other variables stay with it, while settings and credentials reach
    the workers."""
    hostile = tmp_path / "cwd"
    (hostile / "server").mkdir(parents=True)
    marker = tmp_path / "host-code-ran"
    (hostile / "mcp.py").write_text("raise SystemExit('hijacked: mcp.py from the working directory')\n")
    (hostile / "server" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (hostile / "server" / "cli.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with fake_api() as api:
        api.routes[("GET", "/sprites/v1/sprites/box/exec")] = Reply(body={"sessions": [{"id": 7}]})
        env = {
            **os.environ,
            "RUNTIMES_MCP_HTTP_TOKEN": TOKEN,
            "RUNTIMES_MCP_TOOLSETS": "events",
            "SPRITES_TOKEN": "tok-sprites",
            "SPRITES_BASE_URL": api.url("/sprites"),
            "UNRELATED_SECRET": "parent-only",
            "PYTHONSTARTUP": str(hostile / "mcp.py"),
        }
        command = [str(Path(sys.executable).parent / "runtimes-mcp"), "--transport", "http", "--port", str(port)]
        parent = subprocess.Popen(
            [*command, "--stateless", "--workers", "2"], cwd=hostile, env=env, stderr=subprocess.PIPE
        )
        try:
            wait_for(lambda: len(worker_pids(parent.pid)) == 2 and health_pid(base) is not None)
            environments = [Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") for pid in worker_pids(parent.pid)]

            async def calls() -> tuple[list[str], dict[str, object]]:
                async with authed_client(base) as client:
                    names = [t.name for t in (await client.list_tools()).tools]
                    listed = structured(
                        await client.call_tool("listSessions", {"provider": "sprites", "sprite": "box"})
                    )
                return names, listed

            names, listed = anyio.run(calls)
        finally:
            parent.send_signal(signal.SIGTERM)
            parent.wait(30)
    stderr = parent.stderr.read().decode() if parent.stderr else ""
    assert not marker.exists() and "hijacked" not in stderr, stderr
    assert "getEvents" in names and listed["sessions"][0]["id"] == "7"
    for environ in environments:
        names_set = {item.split(b"=", 1)[0].decode() for item in environ if item}
        assert {"RUNTIMES_MCP_DATA_DIR", "RUNTIMES_MCP_TOOLSETS", "SPRITES_TOKEN", "PATH", "HOME"} <= names_set
        assert not names_set & {"UNRELATED_SECRET", "PYTHONSTARTUP", "PYTHONPATH"}, names_set
        assert not any(name.startswith(("LD_", "PYTHON")) for name in names_set), names_set


def test_a_crash_loop_backs_off_and_gives_up_with_one_line_naming_the_cause(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    command = [sys.executable, "-m", "server.cli", "--transport", "http", "--port", str(free_port())]
    env = {**os.environ, "RUNTIMES_MCP_HTTP_TOKEN": TOKEN, "RUNTIMES_MCP_DATA_DIR": str(not_a_directory)}
    done = subprocess.run(
        [*command, "--stateless", "--workers", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert lines[-1].startswith("runtimes-mcp: giving up: workers failed 5 times in a row"), lines[-1]
    assert "cannot be used" in lines[-1] and str(not_a_directory) in lines[-1]
    waits = [line.rsplit(" in ", 1)[1] for line in lines if "starting another in" in line]
    assert waits == ["0.25 s", "0.5 s", "1 s", "2 s"], lines
