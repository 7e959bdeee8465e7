"""Restarting something that keeps ending (a reconnecting stream, a launcher's process), with an exponential wait
between runs that fail in a row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


async def keep_running(
    run_once: Callable[[], Awaitable[bool]],
    *,
    start_s: float,
    max_s: float,
    running: Callable[[], bool],
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> None:
    """Call `run_once` again and again while `running()`. After a run that went well (it returns True) the next
    starts `start_s` later; each run in a row that did not doubles the wait, up to `max_s`."""
    failures = 0
    while running():
        failures = 0 if await run_once() else min(failures + 1, 32)  # capped: the power never overflows
        if running():
            await sleep(min(max_s, start_s * 2 ** max(failures - 1, 0)))  # the first failure waits start_s too
