"""Group commit: writes are *submitted*, and `flush()` commits everything pending in one transaction. Concurrent
writers share a commit, a caller that needs durability awaits the flush (storeEvent, a finished run), bookkeeping
rides along with the next one."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from providers.local.database import Connection, Database, StoreError
from providers.local.tables import SessionRow, Sql

# Background commits wait this long for company: in a burst of short runs one commit records many.
BACKGROUND_FLUSH_DELAY_S = 0.01
MAX_KEPT_STATEMENTS = 100_000  # writes kept for a later commit while the store refuses them (the newest)
logger = logging.getLogger(__name__)
# A write: SQL and its parameters, or a function run inside the commit's transaction.
Statement = Sql | Callable[[Connection], Any]
T = TypeVar("T")


@dataclass
class _Batch:
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


class GroupCommit:
    """Writes to a Database (database.py) from the event loop, committed in groups; every database error leaves
    as a StoreError that says what to do."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._write_lock = anyio.Lock()
        # Writes to commit, each with the session whose record it writes: a session's record is kept for the
        # next commit when this one fails for now (the disk is full), anything else is dropped with the error.
        self._pending: list[tuple[Statement, str | None]] = []
        # Sessions whose latest state is not committed yet: reads include them, so that none disappears.
        self._unsaved: dict[str, SessionRow] = {}
        self._waiters: list[_Batch] = []
        self._flushing = False
        self._flush_scheduled = False
        self._after_flush: list[Callable[[], Awaitable[None]]] = []

    # --- writing ----------------------------------------------------------------------------------
    def submit(self, sql: str, params: tuple[Any, ...], session: SessionRow | None = None) -> None:
        """Queue a write (of `session`'s record); the next flush (any caller's) commits it."""
        self._pending.append(((sql, params), self._keep(session)))

    def submit_work(self, work: Callable[[Connection], Any], session: SessionRow | None = None) -> None:
        """Queue a function to run inside the next flush's transaction."""
        self._pending.append((work, self._keep(session)))

    def _keep(self, session: SessionRow | None) -> str | None:
        if session is None:
            return None
        self._unsaved[session.id] = session
        return session.id

    async def flush(self, background: bool = False) -> None:
        """Commit everything submitted so far; return when it is durable (or raise a StoreError). `background`:
        the commit is made off the event loop (see Database.commit)."""
        if not self._pending and not self._flushing:
            return
        batch = _Batch()
        self._waiters.append(batch)
        if not self._flushing:
            self._flushing = True
            # Shielded: once statements are taken from the queue their waiters must hear how it went.
            with anyio.CancelScope(shield=True):
                try:
                    while self._waiters:
                        await anyio.lowlevel.checkpoint()  # every task ready to write joins this batch
                        pending, self._pending = self._pending, []
                        waiters, self._waiters = self._waiters, []
                        try:
                            await self._commit(_executing([statement for statement, _ in pending]), background)
                        except Exception as exc:
                            error = self.db.error(exc)
                            if error is None:
                                raise
                            if error.lasting:  # sessions' records are kept, in order, for the next commit
                                self._pending[:0] = [p for p in pending if p[1] is not None][-MAX_KEPT_STATEMENTS:]
                            for waiter in waiters:
                                waiter.error = error
                        else:
                            still = {session_id for _, session_id in self._pending}
                            for _, session_id in pending:
                                if session_id is not None and session_id not in still:
                                    self._unsaved.pop(session_id, None)
                        for waiter in waiters:
                            waiter.done.set()
                finally:
                    self._flushing = False
        await batch.done.wait()
        if batch.error is not None:
            raise batch.error

    def flush_soon(self, task_group: Any, after: Callable[[], Awaitable[None]] | None = None) -> None:
        """Commit what is pending a little later, in the background, together with whatever else comes in
        meanwhile (a burst of runs shares one commit); then run `after`. A failure is logged, not raised."""
        if after is not None:
            self._after_flush.append(after)
        if self._flush_scheduled:
            return
        self._flush_scheduled = True

        async def later() -> None:
            await anyio.sleep(BACKGROUND_FLUSH_DELAY_S)
            self._flush_scheduled = False
            callbacks, self._after_flush = self._after_flush, []
            try:
                await self.flush(background=True)
            except StoreError as exc:
                logger.warning("runtimes-mcp: %s", exc)
                return
            for callback in callbacks:
                await callback()

        task_group.start_soon(later)

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction of its own (after what is pending), and return its result."""
        await self.flush()
        with self.worded():
            return await self._commit(work)

    async def _commit(self, work: Callable[[Connection], T], background: bool = False) -> T:
        async with self._write_lock:
            return await self.db.commit(work, background)

    async def _rows(
        self, sql: str, params: Sequence[Any] = (), convert: Callable[[Sequence[Any]], Any] | None = None
    ) -> list[Any]:
        with self.worded():
            return await self.db.rows(sql, tuple(params), convert)

    @contextlib.contextmanager
    def worded(self) -> Iterator[None]:
        """A failure of the database leaves as the StoreError that says what to do."""
        try:
            yield
        except Exception as exc:
            error = self.db.error(exc)
            if error is None:
                raise
            raise error from None


def _executing(statements: list[Statement]) -> Callable[[Connection], None]:
    def work(db: Connection) -> None:
        for statement in statements:
            if callable(statement):
                statement(db)
            else:
                db.execute(*statement)

    return work
