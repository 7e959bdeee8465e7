"""MCP tasks that are tool calls, each running in one server process, kept in the store where every server on the
same state (data directory or PostgreSQL) reads them (providers.services.CallTasks).

The process that runs a task is its owner, named by its machine, boot, pid namespace, pid and start time, so that
a reader on the same machine (and in the same pid namespace) knows at once whether it has ended, a reused pid
included. A reader elsewhere cannot look: it goes by the owner's heartbeat instead (see Store.beat_call_tasks)."""

from __future__ import annotations

import functools
import os
import socket
import time
from pathlib import Path
from typing import Any

from providers.local.store import Store
from providers.local.supervisor.records import stat_fields
from providers.local.tables import CallTaskRow
from providers.services import CallTaskRecord, caller

# A process on another machine running a task has stopped when its heartbeat (server.tasks.BEAT_S) has not been
# heard for this long; on this machine it is known at once.
SILENT_FOR_S = 15.0


class StoredCallTasks:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._owner = this_process()

    async def record(self, task_id: str, status: str, created_at: float, expires_at: float, view: Any) -> None:
        now = time.time()
        row = CallTaskRow(
            task_id, status, created_at, now, expires_at, self._owner, now, view, principal=caller().owner
        )
        await self._store.save_call_task(row)

    async def update(self, task_id: str, status: str, view: Any) -> None:
        await self._store.update_call_task(task_id, status, view, time.time())

    async def read(self, task_id: str) -> CallTaskRecord | None:
        """The caller's task (anyone's, for an admin); another owner's reads as one that does not exist."""
        row = await self._store.get_call_task(task_id, caller())
        if row is None or row.expires_at < time.time():
            return None
        return CallTaskRecord(row.view, describe_owner(row.owner) if _stopped(row) else None, row.cancel_asked_at)

    async def ask_cancel(self, task_id: str) -> None:
        await self._store.ask_to_cancel_call_task(task_id, time.time())

    async def beat(self) -> list[str]:
        return await self._store.beat_call_tasks(self._owner, time.time())


def _stopped(row: CallTaskRow) -> bool:
    ended = owner_ended(row.owner)
    return ended if ended is not None else time.time() - row.alive_at > SILENT_FOR_S


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


def describe_owner(owner: str) -> str:
    host, _, _, pid, _ = (owner.split("/") + ["?"] * 5)[:5]
    return f"pid {pid} on {host}"


def owner_ended(owner: str) -> bool | None:
    """True when the owner has certainly ended, False when it certainly runs, None when this process cannot
    tell (another machine or pid namespace, or no /proc)."""
    parts = owner.split("/")
    if len(parts) != 5 or "?" in (_boot_id(), _pid_namespace()) or not parts[3].isdigit():
        return None
    _, boot, namespace, pid, start = parts
    if (boot, namespace) != (_boot_id(), _pid_namespace()):
        return None
    return _start(int(pid)) != start
