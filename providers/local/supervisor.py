"""Session supervisors: the processes that own a local session's lifetime, independent of any server.

A server starts one *zygote* (`python -I -S supervisor.py zygote FD DATA_DIR`), which keeps spare
*supervisors* forked ahead of time, each with its session directory already made. When the server runs a
command, it hands the job to a spare over their socket; the supervisor starts the command in its own process
group, enforces the timeout and the output cap, records the run in the session's `job.json` (the job before
the command starts, its pid once it runs, how it ended when it ends), tells the server if it is still there,
reaps every process the run left behind (it is a child subreaper, so a daemonizing command cannot slip
away), and exits.

Supervisors are in their own session (setsid): a server that exits or crashes leaves them running, and any
server on the data directory reads their record and stops them (SIGTERM after writing `stop` with a reason).

Standard library only, and importable: the server uses the identity helpers and file names from here.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import fcntl
import gc
import json
import mmap
import os
import secrets
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

RECORD, STOP, STDIN = "job.json", "stop", "stdin"
REQUEST = "request.json"  # a job too large for one socket message comes in this file
STREAMS = ("stdout", "stderr")
WORKDIR = "work"
INLINE_JOB_BYTES = 32_768
MAX_JOBS = 200  # a supervisor is replaced after this many sessions
MAX_MESSAGE = 1 << 20
WARM_EXIT_S = 2.0  # how long a sandbox made ahead gets to leave by itself when it is not used
SLOT_BATCH = 8  # session directories made (and announced) in one go
MONITOR_TICK_S = 0.1

PR_SET_CHILD_SUBREAPER = 36
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000


# --- identities: a pid is not enough (it is reused, and PID 1 restarts in a container) ---------------------
_BOOT_ID: str | None = None


def boot_id() -> str:
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _BOOT_ID = f.read().strip()[:8]
        except OSError:
            _BOOT_ID = "noboot"
    return _BOOT_ID


def identity(pid: int) -> str | None:
    """`boot:pid:start-ticks` of a live (non-zombie) process, or None. Equal identities are the same process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return f"{boot_id()}:{pid}:{int(fields[19])}"


def alive(ident: str | None) -> bool:
    if not ident:
        return False
    try:
        pid = int(ident.split(":")[1])
    except (IndexError, ValueError):
        return False
    return identity(pid) == ident


def pid_of(ident: str) -> int:
    return int(ident.split(":")[1])


def children(pid: int, single_threaded: bool = False) -> list[int]:
    """Direct children of a process, from /proc (every thread's list)."""
    found: list[int] = []
    try:
        tasks = [str(pid)] if single_threaded else os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            fd = os.open(f"/proc/{pid}/task/{tid}/children", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:  # os-level reads: this runs at the end of every session, and open() costs several times more
            data = chunk = os.read(fd, 65536)
            while chunk:
                chunk = os.read(fd, 65536)
                data += chunk
            found += [int(p) for p in data.split()]
        except OSError:
            pass
        finally:
            os.close(fd)
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (which is this single-threaded supervisor, or any process)."""
    out: list[int] = []
    todo = children(pid, single_threaded=pid == os.getpid())
    while todo:
        child = todo.pop()
        out.append(child)
        todo += children(child)
    return out


# --- the record: one small JSON file, rewritten in place ---------------------------------------------------
def write_json(path: str, data: dict[str, Any]) -> None:
    """Write a small JSON file in one write() call. Slot files are made ahead, and a record only grows, so
    this writes over the old content without truncating it first: creating, renaming or truncating a file
    can cost a millisecond on a busy disk; writing one does not. A reader may see a partly written file at
    the wrong moment: read_json() reads that as "not yet"."""
    data_bytes = json.dumps(data, separators=(",", ":")).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.pwrite(fd, data_bytes, 0)
        if os.fstat(fd).st_size > len(data_bytes):
            os.ftruncate(fd, len(data_bytes))
    finally:
        os.close(fd)


def read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_libc: Any = None


def prctl(option: int, value: int) -> bool:
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        return bool(_libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def make_sessions_dir(path: str) -> None:
    """The directory that holds the session directories, marked (on ext2/3/4) as the top of independent
    hierarchies: the allocator then spreads session directories over the disk's block groups instead of
    packing them into one. Where many files were just deleted (a test suite's temporary directories, old
    sessions), ext4 without a journal skips every recently freed inode of that group for each new file,
    which made a session directory cost milliseconds instead of a fraction of one. Elsewhere this does
    nothing."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            flags = array.array("i", [0])  # the kernel reads and writes an int, whatever the ioctl's name says
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
            if not flags[0] & FS_TOPDIR_FL:
                flags[0] |= FS_TOPDIR_FL
                fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags, True)
        finally:
            os.close(fd)


