"""A remote provider's call against bare httpx, and the memory a huge answer costs (both to a fake Sprites API on
loopback, tests/fakes.py)."""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from pathlib import Path

import anyio
import httpx

from bench.common import OURS, Row, StdioPeer, owned, peak_kib, ratio_row, rss_kib


def overhead(quick: bool) -> list[Row]:
    from providers.sprites.client import SpritesClient
    from tests.fakes import Reply, fake_api

    n = 300 if quick else 1000

    async def measure(url: str) -> tuple[float, float, str]:
        """Median ms per call of each, timed call by call in alternating rounds of 50 (the first round warms)."""
        ours: list[list[float]] = []
        bare_times: list[list[float]] = []
        client = SpritesClient(base_url=url, token="t")
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer t"}, timeout=30) as bare:
            try:
                for _ in range(n // 50):
                    bare_times.append([])
                    for _ in range(50):
                        started = time.perf_counter()
                        (await bare.get("/v1/sprites/box/exec")).json()
                        bare_times[-1].append((time.perf_counter() - started) * 1000)
                    ours.append([])
                    for _ in range(50):
                        started = time.perf_counter()
                        await client.list_sessions("box")
                        ours[-1].append((time.perf_counter() - started) * 1000)
            finally:
                await client.aclose()
        deltas = [statistics.median(a) - statistics.median(b) for a, b in zip(ours[1:], bare_times[1:], strict=True)]
        spread = f"{min(deltas):+.3f}..{max(deltas):+.3f} ms ({len(deltas)})"
        flat = [[v for part in runs[1:] for v in part] for runs in (ours, bare_times)]
        return statistics.median(flat[0]), statistics.median(flat[1]), spread

    with fake_api() as api:
        api.routes[("GET", "/v1/sprites/box/exec")] = Reply(
            body={
                "sessions": [
                    {"id": i, "command": "python server.py", "created": "2026-01-15T10:30:00Z", "is_active": i % 2 == 0}
                    for i in range(5)
                ]
            }
        )
        ours_ms, bare_ms, spread = anyio.run(measure, api.url())
    delta = ours_ms - bare_ms
    return [
        Row(
            f"remote provider call (Sprites list) vs bare httpx, p50 of {n} calls",
            ours_ms,
            bare_ms,
            "ms",
            f"<= +1 ms (measured {delta:+.3f} ms)",
            delta <= 1.0,
            spread,
        )
    ]


def answer_memory(quick: bool) -> list[Row]:
    """Peak RSS of a stdio server while a provider answers 100 MB, over its level before the call, against the
    answer cap: the answer is read up to the cap and refused, never held whole."""
    from providers.http import MAX_RESPONSE_BYTES
    from tests.fakes import Reply, fake_api

    # The fake reports the connection the server drops (from a thread of its own, at any time until it stops).
    with owned() as mine, contextlib.redirect_stderr(io.StringIO()), fake_api() as api:
        api.routes[("GET", "/v1/sprites/box/exec")] = Reply(body=b'{"sessions": ["' + b"x" * 100_000_000 + b'"]}')
        env = {
            "RUNTIMES_MCP_DATA_DIR": str(mine.directory("answer")),
            "RUNTIMES_MCP_ON_EXIT": "stop",
            "SPRITES_TOKEN": "t",
            "SPRITES_BASE_URL": api.url(),
        }
        peer = StdioPeer(OURS, env, mine).initialize()
        peer.call("listSessions", {"provider": "local"})
        Path(f"/proc/{peer.pid}/clear_refs").write_text("5")  # the peak starts from here
        before = rss_kib(peer.pid)
        arguments = {"provider": "sprites", "sprite": "box"}
        answer = peer.request("tools/call", {"name": "listSessions", "arguments": arguments})
        rise = (peak_kib(peer.pid) - before) / 1024
        peer.close()
    if not answer["result"]["isError"]:
        raise RuntimeError(f"a 100 MB answer was not refused: {str(answer)[:300]}")
    cap = MAX_RESPONSE_BYTES / (1 << 20)
    return [
        ratio_row("remote answer of 100 MB (refused): peak RSS rise (vs the 16 MiB answer cap)", rise, cap, "MiB", 2)
    ]
