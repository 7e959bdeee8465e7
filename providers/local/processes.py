"""The environment a local command gets, and ending what a lost session left behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

import anyio

from providers.local.supervisor.records import stat_fields

# The child gets these from the server's environment, and nothing else of it.
BASE_ENV_DEFAULTS = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
POLL_S = 0.02


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: os.environ.get(name, default) for name, default in BASE_ENV_DEFAULTS.items()}
    env.update(extra or {})
    return env


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def group_members(pgid: int) -> dict[int, float]:
    """Live (non-zombie) members of a process group -> their start time (unix seconds), from /proc."""
    members: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    boot: float | None = None
    for name in os.listdir("/proc"):
        fields = stat_fields(int(name)) if name.isdigit() else []
        if len(fields) > 19 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            boot = _boot_time() if boot is None else boot
            members[int(name)] = boot + int(fields[19]) / ticks
    return members


async def end_leftovers(pgid: int, started_at: float, grace_s: float) -> bool:
    """End what is left of a lost session's process group (its supervisor died, e.g. killed with it).
    Only members that started at or after the session did are ours: an older process holding a reused
    pid belongs to someone else and is left alone. True when something was ended."""
    members = [pid for pid, start in group_members(pgid).items() if start >= started_at - 1.0]
    if not members:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in members:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(pid in group_members(pgid) for pid in members):
            await anyio.sleep(POLL_S)
    return True
