"""What a supervisor watches while a run runs: its output against the cap, its limits, its directory's disk.

Each check has its own schedule, and a check that finds nothing new waits longer before the next: an idle
session (a server, a `sleep`) costs its supervisor a wake-up or two a second, so a thousand of them do not
crowd the machine, while a run that writes fast is looked at every tenth of a second.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from .limits import MIB, Limits
from .records import STREAMS, descendants
from .trees import Moved, TooMany, tree_size

FIRST_S = 0.1  # the first look, and the shortest gap between two
OUTPUT_MOST_S = 1.0  # output that has not grown is looked at this seldom at most
LIMITS_S = 0.5  # memory, processes and CPU: counters the kernel keeps (or, without cgroups, the process tree)
# With a cgroup the kernel enforces memory and processes itself, so counters that stay put are read this seldom at
# most (a fork bomb without one must be caught within LIMITS_S).
LIMITS_MOST_S = 2.0
DISK_MOST_S = 2.0  # a directory that has not grown is measured this seldom at most
STARTS_WITH = 64 * 1024  # a run's own directory before it writes much (its blocks, a few small files)
DISK_SHARE = 10  # and at most a tenth of the time goes to measuring it (a large tree is measured less often)


class Backoff:
    """When to look next: soon after a change, less and less often while nothing changes."""

    def __init__(self, start: float, most: float) -> None:
        self.gap = FIRST_S
        self.most = most
        self.at = start + FIRST_S

    def done(self, now: float, changed: bool, least: float = FIRST_S) -> None:
        self.gap = min(self.most, max(least, FIRST_S if changed else self.gap * 2))
        self.at = now + self.gap


class Monitor:
    def __init__(self, job: dict[str, Any], limits: Limits, streams: list[str], started: float) -> None:
        self.cap: int | None = job.get("max_output_bytes")
        disk = job.get("disk") or {}
        self.disk_path: str | None = disk.get("path")
        self.disk_cap: int = int(disk.get("max_bytes") or 0)
        self.disk_setting = str(disk.get("setting"))
        self.disk_at_end = bool(disk.get("at_end"))
        self.files = int(limits.limits.get("files") or 1_000_000)
        self.min_free = int(limits.limits.get("min_free_mb") or 0) * MIB
        # what the directory held when last measured; a run's own starts (nearly) empty, a workspace where it is
        self.grown_from = STARTS_WITH if self.disk_at_end else None
        self.limits = limits
        self.streams = streams
        self.sizes = [0, 0]
        self.disk_bytes = 0
        self.cut: list[str] = []  # the streams that passed the cap
        self.output = Backoff(started, OUTPUT_MOST_S) if self.cap else None
        self.disk = Backoff(started, DISK_MOST_S) if self.disk_path else None
        most = LIMITS_S if limits.cgroup is None else LIMITS_MOST_S
        self.limit_checks = Backoff(started, most) if limits.limits else None

    def next_at(self) -> float | None:
        times = [b.at for b in (self.limit_checks, self.output, self.disk) if b is not None]
        return min(times) if times else None

    def check(self, now: float) -> tuple[str, str] | None:
        """A cap or limit the run has passed, as (reason, what to say), or None; checks only what is due."""
        if self.output is not None and now >= self.output.at:
            hit = self._output(now)
            if hit is not None:
                return hit
        if self.limit_checks is not None and now >= self.limit_checks.at:
            tree = [] if self.limits.cgroup is not None else descendants(os.getpid())  # the kernel counts
            hit = self.limits.check(tree)
            if hit is not None:
                return hit
            self.limit_checks.done(now, self.limits.changed, least=LIMITS_S)
        if self.disk is not None and now >= self.disk.at:
            return self._disk(now)
        return None

    def final(self, disk: bool) -> tuple[str, str] | None:
        """The output and (with `disk`) disk checks once more as the run ends: it may have ended before the
        first, or written much since the last. A run's own directory holds only what it wrote, so its walk
        costs what the run did; a workspace's would cost every run what all runs before left (and a quick run
        would fail for what they left): its size is recorded after the run, and a later write or run that finds
        it over is refused or ended."""
        now = time.monotonic()
        hit = self._output(now) if self.output is not None else None
        if hit is None and disk and self.disk is not None and self.disk_at_end:
            hit = self._disk(now)
        return hit

    def _disk(self, now: float) -> tuple[str, str] | None:
        assert self.disk is not None
        try:
            size, _ = tree_size(str(self.disk_path), most=self.files)
        except TooMany:
            return "disk_limit", f"its directory holds more than {self.files} files (local.limits.files)"
        except Moved:  # each walk met a directory moved away under it: what it holds cannot be bounded
            return "disk_limit", f"its directory kept moving while measured ({self.disk_setting} cannot be checked)"
        took = time.monotonic() - now
        self.disk.done(time.monotonic(), size != self.disk_bytes, least=took * DISK_SHARE)
        grew = self.grown_from is not None and size > self.grown_from
        self.grown_from = self.disk_bytes = size
        if size > self.disk_cap:
            cap = self.disk_cap // MIB
            return "disk_limit", f"its directory took {size // MIB} MiB, over its {cap} MiB ({self.disk_setting})"
        if grew and self.min_free:  # runs at once add up: none may fill the disk the server and the host need
            with contextlib.suppress(OSError):
                disk = os.statvfs(str(self.disk_path))
                if (free := disk.f_bavail * disk.f_frsize) < self.min_free:
                    limit = self.min_free // MIB
                    return (
                        "disk_limit",
                        f"its disk has {free // MIB} MiB free, under {limit} MiB (local.limits.min_free_mb)",
                    )
        return None

    def _output(self, now: float) -> tuple[str, str] | None:
        assert self.output is not None and self.cap is not None
        sizes = [output_size(path) for path in self.streams]
        self.output.done(now, sizes != self.sizes)
        self.sizes = sizes
        self.cut = [stream for stream, size in zip(STREAMS, sizes, strict=True) if size > self.cap]
        if self.cut:
            return "output_limit", f"{' and '.join(self.cut)} passed {self.cap // MIB} MiB (local.max_output_mb)"
        return None


def output_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def cut_output(path: str, cap: int) -> int:
    """Cut a stream the run wrote past its cap back to the cap, saying so at the end; its size then."""
    with contextlib.suppress(OSError):
        if os.stat(path).st_size > cap:
            with open(path, "r+b") as f:
                f.truncate(cap)
                f.seek(cap)
                f.write(f"\n[runtimes-mcp: output cut here at {cap} bytes (local.max_output_mb)]\n".encode())
    return output_size(path)