# Messages are read into one buffer per thread: reading into a fresh 1 MiB one costs an mmap and an munmap each
# time (~13 us, on every job and every end). Anonymous memory, so only what messages fill becomes resident.
_inboxes = threading.local()
_FD_SIZE = array.array("i").itemsize


def recv_message(sock: socket.socket, max_fds: int = 0, flags: int = 0) -> tuple[bytes, list[int]]:
    """The next message on `sock` (b"" at end of stream) and the descriptors passed with it."""
    inbox: memoryview | None = getattr(_inboxes, "buffer", None)
    if inbox is None:
        # private: a forked process (supervisors are forked from the zygote) gets its own copy, never ours
        inbox = _inboxes.buffer = memoryview(mmap.mmap(-1, MAX_MESSAGE, flags=mmap.MAP_PRIVATE))
    if not max_fds:
        n = sock.recv_into(inbox, MAX_MESSAGE, flags)
        return bytes(inbox[:n]), []
    n, ancillary, _, _ = sock.recvmsg_into([inbox], socket.CMSG_SPACE(max_fds * _FD_SIZE), flags)
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % _FD_SIZE])
    return bytes(inbox[:n]), list(fds)


def _send(channel: socket.socket | None, message: dict[str, Any]) -> socket.socket | None:
    """Send one message; a server that has gone is not an error (the record says it all). Returns the
    channel, or None once the server is gone."""
    if channel is None:
        return None
    try:
        channel.send(json.dumps(message, separators=(",", ":")).encode())
        return channel
    except OSError:
        return None


