"""What every bench module shares: the row a figure becomes, a raw JSON-RPC client over stdio, interleaved rounds,
percentiles, and the processes and directories a bench starts (its own, and cleaned up: other runtimes-mcp
servers may be running on this machine, and are never touched)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
OURS = [PY, "-m", "server.cli"]
SDK_FLOOR = [PY, str(ROOT / "bench" / "floor_sdk.py")]
RAW_FLOOR = [PY, str(ROOT / "bench" / "floor_raw.py")]
INIT_PARAMS: dict[str, Any] = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "bench", "version": "1"},
}


# --- results ----------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One figure: ours against its floor (measured in the same run), and a target (ok None: information)."""

    metric: str
    ours: float
    floor: float | None
    unit: str
    target: str
    ok: bool | None
    spread: str = ""  # how the ratio moved from round to round (the host's noise), where measured in rounds

    def cells(self) -> list[str]:
        ratio = f"{self.ours / self.floor:.2f}x" if self.floor else "-"
        floor = f"{self.floor:,.2f} {self.unit}" if self.floor is not None else "-"
        verdict = {True: "meets", False: "MISSES", None: "info"}[self.ok]
        return [self.metric, f"{self.ours:,.2f} {self.unit}", floor, ratio, self.spread or "-", self.target, verdict]


HEADER = ["metric", "ours", "floor", "ratio", "per round", "target", "verdict"]


def ratio_row(
    metric: str,
    ours: float,
    floor: float,
    unit: str,
    limit: float | None,
    higher_is_better: bool = False,
    spread: str = "",
) -> Row:
    """A row judged by ours / floor against `limit` (None: information)."""
    if limit is None:
        return Row(metric, ours, floor, unit, "info", None, spread)
    ratio = ours / floor
    ok = ratio >= limit if higher_is_better else ratio <= limit
    return Row(metric, ours, floor, unit, f"{'>=' if higher_is_better else '<='} {limit}x floor", ok, spread)


def info(metric: str, ours: float, unit: str, floor: float | None = None, spread: str = "") -> Row:
    return Row(metric, ours, floor, unit, "info", None, spread)


def skipped(metric: str, why: str) -> Row:
    return Row(metric, 0, None, "", f"skipped: {why}", None)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


p50 = statistics.median


class Rounds:
    """Samples of several measures taken in interleaved rounds (each measure idle while another runs, so that the
    host's noise falls on all alike): the p50 over all rounds, and how a ratio moved from round to round."""

    def __init__(self) -> None:
        self.samples: dict[str, list[list[float]]] = {}

    def add(self, name: str, values: list[float]) -> None:
        self.samples.setdefault(name, []).append(values)

    def all(self, name: str) -> list[float]:
        return [v for part in self.samples.get(name, []) for v in part]

    def p50(self, name: str) -> float:
        return statistics.median(self.all(name))

    def spread(self, ours: str, floor: str) -> str:
        """The lowest and highest ratio of the per-round p50s, e.g. "1.05-1.31x (25)"."""
        pairs = list(zip(self.samples.get(ours, []), self.samples.get(floor, []), strict=False))
        ratios = [statistics.median(a) / statistics.median(b) for a, b in pairs if a and b]
        if len(ratios) < 2:
            return ""
        return f"{min(ratios):.2f}-{max(ratios):.2f}x ({len(ratios)})"


# --- a raw JSON-RPC client over stdio -----------------------------------------------------------------------
class StdioPeer:
    """A server started over stdio, driven by hand: one request at a time, notifications kept with the time they
    arrived (`time.time()`, the clock a run's `date` prints)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, owned: Owned | None = None) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.owned = owned
        if owned is not None:
            owned.processes.append(self.process)
        self._id = 0
        self.notifications: list[tuple[float, dict[str, Any]]] = []
        self.keep_notifications = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin
        self.process.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        self.send({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or {}})
        assert self.process.stdout
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"{method}: the server closed the pipe")
            answer: dict[str, Any] = json.loads(line)
            if answer.get("id") == self._id:
                return answer
            if self.keep_notifications and "method" in answer:
                self.notifications.append((time.time(), answer))

    def initialize(self) -> StdioPeer:
        self.request("initialize", INIT_PARAMS)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    def call(self, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"name": tool, "arguments": arguments}
        if meta:
            params["_meta"] = meta
        answer = self.request("tools/call", params)
        if "error" in answer or answer["result"].get("isError"):
            raise RuntimeError(f"{tool} failed: {str(answer)[:300]}")
        return answer

    def structured(self, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(self.call(tool, arguments, meta)["result"]["structuredContent"])

    def close(self, wait_s: float = 60) -> None:
        """Close its stdin (it exits) and wait; the processes it started are left to `Owned.clean`."""
        if self.process.poll() is None:
            if self.owned is not None:
                self.owned.remember(self.process.pid)
            assert self.process.stdin
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def timed_calls(peer: StdioPeer, tool: str, arguments: dict[str, Any], n: int, warmup: int = 0) -> list[float]:
    """`n` timed calls (ms), after `warmup` untimed ones (the first calls to a server that sat idle while another
    was measured run ~2x slower: cold caches, a sleeping process)."""
    for _ in range(warmup):
        peer.call(tool, arguments)
    out = []
    for _ in range(n):
        started = time.perf_counter()
        peer.call(tool, arguments)
        out.append((time.perf_counter() - started) * 1000)
    return out


def timed(action: Callable[[], object], n: int, warmup: int = 0) -> list[float]:
    """`n` timed runs (ms) of `action`, after `warmup` untimed ones."""
    for _ in range(warmup):
        action()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        action()
        out.append((time.perf_counter() - started) * 1000)
    return out


# --- processes and memory ---------------------------------------------------------------------------------
def start_ticks(pid: int) -> int | None:
    """A process's start time (clock ticks since boot): with its pid, who it is (pids are reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """Every live descendant of `pid` (pid -> start ticks), from one pass over /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X"):
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            ticks = start_ticks(child)
            if ticks is not None and child not in found:
                found[child] = ticks
                todo.append(child)
    return found


