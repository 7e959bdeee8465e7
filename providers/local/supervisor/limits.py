"""The operator's limits on a session: rlimits on every process, a cgroup for the whole run where the host
lets us make one (memory, processes, CPU time), and the disk its directory may take.

A supervisor's cgroup holds the runs it starts, one after another, never the supervisor itself: a run that
fills its memory (tmpfs included) is what the kernel kills, never the process that reports how it ended.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from collections.abc import Callable
from typing import Any

from .records import stat_fields

MIB = 1 << 20
CGROUP_NAME = "runtimes-mcp-"  # a supervisor's cgroup: this, then its identity with dashes
OOM_WORDS = ("MemoryError", "Cannot allocate memory", "out of memory", "std::bad_alloc", "failed to allocate")


def read_text(path: str) -> str:
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


def cgroup_dirs(name: str, parent: str | None) -> dict[str, str]:
    """controller -> directory of a cgroup called `name` below ours (v1), or below `parent` (a delegated v2
    directory, "all" -> it); empty where the host has neither."""
    if parent:
        return {"all": os.path.join(parent, name)}
    mounts: dict[str, str] = {}
    for line in read_text("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(extra) >= 3 and extra[0] == "cgroup":
            for controller in extra[2].split(","):
                mounts[controller] = fields[4]
    dirs = {}
    for line in read_text("/proc/self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller in ("memory", "pids", "cpuacct") and controller in mounts:
                dirs[controller] = os.path.join(mounts[controller] + path, name)
    return dirs if {"memory", "pids"} <= dirs.keys() else {}


def cgroup_name(ident: str) -> str:
    return CGROUP_NAME + ident.replace(":", "-")


def sweep_cgroups(parent: str | None, alive: Callable[[str], bool]) -> None:
    """Remove the cgroups of supervisors that are gone (killed before they could remove their own)."""
    for controller_dir in {os.path.dirname(path) for path in cgroup_dirs("x", parent).values()}:
        try:
            names = os.listdir(controller_dir)
        except OSError:
            continue
        for name in names:
            ident = name.removeprefix(CGROUP_NAME).replace("-", ":")
            if name.startswith(CGROUP_NAME) and ident.count(":") == 2 and not alive(ident):
                remove_cgroup([os.path.join(controller_dir, name)])


def remove_cgroup(dirs: list[str]) -> None:
    """Remove a cgroup whose runs have ended (rmdir fails, harmlessly, while a process is still in it)."""
    for path in dirs:
        with contextlib.suppress(OSError):
            os.rmdir(path)


class Cgroup:
    """Memory and process caps the kernel enforces on a whole run, and counters that say which one was hit.
    cgroup v1 (one directory per controller, where our own cgroup lets us make children) or v2 (below a
    delegated parent)."""

    def __init__(self, dirs: dict[str, str]) -> None:
        self.dirs = dirs  # controller -> directory (v2: "all")
        self.v2 = "all" in dirs
        self.open_files: dict[str, int] = {}

    @classmethod
    def create(cls, limits: dict[str, Any], name: str) -> Cgroup | None:
        dirs = cgroup_dirs(name, limits.get("cgroup_parent")) if limits.get("cgroups", True) else {}
        if not dirs:
            return None
        group = cls(dirs)
        try:
            for path in set(dirs.values()):
                os.mkdir(path, 0o700)
            memory, processes = str(int(limits["memory_mb"]) * MIB), str(int(limits["processes"]))
            if group.v2:
                group._write("all", "memory.max", memory)
                with contextlib.suppress(OSError):
                    group._write("all", "memory.swap.max", "0")
                group._write("all", "pids.max", processes)
            else:
                group._write("memory", "memory.limit_in_bytes", memory)
                with contextlib.suppress(OSError):  # swap accounting may be off
                    group._write("memory", "memory.memsw.limit_in_bytes", memory)
                group._write("pids", "pids.max", processes)
            group.move(os.getpid(), inside=True)  # what every run's start does: make sure it works here
            group.move(os.getpid(), inside=False)
        except OSError:
            group.remove()
            return None
        group.counters()  # opens its files now, not on the way of the first run
        return group

    def _write(self, controller: str, name: str, value: str) -> None:
        with open(os.path.join(self.dirs[controller], name), "w") as f:
            f.write(value)

    def move(self, pid: int, inside: bool) -> None:
        """Put a process in the cgroup, or back in the one above it (where the supervisor lives)."""
        for path in set(self.dirs.values()):
            with open(os.path.join(path if inside else os.path.dirname(path), "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def read(self, controller: str, name: str) -> str:
        """A counter file's content. Files stay open and are read with pread: a run reads them at its start
        and end, and opening cgroupfs files costs far more than reading them."""
        path = os.path.join(self.dirs.get(controller) or self.dirs.get("all", ""), name)
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
        if self.v2:
            oom = _counter(self.read("all", "memory.events"), "oom_kill")
            if cpu:
                cpu_ns = _counter(self.read("all", "cpu.stat"), "usage_usec") * 1000 or -1
        else:
            oom = _counter(self.read("memory", "memory.oom_control"), "oom_kill")
            if cpu and "cpuacct" in self.dirs:
                cpu_ns = int(self.read("cpuacct", "cpuacct.usage").strip() or 0)
        return {"oom": oom, "pids_max": _counter(self.read("pids", "pids.events"), "max"), "cpu_ns": cpu_ns}

    def remove(self) -> None:
        for fd in self.open_files.values():
            os.close(fd)
        self.open_files.clear()
        remove_cgroup(list(set(self.dirs.values())))


class Limits:
    """The operator's upper bounds for one supervisor's sessions. The rlimits it sets on itself when it
    starts are inherited by every command it spawns (a launcher's supervisor sets no CPU limit)."""

    def __init__(self, limits: dict[str, Any], kind: str) -> None:
        self.limits = limits
        self.kind = kind
        self.cgroup: Cgroup | None = None
        self.baseline: dict[str, int] = {}
        self.counted: dict[str, int] = {}  # the counters at the last check
        self.changed = True  # since the check before it
        self.cpu_done = 0.0
        self.for_runs: list[tuple[int, tuple[int, int]]] = []  # rlimits set on each run's process, not ours

    def apply(self, name: str) -> None:
        """Make the cgroup, set the rlimits a supervisor may share with its runs (file size, open files) and
        work out those only runs get (memory without a cgroup, CPU time: the supervisor's own work, such as
        measuring a large directory for an hour, must not count against them)."""
        if not self.limits:
            return
        self.cgroup = Cgroup.create(self.limits, name)
        largest_file = min(int(self.limits["file_size_mb"]), int(self.limits.get("disk_mb") or 1 << 30))
        shared = [
            (resource.RLIMIT_FSIZE, largest_file * MIB),  # no file larger than the run's disk allowance
            (resource.RLIMIT_NOFILE, int(self.limits["open_files"])),
        ]
        own = []
        if self.cgroup is None:  # the cgroup caps a session's memory as a whole; without one, each process
            own.append((resource.RLIMIT_DATA, int(self.limits["memory_mb"]) * MIB))
        if self.kind != "launcher":
            own.append((resource.RLIMIT_CPU, int(self.limits["cpu_s"])))
        for which, value in shared:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(which, _capped(which, value))
        self.for_runs = [(which, _capped(which, value)) for which, value in own]

    def begin(self) -> None:
        self.baseline = self.cgroup.counters() if self.cgroup else {}
        self.cpu_done = _children_cpu_s()

    def check(self, tree: list[int], cpu: bool = True) -> tuple[str, str] | None:
        """A limit this run has hit, as (reason, what to say), or None (`cpu`: the CPU limit counts too). Called only
        with limits set (Monitor checks them only then; after_exit returns before)."""
        counters = self.cgroup.counters(cpu) if self.cgroup else {}
        self.changed, self.counted = counters != self.counted, counters
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


def _capped(which: int, value: int) -> tuple[int, int]:
    """(soft, hard) for an rlimit: `value`, within the hard limit we have. CPU: SIGXCPU at the limit (which says
    why), SIGKILL a second later if that is ignored."""
    _, hard = resource.getrlimit(which)
    cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
    return cap, cap + 1 if which == resource.RLIMIT_CPU and hard == resource.RLIM_INFINITY else cap


def _tail(path: str, size: int = 2048) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - size))
            return f.read()
    except OSError:
        return b""


def _cpu_s(pid: int) -> float:
    fields = stat_fields(pid)  # utime(11) stime(12) cutime(13) cstime(14), in clock ticks
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK") if len(fields) > 14 else 0.0


def _rss(pid: int) -> int:
    fields = stat_fields(pid)
    return int(fields[21]) * os.sysconf("SC_PAGE_SIZE") if len(fields) > 21 else 0


def _children_cpu_s() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system