# --- limits: rlimits on every process; a cgroup for the session where the host lets us make one ----------
MIB = 1 << 20
OOM_WORDS = ("MemoryError", "Cannot allocate memory", "out of memory", "std::bad_alloc", "failed to allocate")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _counter(text: str, name: str) -> int:
    """`name N` from a flat-keyed cgroup file (memory.events, pids.events, memory.oom_control...)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.strip().isdigit():
            return int(value)
    return 0


class Cgroup:
    """A cgroup of its own for one supervisor and the sessions it runs, one after another: memory and process
    caps the kernel enforces on the whole session, and counters that say which one was hit. cgroup v1 (one
    directory per controller, where our own cgroup lets us create children) or v2 (under a delegated parent)."""

    def __init__(self, dirs: dict[str, str], version: int) -> None:
        self.dirs = dirs  # controller -> this cgroup's directory (v2: all the same)
        self.version = version
        self.open_files: dict[str, int] = {}

    @classmethod
    def create(cls, limits: dict[str, Any], name: str) -> Cgroup | None:
        if not limits.get("cgroups", True):
            return None
        try:
            group = (
                cls({"all": os.path.join(str(limits["cgroup_parent"]), name)}, 2)
                if limits.get("cgroup_parent")
                else cls._v1(name)
            )
            if group is None:
                return None
            for path in set(group.dirs.values()):
                os.mkdir(path, 0o700)
            group._set_limits(limits)
            for path in set(group.dirs.values()):
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            return group
        except OSError:
            return None

    @classmethod
    def _v1(cls, name: str) -> Cgroup | None:
        mounts: dict[str, str] = {}
        for line in _read("/proc/self/mountinfo").splitlines():
            left, _, right = line.partition(" - ")
            fields, extra = left.split(), right.split()
            if len(extra) >= 3 and extra[0] == "cgroup":
                for controller in extra[2].split(","):
                    mounts[controller] = fields[4]
        dirs = {}
        for line in _read("/proc/self/cgroup").splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                if controller in ("memory", "pids", "cpuacct") and controller in mounts:
                    dirs[controller] = os.path.join(mounts[controller] + path, name)
        return cls(dirs, 1) if {"memory", "pids"} <= dirs.keys() else None

    def file(self, controller: str, name: str) -> str:
        return os.path.join(self.dirs.get(controller) or self.dirs.get("all", ""), name)

    def _set_limits(self, limits: dict[str, Any]) -> None:
        # The supervisor itself is in the group too: a little room for it.
        memory = str(int(limits["memory_mb"]) * MIB + 64 * MIB)
        processes = str(int(limits["processes"]) + 1)
        if self.version == 1:
            self._write("memory", "memory.limit_in_bytes", memory)
            with contextlib.suppress(OSError):  # swap accounting may be off
                self._write("memory", "memory.memsw.limit_in_bytes", memory)
            self._write("pids", "pids.max", processes)
        else:
            self._write("all", "memory.max", memory)
            with contextlib.suppress(OSError):
                self._write("all", "memory.swap.max", "0")
            self._write("all", "pids.max", processes)

    def _write(self, controller: str, name: str, value: str) -> None:
        with open(self.file(controller, name), "w") as f:
            f.write(value)

    def read(self, controller: str, name: str) -> str:
        """A counter file's content. Files stay open and are read with pread: a run reads them at its start
        and end, and opening cgroupfs files costs far more than reading them."""
        path = self.file(controller, name)
        try:
            fd = self.open_files.get(path)
            if fd is None:
                fd = self.open_files[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            return os.pread(fd, 4096, 0).decode()
        except OSError:
            return ""

    def counters(self, cpu: bool = True) -> dict[str, int]:
        """The OOM kills, the refused forks and (with `cpu`) the CPU time of the group so far."""
        cpu_ns = -1
        if self.version == 1:
            oom = _counter(self.read("memory", "memory.oom_control"), "oom_kill")
            if cpu and "cpuacct" in self.dirs:
                cpu_ns = int(self.read("cpuacct", "cpuacct.usage").strip() or 0)
        else:
            oom = _counter(self.read("all", "memory.events"), "oom_kill")
            if cpu:
                cpu_ns = _counter(self.read("all", "cpu.stat"), "usage_usec") * 1000 or -1
        return {"oom": oom, "pids_max": _counter(self.read("pids", "pids.events"), "max"), "cpu_ns": cpu_ns}

    def remove(self) -> None:
        """Leave the group (back to its parent) and remove it; it is empty once our sessions have ended."""
        for fd in self.open_files.values():
            os.close(fd)
        self.open_files.clear()
        for path in set(self.dirs.values()):
            with contextlib.suppress(OSError):
                with open(os.path.join(os.path.dirname(path), "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            with contextlib.suppress(OSError):
                os.rmdir(path)


class Limits:
    """The operator's upper bounds for one supervisor's sessions, applied once, when it starts: the rlimits
    it sets on itself are inherited by every command it spawns (a launcher's supervisor sets no CPU limit)."""

    def __init__(self, limits: dict[str, Any], kind: str) -> None:
        self.limits = limits
        self.kind = kind
        self.cgroup: Cgroup | None = None
        self.baseline: dict[str, int] = {}
        self.cpu_done = 0.0

    def apply(self) -> None:
        if not self.limits:
            return
        import resource

        self.cgroup = Cgroup.create(self.limits, f"runtimes-mcp-{os.getpid()}")
        if self.cgroup is not None:
            self.cgroup.counters()  # opens its files now, not on the way of the first run
        settings = [
            (resource.RLIMIT_FSIZE, int(self.limits["file_size_mb"]) * MIB),
            (resource.RLIMIT_NOFILE, int(self.limits["open_files"])),
        ]
        if self.cgroup is None:  # the cgroup caps a session's memory as a whole; without one, each process
            settings.append((resource.RLIMIT_DATA, int(self.limits["memory_mb"]) * MIB))
        if self.kind != "launcher":
            cpu = int(self.limits["cpu_s"])
            settings.append((resource.RLIMIT_CPU, cpu))
        for which, value in settings:
            with contextlib.suppress(ValueError, OSError):
                _, hard = resource.getrlimit(which)
                cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
                # CPU: SIGXCPU at the limit (which says why), SIGKILL a second later if that is ignored.
                top = cap + 1 if which == resource.RLIMIT_CPU and hard == resource.RLIM_INFINITY else cap
                resource.setrlimit(which, (cap, top))

    def begin(self) -> None:
        self.baseline = self.cgroup.counters() if self.cgroup else {}
        self.cpu_done = _children_cpu_s()

    def check(self, tree: list[int], cpu: bool = True) -> tuple[str, str] | None:
        """A limit this run has hit, as (reason, what to say), or None (`cpu`: the CPU limit counts too)."""
        if not self.limits:
            return None
        counters = self.cgroup.counters(cpu) if self.cgroup else {}
        if counters.get("oom", 0) > self.baseline.get("oom", 0):
            return "memory_limit", f"a process ran out of memory (local.limits.memory_mb={self.limits['memory_mb']})"
        if counters.get("pids_max", 0) > self.baseline.get("pids_max", 0) or len(tree) > int(self.limits["processes"]):
            return (
                "process_limit",
                f"it tried to run more than {self.limits['processes']} processes (local.limits.processes)",
            )
        if cpu and self.kind != "launcher":
            if counters.get("cpu_ns", -1) >= 0:
                used = (counters["cpu_ns"] - self.baseline.get("cpu_ns", 0)) / 1e9
            else:
                used = _children_cpu_s() - self.cpu_done + sum(_cpu_s(pid) for pid in tree)
            if used > int(self.limits["cpu_s"]):
                return "cpu_limit", f"it used {used:.1f} s of CPU (local.limits.cpu_s={self.limits['cpu_s']})"
        if self.cgroup is None:
            rss = sum(_rss(pid) for pid in tree)
            if rss > int(self.limits["memory_mb"]) * MIB:
                return "memory_limit", f"it used {rss // MIB} MiB (local.limits.memory_mb={self.limits['memory_mb']})"
        return None

    def after_exit(self, code: int, stderr_path: str) -> tuple[str, str] | None:
        """A limit that ended the run on its own: the kernel's signal, an OOM kill, a failed allocation (told
        by the end of stderr, read only when the run failed)."""
        if not self.limits:
            return None
        hit = self.check([], cpu=False)  # the kernel's signal says whether the CPU limit ended it
        if hit is not None:
            return hit
        if code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            return "cpu_limit", f"a process used its CPU time (local.limits.cpu_s={self.limits['cpu_s']})"
        if code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            return "file_size_limit", f"a file reached local.limits.file_size_mb={self.limits['file_size_mb']}"
        if code == 0:
            return None
        tail = _tail(stderr_path)
        if any(word.encode() in tail for word in OOM_WORDS):
            return "memory_limit", f"an allocation failed (local.limits.memory_mb={self.limits['memory_mb']})"
        return None

    def close(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()


def _spawn(argv: list[str], env: dict[str, str], stdin: str, streams: list[str], *more_fds: int) -> int:
    """Start a process in a process group of its own (so that a stop reaches everything it starts) with
    `stdin`, the output `streams` and `more_fds` as its descriptors 0, 1, 2, 3…, and no other: everything
    this process holds is close-on-exec. posix_spawn is vfork and exec, no Python code in the child.
    `more_fds` are closed here, whatever happens."""
    fds: list[int] = []
    try:
        fds.append(os.open(stdin, os.O_RDONLY | os.O_CLOEXEC))
        for path in streams:
            fds.append(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))
        fds += more_fds
        return os.posix_spawn(
            argv[0],
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)],
            setpgroup=0,
        )
    finally:
        for fd in {*fds, *more_fds}:
            os.close(fd)


