"""Who is who and what happened: process identities, the process tree, and a session's record file.

Standard library only: supervisors import this without the rest of runtimes-mcp (see __main__.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import json
import os
import secrets
import tempfile
from typing import Any

# A session directory: its record, its output, its input, and what another server leaves to stop it.
RECORD, STOP, STDIN = "job.json", "stop", "stdin"
STDIN_FIFO, INPUT_CLOSED = "stdin.fifo", "stdin.closed"  # an interactive run's stdin, and the word to close it
REQUEST = "request.json"  # a job too large for one socket message comes in this file
STREAMS = ("stdout", "stderr")
WORKDIR = "work"
DISK_FULL = (
    "the data directory's disk is full (No space left on device): the run's output may be cut; free space in "
    "RUNTIMES_MCP_DATA_DIR or lower local.max_data_mb"
)
PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()[:8]
    except OSError:
        return "noboot"


def stat_fields(pid: int) -> list[bytes]:
    """The fields of /proc/PID/stat after the command name: state(0) ppid(1) pgrp(2) ... starttime(19)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2 :].split()


def identity(pid: int) -> str | None:
    """`boot:pid:start-ticks` of a live (non-zombie) process, or None. A pid alone is not an identity: it is
    reused, and PID 1 restarts in a container. Equal identities are the same process."""
    fields = stat_fields(pid)
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return f"{boot_id()}:{pid}:{int(fields[19])}"


def alive(ident: str | None) -> bool:
    if not ident:
        return False
    try:
        return identity(pid_of(ident)) == ident
    except (IndexError, ValueError):
        return False


def pid_of(ident: str) -> int:
    return int(ident.split(":")[1])


def children(pid: int) -> list[int]:
    """Direct children of a process, from /proc (every thread's list)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += [int(p) for p in f.read().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo += children(child)
    return out


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write a small JSON file in one write() call, over what was there. A record only grows, so a reader
    never needs a rename to see it whole; one that reads in the middle of a write sees bad JSON, which
    read_json takes as "not yet"."""
    data_bytes = json.dumps(data, separators=(",", ":")).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.pwrite(fd, data_bytes, 0)
        if os.fstat(fd).st_size > len(data_bytes):
            os.ftruncate(fd, len(data_bytes))
    finally:
        os.close(fd)


def write_new(path: str | os.PathLike[str], data: bytes, mode: int, durable: bool = True) -> None:
    """Replace `path` whole: written to a new file of a random name beside it (O_EXCL, no symlink followed),
    synced when `durable`, then renamed over. Not a name made from the pid: two servers on one data directory
    may share a pid."""
    directory, name = os.path.split(os.fspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            if mode != 0o600:  # mkstemp's own (a file system that refuses chmod still takes a private file)
                os.fchmod(file.fileno(), mode)
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def prctl(option: int, value: int) -> bool:
    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def disk_full(directory: str) -> bool:
    """Is the data directory's disk (all but) full? Then a failed run may have failed for it: its output
    cannot be written, so nothing else would say so."""
    try:
        info = os.statvfs(directory)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < 64 * 1024


def make_session_dir(sessions: str, owner: str, user: list[int] | None = None) -> str:
    """A new session directory with its work directory, empty output files, and a record that says whose
    spare it is (so no other server takes or removes it); its id. With `user` ([uid, gid], local.sandbox.run_as)
    the work directory is that user's, and the session directory lets it pass."""
    session_id = f"ses_{secrets.token_hex(6)}"
    directory = os.path.join(sessions, session_id)
    try:
        os.makedirs(os.path.join(directory, WORKDIR), mode=0o700)
        if user is not None:
            os.chmod(directory, 0o711)
            os.chown(os.path.join(directory, WORKDIR), *user)
        for name in STREAMS:
            os.close(os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        write_json(os.path.join(directory, RECORD), {"spare": owner})
    except OSError:
        remove_unused(directory)
        raise
    return session_id


def remove_unused(directory: str) -> None:
    """Remove a session directory nothing ran in (only the files made for it, and an empty work directory)."""
    for name in (*STREAMS, STDIN, STDIN_FIFO, RECORD, REQUEST):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
    for path in (os.path.join(directory, WORKDIR), directory):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def nobody_serving(path: str) -> bool:
    """Does no server hold `serving.lock` any more (a shared lock each serving server keeps)?"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
