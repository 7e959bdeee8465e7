"""Spawning a command in its own process group, and ending the whole group."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import Process

# The child gets these from the server's environment, and nothing else of it.
BASE_ENV_DEFAULTS = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
TERM_GRACE_S = 2.0


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: PATH, HOME, LANG, TMPDIR, plus what the caller asked for."""
    env = {name: os.environ.get(name, default) for name, default in BASE_ENV_DEFAULTS.items()}
    env.update(extra or {})
    return env


async def spawn_group(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: IO[Any] | int,
    stdout: IO[Any],
    stderr: IO[Any],
) -> Process:
    """Run `command` under /bin/sh in a new session, so its pid is also its process-group id."""
    return await anyio.open_process(
        ["/bin/sh", "-c", command],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=str(cwd),
        env=dict(env),
        start_new_session=True,
    )


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # the pgid was reused by someone else's group
        return False
    return True


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def group_members(pgid: int) -> dict[int, float]:
    """Live (non-zombie) members of a process group -> their start time (unix seconds), from /proc.
    Zombies are left out: an init that reaps orphans slowly would otherwise keep a dead group 'alive'."""
    members: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    boot: float | None = None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        # After the parenthesised command: state(0) ppid(1) pgrp(2) ... starttime(19)
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 19 and int(fields[2]) == pgid and fields[0] != b"Z":
            boot = _boot_time() if boot is None else boot
            members[int(entry.name)] = boot + int(fields[19]) / ticks
    return members


def group_alive(pgid: int) -> bool:
    if not Path("/proc").is_dir():
        return _signal_group(pgid, 0)
    return bool(group_members(pgid))


async def terminate_group(pgid: int, process: Process | None = None, grace_s: float = TERM_GRACE_S) -> None:
    """SIGTERM the whole group, wait up to `grace_s` for it to go, then SIGKILL whatever is left."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    with anyio.move_on_after(grace_s):
        if process is not None and process.returncode is None:
            await process.wait()
        while group_alive(pgid):  # noqa: ASYNC110 - the kernel offers no event for "group is empty"
            await anyio.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)
    if process is not None and process.returncode is None:
        with anyio.move_on_after(grace_s):
            await process.wait()
