"""Work in flight, counted per key, that a caller may wait for to be done."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

import anyio


class Pending:
    def __init__(self) -> None:
        self._count: Counter[Hashable] = Counter()
        self._done = anyio.Event()

    def add(self, key: Hashable) -> None:
        self._count[key] += 1

    def done(self, key: Hashable) -> None:
        self._count[key] -= 1
        if self._count[key] <= 0:
            del self._count[key]
        self._done.set()
        self._done = anyio.Event()

    async def settled(self, key: Hashable) -> None:
        """Return once nothing is in flight for `key` (at once when nothing is)."""
        while key in self._count:
            await self._done.wait()