def spawn_sandbox(argv: list[str], stdin: str, streams: list[str], *more_fds: int) -> int:
    """Start bubblewrap (`argv`) as _spawn does, on the host, with an empty environment: what the command is
    to get is set inside the sandbox by the arguments. Its options (the command's variables among them) reach
    bwrap through a descriptor (`--args`), not its command line, which every user of the host can read."""
    options = argv.index("--")
    args = os.memfd_create("bwrap-args", os.MFD_CLOEXEC)
    try:
        data = memoryview(b"".join(arg.encode() + b"\0" for arg in argv[1:options]))
        while data:
            data = data[os.write(args, data) :]
        os.lseek(args, 0, os.SEEK_SET)
    except OSError:
        os.close(args)
        for fd in more_fds:
            os.close(fd)
        raise
    descriptor = str(3 + len(more_fds))  # after stdin, the two streams and `more_fds`
    return _spawn([argv[0], "--args", descriptor, *argv[options:]], {}, stdin, streams, *more_fds, args)


def _reaped(pid: int) -> bool:
    """Has this child ended? (It is reaped if so.)"""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _tail(path: str, size: int = 2048) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.pread(fd, size, max(0, os.fstat(fd).st_size - size))
    except OSError:
        return b""
    finally:
        os.close(fd)


def _stat(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2 :].split()


def _cpu_s(pid: int) -> float:
    fields = _stat(pid)  # utime(11) stime(12) cutime(13) cstime(14), in clock ticks
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK") if len(fields) > 14 else 0.0


def _rss(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[21]) * os.sysconf("SC_PAGE_SIZE") if len(fields) > 21 else 0


def _children_cpu_s() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


# --- the zygote ------------------------------------------------------------------------------------------
def zygote(fd: int, data_dir: str, limits: dict[str, Any] | None = None) -> None:
    """Serve one server: fork supervisors when it asks ("more"), and hand it session directories made ahead
    by a helper of the lowest CPU priority ("slots"), so that making them never slows a run down."""
    server = socket.socket(fileno=fd)
    os.umask(0o077)  # session files are the server user's alone
    gc.freeze()  # what we imported is never collected: forked supervisors need not copy it to scan it
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel, not by us
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the server
    sessions = os.path.join(data_dir, "sessions")
    with contextlib.suppress(OSError):  # else the first slot says why none can be made
        make_sessions_dir(sessions)
    owner = identity(os.getpid()) or ""
    helper, helper_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if os.fork() == 0:
        server.close()
        helper.close()
        _slot_maker(helper_end, sessions, owner)
        os._exit(0)
    helper_end.close()
    poller = select.poll()
    poller.register(server, select.POLLIN)
    poller.register(helper, select.POLLIN)
    while True:
        for ready, _ in poller.poll():
            try:
                message, _ = recv_message(server if ready == server.fileno() else helper)
            except OSError:
                message = b""
            if ready == helper.fileno():
                if not message:
                    poller.unregister(helper)  # the slot maker has ended; a slot is then made when asked
                elif _send(server, reply := json.loads(message)) is None:
                    remove_slots(sessions, reply.get("ids", []))  # slots made (or why none could be), server gone
                continue
            if not message:  # the server has gone; the supervisors live on, the slot maker stops
                _stop_slot_maker(helper, sessions)
                return
            request = json.loads(message)
            if request.get("op") == "more":
                for _ in range(int(request.get("n", 1))):
                    _fork_supervisor(server, helper, limits or {}, str(request.get("kind", "session")))
            elif request.get("op") == "slots":
                _send(helper, request)
            elif request.get("op") == "slot_now":  # none is ready: make one at our own priority
                if _send(server, made := _make_slots(sessions, owner, 1)) is None:
                    remove_slots(sessions, made.get("ids", []))


