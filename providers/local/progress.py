"""What a caller following a run hears while it runs: progress notifications with its newest line."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from providers.local.output import last_line
from providers.local.session_records import SessionRecords
from providers.local.tables import SessionRow

PROGRESS_TICK_S = 1.0  # a follower hears at least this often that the run goes on
OUTPUT_POLL_S = 0.02  # while someone follows a run, its output is looked at this often
REPORT_GAP_S = 0.25  # and told at most this often

Progress = Callable[[float, float | None, str], Awaitable[None]]


class Reporter:
    """Progress for a caller following a run: a notification soon after the run prints something (its output
    is looked at every OUTPUT_POLL_S while someone follows), at most one every REPORT_GAP_S while it keeps
    printing, and one every PROGRESS_TICK_S when it prints nothing (it is still running)."""

    def __init__(self, records: SessionRecords, row: SessionRow, progress: Progress | None, started: float) -> None:
        self.records, self.row, self.progress, self.started = records, row, progress, started
        self.size = records.output_size(row.id)
        self.sent = time.monotonic()

    def next_at(self, deadline: float | None) -> float:
        """When to look again (the caller's deadline, if that comes first)."""
        if self.progress is None or self.records.elsewhere(self.row):
            at = time.monotonic() + PROGRESS_TICK_S
        else:
            at = max(time.monotonic() + OUTPUT_POLL_S, self.sent + REPORT_GAP_S)
        return at if deadline is None else min(at, deadline)

    async def report(self) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        size = self.records.output_size(self.row.id)
        if size == self.size and now < self.sent + PROGRESS_TICK_S:
            return
        self.size, self.sent = size, now
        elapsed = time.time() - self.started
        message = f"running {elapsed:.0f}s, {size} bytes of stdout"
        last = last_line(self.records.path(self.row.id, "stdout"))
        await self.progress(elapsed, self.row.timeout_s, f"{message}; last line: {last}" if last else message)
