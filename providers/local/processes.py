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


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in the group. Zombies are ignored: an init that
    reaps orphans slowly would otherwise keep a dead group 'alive'."""
    proc = Path("/proc")
    if not proc.is_dir():
        return _signal_group(pgid, 0)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


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
