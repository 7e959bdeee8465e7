"""Restarting something that keeps ending (a reconnecting stream, a launcher's process), with tenacity's
exponential wait between runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from tenacity import AsyncRetrying, retry_if_result, wait_exponential


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
    while running():
        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=start_s, max=max_s),
            retry=retry_if_result(lambda went_well: not went_well and running()),
            sleep=sleep,
            reraise=True,
        )
        went_well = False
        async for attempt in retrying:
            with attempt:
                went_well = await run_once()
            if attempt.retry_state.outcome is not None and not attempt.retry_state.outcome.failed:
                attempt.retry_state.set_result(went_well)
        if went_well and running():
            await sleep(start_s)