def _slot_maker(channel: socket.socket, sessions: str, owner: str) -> None:
    """Make session directories when asked, at the lowest CPU priority: only time no one else wants."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    wanted = 0
    while True:
        if wanted:
            try:
                message, _ = recv_message(channel, flags=socket.MSG_DONTWAIT)
            except BlockingIOError:
                message = b"{}"
            except OSError:
                return  # the zygote has gone
            if not message:
                return
            wanted += int(json.loads(message).get("n", 0))
            reply = _make_slots(sessions, owner, min(wanted, SLOT_BATCH))
            wanted = 0 if "error" in reply else wanted - len(reply["ids"])
            if _send(channel, reply) is None:
                remove_slots(sessions, reply.get("ids", []))  # the zygote has gone: nobody will take them
                return
            continue
        try:
            message, _ = recv_message(channel)
        except OSError:
            return
        if not message:
            return
        wanted += int(json.loads(message).get("n", 0))


def _stop_slot_maker(helper: socket.socket, sessions: str) -> None:
    """Tell the slot maker to stop, and remove what it made that no server will take."""
    with contextlib.suppress(OSError):
        helper.shutdown(socket.SHUT_WR)
    while True:
        try:
            message, _ = recv_message(helper)
        except OSError:
            return
        if not message:
            return
        remove_slots(sessions, json.loads(message).get("ids", []))


def remove_slots(sessions: str, ids: Iterable[object]) -> None:
    """Remove the slots of these ids in the `sessions` directory (see remove_slot)."""
    for session_id in ids:
        remove_slot(os.path.join(sessions, str(session_id)))


def remove_slot(directory: str) -> None:
    """Remove a slot nothing ran in (only files we made, and an empty work directory)."""
    for name in (*STREAMS, STDIN, RECORD, REQUEST):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
    for path in (os.path.join(directory, WORKDIR), directory):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def _make_slots(sessions: str, owner: str, n: int) -> dict[str, Any]:
    """n session directories: the work directory, empty output files, and a record that says whose spare
    it is (so another server on this data directory leaves it alone). Those made before a failure are
    handed over; the failure is reported when none could be made."""
    made: list[str] = []
    for _ in range(n):
        session_id = f"ses_{secrets.token_hex(6)}"
        directory = os.path.join(sessions, session_id)
        try:
            os.makedirs(os.path.join(directory, WORKDIR), mode=0o700)
            for name in STREAMS:
                os.close(os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            write_json(os.path.join(directory, RECORD), {"spare": owner})
        except OSError as exc:
            remove_slot(directory)
            if made:
                break
            return {"op": "error", "error": f"cannot create the session's files in {sessions}: {exc.strerror}"}
        made.append(session_id)
    return {"op": "slots", "ids": made}


def _fork_supervisor(server: socket.socket, helper: socket.socket, limits: dict[str, Any], kind: str) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            server.close()
            helper.close()
            theirs.close()
            Supervisor(ours, Limits(limits, kind)).serve()
        except BaseException:
            os._exit(70)
        os._exit(0)
    ours.close()
    message = {"op": "spare", "supervisor": identity(pid), "kind": kind}
    with contextlib.suppress(OSError):
        socket.send_fds(server, [json.dumps(message).encode()], [theirs.fileno()])
    theirs.close()


# --- one session at a time ----------------------------------------------------------------------------------
class Warm:
    """A sandbox started ahead for the next session: bubblewrap's pid, the pipe its shell reads the command
    from, and the session directory it was made for."""

    def __init__(self, pid: int, script: int, directory: str) -> None:
        self.pid, self.script, self.dir = pid, script, directory


class Supervisor:
    """Supervises one session, then the next one its server hands it, while that server is there: a warm
    supervisor starts a command faster than a newly forked one. It leaves after its server has gone."""

    def __init__(self, channel: socket.socket, limits: Limits) -> None:
        self.channel: socket.socket | None = channel
        self.limits = limits
        self.identity: str | None = None
        self.jobs = 0
        self.warm: Warm | None = None
        self.reset()

    def reset(self) -> None:
        self.session_id = ""
        self.dir = ""
        self.job: dict[str, Any] = {}
        self.record: dict[str, Any] = {}
        self.pid = 0  # the command's
        self.status: int | None = None  # the command's wait status
        self.reason: str | None = None  # why we are ending it; None while it runs on its own
        self.detail: str | None = None
        self.kill_at: float | None = None
        self.cut: list[str] = []
        self.held_fds: list[int] = []
        self.announced = False

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def warm_up(self) -> None:
        """Run the job's code paths once while waiting for one: a forked process copies each memory page it
        first writes to, which costs the first use of a code path a few tenths of a millisecond."""
        descendants(os.getpid())
        json.dumps({"op": "ended", "exit_code": 0, "detail": None, "ended_at": time.time()})
        self.identity = identity(os.getpid())  # reading /proc costs ~0.2 ms here, so not on a job's path
        with contextlib.suppress(OSError):
            fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            os.pwrite(fd, json.dumps({"spare": self.identity}).encode(), 0)
            os.fstat(fd)
            os.close(fd)

    def serve(self) -> None:
        os.setsid()
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        # Handled, not ignored: an exec resets handled signals, so the command starts with default ones.
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)  # the wakeup fd is what we listen to
        self.warm_up()
        self.limits.apply()
        try:
            while self.channel is not None and self.jobs < MAX_JOBS:
                self.limits.begin()  # the counters as the next run finds them, read while we wait for it
                job = self.wait_for_job()
                if not job:
                    return
                self.jobs += 1
                self.run(job)
                for fd in self.held_fds:
                    os.close(fd)
                self.reset()
        finally:
            self.discard_warm(remove=True)
            self.limits.close()

    def run(self, job: dict[str, Any]) -> None:
        self.job, self.session_id, self.dir = job, str(job["id"]), str(job["dir"])
        try:
            self.start()
        except OSError as exc:
            self.channel = _send(self.channel, {"op": "failed", "errno": exc.errno, "error": exc.strerror or str(exc)})
            remove_slot(self.dir)
            return
        finally:
            os.chdir("/")
        self.watch()
        self.finish()

    def wait_for_job(self) -> dict[str, Any]:
        assert self.channel is not None
        poller = select.poll()
        poller.register(self.channel, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == self.wake_r:
                    self.drain_wakeups()
                    if self.warm is not None and _reaped(self.warm.pid):
                        self.warm.pid = 0  # it died waiting (it is reaped): the next run starts cold
                        self.discard_warm()
                    continue
                message, fds = recv_message(self.channel, max_fds=4)
                if not message:
                    return {}
                if message.startswith(b'{"op":"prepare"'):
                    self.prepare(json.loads(message))
                    continue
                for held in fds:
                    os.set_inheritable(held, False)
                self.held_fds = fds  # e.g. a launcher's lock: held until this supervisor exits
                job: dict[str, Any] = json.loads(message)
                if job.get("file") == REQUEST:
                    request = os.path.join(str(job["dir"]), REQUEST)
                    job = read_json(request) or job
                    with contextlib.suppress(OSError):
                        os.unlink(request)
                return job

    def drain_wakeups(self) -> set[int]:
        signals: set[int] = set()
        with contextlib.suppress(OSError):
            while data := os.read(self.wake_r, 512):
                signals.update(data)
        return signals

    # --- start --------------------------------------------------------------------------------------------
    def start(self) -> None:
        job = self.job
        self.record = {
            **job.get("record", {}),
            "session_id": self.session_id,
            "supervisor": self.identity,
            "started_at": time.time(),
        }
        write_json(self.path(RECORD), self.record)  # before the process exists: no crash leaves it unrecorded
        self.started = time.monotonic()
        self.streams = [self.path(s) for s in STREAMS]
        self.pid = self.take_warm()
        if not self.pid:
            os.chdir(job.get("cwd") or self.path(WORKDIR))
            stdin = self.path(STDIN) if job.get("stdin") else os.devnull
            if job.get("sandboxed"):
                self.pid = spawn_sandbox(job["argv"], stdin, self.streams)
            else:
                self.pid = _spawn(job["argv"], job.get("env") or {}, stdin, self.streams)
        if not job.get("quiet_start_s"):
            self.announce()

    def take_warm(self) -> int:
        """Hand the run to the sandbox built ahead for it, if there is one and it can take the run: its pid,
        else 0 (and a sandbox that cannot take it is ended)."""
        warm, self.warm = self.warm, None
        if warm is None:
            return 0
        if _reaped(warm.pid):
            warm.pid = 0  # it died waiting: start cold
        if warm.pid and self.job.get("warm") and warm.dir == self.dir:
            # The sandbox is up and waiting: hand it the command (it fits in the pipe's buffer).
            with contextlib.suppress(OSError):
                os.write(warm.script, str(self.job["warm"]).encode())
            os.close(warm.script)
            return warm.pid
        self.warm = warm
        self.discard_warm()
        return 0

    def prepare(self, request: dict[str, Any]) -> None:
        """Start the sandbox of this supervisor's next session ahead of time: bubblewrap takes milliseconds to
        build it, and the run should not wait for that. Inside, a shell waits for the command on a pipe."""
        self.discard_warm(remove=True)
        directory = str(request["dir"])
        script_r, script_w = os.pipe2(os.O_CLOEXEC)
        streams = [os.path.join(directory, s) for s in STREAMS]
        try:
            pid = spawn_sandbox(request["argv"], os.devnull, streams, script_r)
        except OSError:
            os.close(script_w)
            return  # the run starts cold
        self.warm = Warm(pid, script_w, directory)

    def discard_warm(self, remove: bool = False) -> None:
        """End a sandbox started ahead that will not be used (and, with `remove`, its unused directory).
        Its shell reads the end of its input and exits, and bubblewrap with it: killed in the middle of its
        set-up, bubblewrap can leave its inner process behind, so a kill is only the last resort."""
        warm, self.warm = self.warm, None
        if warm is None:
            return
        with contextlib.suppress(OSError):
            os.close(warm.script)
        if warm.pid:
            deadline = time.monotonic() + WARM_EXIT_S
            while not _reaped(warm.pid):
                if time.monotonic() > deadline:
                    with contextlib.suppress(OSError):
                        os.kill(warm.pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(warm.pid, 0)
                    break
                time.sleep(0.001)
        for pid in descendants(os.getpid()):  # no run is going on: anything below us is the sandbox's
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        while descendants(os.getpid()):
            self.reap_orphans()
            time.sleep(0.001)
        self.reap_orphans()
        if remove:
            remove_slot(warm.dir)

    def announce(self) -> None:
        """Record the command's pid and tell the server it runs. A server waiting for a short run hears only
        how it ended, and the record gets the pid with the result: no write on the way of a quick command."""
        if not self.announced:
            self.announced = True
            self.record["pid"] = self.pid
            with contextlib.suppress(OSError):
                write_json(self.path(RECORD), self.record)
            self.channel = _send(self.channel, {"op": "started", "pid": self.pid})

    # --- watch --------------------------------------------------------------------------------------------
    def watch(self) -> None:
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        if self.channel is not None:
            poller.register(self.channel, select.POLLIN)
        timeout_s = self.job.get("timeout_s")
        deadline = self.started + timeout_s if timeout_s else None
        announce_at = self.started + float(self.job.get("quiet_start_s") or 0)
        cap = self.job.get("max_output_bytes")
        while True:
            now = time.monotonic()
            if self.reason is not None:
                deadline = None  # ending already; only the kill deadline counts now
            waits = [t - now for t in (deadline, self.kill_at) if t is not None]
            if not self.announced:
                waits.append(announce_at - now)
            if self.reason is None and (cap or self.limits.limits):
                waits.append(MONITOR_TICK_S)
            timeout_ms = max(0, int(min(waits) * 1000) + 1) if waits else -1
            for fd, _ in poller.poll(timeout_ms):
                if fd == self.wake_r:
                    if signal.SIGTERM in self.drain_wakeups():
                        stop = read_json(self.path(STOP))  # none: a late signal meant for an earlier session
                        if stop is not None:
                            self.end(str(stop.get("reason") or "stop"))
                elif self.channel is not None:
                    self.on_message(poller)
            self.reap()
            if self.status is not None:
                return
            now = time.monotonic()
            if not self.announced and now >= announce_at:
                self.announce()
            if deadline is not None and now >= deadline:
                self.end("timeout", f"ended after timeout_s={timeout_s:g}")
            if self.kill_at is not None and now >= self.kill_at:
                self.signal_all(signal.SIGKILL)
            if cap and self.reason is None:
                self.check_output(cap)
            if self.reason is None and self.limits.limits and now >= self.started + MONITOR_TICK_S:
                hit = self.limits.check(descendants(os.getpid()))
                if hit is not None:
                    self.end(*hit)

    def on_message(self, poller: select.poll) -> None:
        assert self.channel is not None
        try:
            message, _ = recv_message(self.channel)
        except OSError:
            message = b""
        if not message:  # the server has gone
            poller.unregister(self.channel)
            self.channel.close()
            self.channel = None
            if self.job.get("on_server_exit") == "stop":
                self.end("server_shutdown")
            return
        request = json.loads(message)
        if request.get("op") == "stop":
            self.end(str(request.get("reason") or "stop"))

    def check_output(self, cap: int) -> None:
        for stream, path in zip(STREAMS, self.streams, strict=True):
            with contextlib.suppress(OSError):
                if os.stat(path).st_size > cap:
                    self.cut.append(stream)
        if self.cut:
            self.end("output_limit", f"{' and '.join(self.cut)} passed {cap // (1 << 20)} MiB (local.max_output_mb)")

    def end(self, reason: str, detail: str | None = None) -> None:
        """Ask the whole run to stop (SIGTERM), and SIGKILL what is left after the grace period."""
        if self.reason is not None:
            return
        self.reason, self.detail = reason, detail
        self.signal_all(signal.SIGTERM)
        self.kill_at = time.monotonic() + float(self.job.get("grace_s", 2.0))

    def signal_all(self, sig: int) -> None:
        """Signal everything the run started. In a sandbox, SIGTERM spares bubblewrap's two processes (its
        monitor, our child, and its init in the sandbox): the command gets the chance to end cleanly, and the
        whole sandbox goes when it does. SIGKILL takes everything."""
        spare: set[int] = set()
        if self.job.get("sandboxed") and sig != signal.SIGKILL:
            spare = {self.pid, *children(self.pid)}
        else:
            with contextlib.suppress(OSError):
                os.killpg(self.pid, sig)
        for pid in descendants(os.getpid()):
            if pid not in spare:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)

    def reap(self) -> None:
        """Collect every child that ended: the command, and orphans handed to us as their subreaper."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.status = status

    def sweep(self) -> None:
        """After the command ended: end whatever it left running (SIGTERM, then SIGKILL after the grace)."""
        if self.reap_orphans() or not descendants(os.getpid()):
            return
        for _ in range(10):  # what is already on its way out (bubblewrap's init follows its monitor) goes by itself
            time.sleep(0.001)
            self.reap_orphans()
            if not any(identity(pid) for pid in descendants(os.getpid())):
                self.reap_orphans()
                return
        self.signal_all(signal.SIGTERM)
        until = time.monotonic() + float(self.job.get("grace_s", 2.0))
        while descendants(os.getpid()) and time.monotonic() < until:
            time.sleep(0.02)
            self.reap_orphans()
        while descendants(os.getpid()):
            self.signal_all(signal.SIGKILL)
            time.sleep(0.01)
            self.reap_orphans()

    def reap_orphans(self) -> bool:
        """Reap the children that ended; True when no child is left (then nothing runs below us either: an
        orphan is handed to us, its subreaper, before its parent can be reaped)."""
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return True
        return False

    # --- finish -------------------------------------------------------------------------------------------
    def finish(self) -> None:
        assert self.status is not None
        # In a sandbox, the kernel is already killing whatever was left when bubblewrap's monitor exits (the
        # PID namespace goes with its init): the end is reported first, and its last processes reaped after.
        # Unconfined, what the command left is ended before the run counts as over.
        sandboxed = bool(self.job.get("sandboxed"))
        if not sandboxed:
            self.sweep()
        cap = self.job.get("max_output_bytes")
        code = os.waitstatus_to_exitcode(self.status)
        if self.reason is None:
            hit = self.limits.after_exit(code, self.path("stderr"))
            if hit is not None:
                self.reason, self.detail = hit
        if self.job.get("sandboxed") and 128 < code < 128 + 65 and self.reason is not None:
            code = 128 - code  # bubblewrap says 128+N for a command killed by signal N, as a shell does
        result: dict[str, Any] = {
            "exit_code": code,
            "reason": self.reason or "exit",
            "detail": self.detail,
            "ended_at": time.time(),
        }
        for stream, path in zip(STREAMS, self.streams, strict=True):
            try:
                size = os.stat(path).st_size
                if stream in self.cut and cap and size > cap:
                    with open(path, "r+b") as f:
                        f.truncate(cap)
                        f.seek(cap)
                        f.write(f"\n[runtimes-mcp: output cut here at {cap} bytes (local.max_output_mb)]\n".encode())
                    size = os.stat(path).st_size
            except OSError:
                size = 0
            result[f"{stream}_bytes"] = size
        retiring = self.jobs >= MAX_JOBS  # then the server must not hand this supervisor another job
        self.channel = _send(self.channel, {"op": "ended", "pid": self.pid, "retiring": retiring, **result})
        self.record["pid"] = self.pid
        self.record["result"] = result
        with contextlib.suppress(OSError):  # e.g. the disk is full: the server heard it all the same
            write_json(self.path(RECORD), self.record)
        if sandboxed:
            self.sweep()


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "zygote":
        zygote(int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]) if len(sys.argv) == 5 else None)
    else:
        sys.exit("usage: supervisor.py zygote FD DATA_DIR [LIMITS_JSON] (started by runtimes-mcp)")