def tree_cpu(pid: int) -> dict[tuple[int, int], int]:
    """(pid, start ticks) -> CPU ticks (user + system, with those of its children that ended and were waited
    for: a run's command counts in its waiter's) of a process and each of its live descendants."""
    out = {}
    for member in [pid, *descendants(pid)]:
        try:
            stat = Path(f"/proc/{member}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        out[member, int(fields[19])] = sum(int(field) for field in fields[11:15])
    return out


def cpu_used_ms(before: dict[tuple[int, int], int], after: dict[tuple[int, int], int]) -> float:
    """CPU ms used between two tree_cpu() readings by the processes alive at the second (a process that ended
    in between is left out: a supervisor retiring after its 200th run)."""
    ticks = sum(used - before.get(member, 0) for member, used in after.items())
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def memory_kib(pid: int) -> dict[str, int]:
    """Pss, Rss, Private_Clean, Private_Dirty … of a process, in KiB (/proc/PID/smaps_rollup); {} once gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name] = int(parts[0])
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def become_subreaper() -> None:
    """Make this process the one that orphans among its descendants are given to (a supervisor outlives its
    server, and is then nobody's child): what the bench started stays in its tree, where Owned finds it."""
    from providers.local.supervisor import records

    records.prctl(records.PR_SET_CHILD_SUBREAPER, 1)


def reap_orphans() -> None:
    """Collect the exit of orphans given to this process (see become_subreaper); its own subprocesses are waited
    for by their Popen objects before this runs."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@dataclass
class Owned:
    """What one bench step started: its servers (and, through them, their zygotes, supervisors and runs) and its
    directories. `clean()` ends what is left of them, by identity (a reused pid is never signalled), and removes
    the directories. Steps run one after another, so that whatever descends from this process at the end of a
    step is that step's."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    known: dict[int, int] = field(default_factory=dict)  # pid -> start ticks, of every descendant seen
    directories: list[Path] = field(default_factory=list)

    def directory(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
        self.directories.append(path)
        return path

    def remember(self, pid: int) -> None:
        """Note a server's descendants now (a supervisor outlives its server: it is then nobody's child, unless
        this process is a subreaper)."""
        self.known.update(descendants(pid))

    def leftovers(self) -> dict[int, int]:
        alive = {pid: ticks for pid, ticks in self.known.items() if start_ticks(pid) == ticks}
        return alive | descendants(os.getpid())

    def clean(self, grace_s: float = 10.0) -> int:
        """Stop every process still running and remove the directories; how many processes had to be killed."""
        for process in self.processes:
            if process.poll() is None:
                self.remember(process.pid)
                process.terminate()
        for process in self.processes:
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        deadline = time.monotonic() + grace_s
        while self.leftovers() and time.monotonic() < deadline:
            reap_orphans()
            time.sleep(0.05)
        killed = self.leftovers()
        for pid in killed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if killed:
            _remove_cgroups(killed)
        reap_orphans()
        for path in self.directories:
            shutil.rmtree(path, ignore_errors=True)
        return len(killed)


def _remove_cgroups(killed: dict[int, int]) -> None:
    """The cgroups of supervisors killed here (named after them; each removes its own when it can)."""
    from providers.local.supervisor.limits import cgroup_dirs, cgroup_name, remove_cgroup
    from providers.local.supervisor.records import boot_id

    time.sleep(0.2)  # the kernel empties a cgroup once its processes are reaped
    for pid, ticks in killed.items():
        remove_cgroup(list(cgroup_dirs(cgroup_name(f"{boot_id()}:{pid}:{ticks}"), None).values()))


@contextlib.contextmanager
def owned() -> Iterator[Owned]:
    """A bench step's processes and directories, cleaned up however it ends; a leftover is reported."""
    mine = Owned()
    try:
        yield mine
    finally:
        killed = mine.clean()
        if killed:
            print(f"bench: {killed} process(es) had to be killed at the end of a step", file=sys.stderr)
