"""Which server process owns a record, and whether it is still there.

An owner is named by its machine, boot, pid namespace, pid and start time, so that a reader on the same
machine (and in the same pid namespace) knows at once whether it has ended, a reused pid included. A reader
elsewhere cannot look: it goes by the owner's heartbeat instead (see Store.beat_call_tasks)."""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

from providers.local.supervisor.records import stat_fields


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


@functools.cache
def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "?"


def _start(pid: int) -> str | None:
    """The process's start time (clock ticks after boot), or None when it has ended (a zombie has)."""
    fields = stat_fields(pid)
    return None if len(fields) < 20 or fields[0] in (b"Z", b"X") else fields[19].decode()


def this_process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}/{_boot_id()}/{_pid_namespace()}/{pid}/{_start(pid)}"


def describe(owner: str) -> str:
    host, _, _, pid, _ = (owner.split("/") + ["?"] * 5)[:5]
    return f"pid {pid} on {host}"


def ended(owner: str) -> bool | None:
    """True when the owner has certainly ended, False when it certainly runs, None when this process cannot
    tell (another machine or pid namespace, or no /proc)."""
    parts = owner.split("/")
    if len(parts) != 5 or "?" in (_boot_id(), _pid_namespace()) or not parts[3].isdigit():
        return None
    _, boot, namespace, pid, start = parts
    if (boot, namespace) != (_boot_id(), _pid_namespace()):
        return None
    return _start(int(pid)) != start
