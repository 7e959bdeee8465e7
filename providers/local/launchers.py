"""Local launchers: long-lived services from the config file, kept running with backoff while their server runs.

Each run of a launcher is a session (origin `launcher:NAME`) whose supervisor ends it when the server goes,
even if the server is killed. A lock file per launcher, held by the server and by the run's supervisor until
the run is fully gone, means a launcher never runs twice on one data directory: a server that finds the lock
taken (another server runs it, or a crashed server's run is still ending) waits for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Any, Literal

import anyio

from providers.backoff import keep_running
from providers.errors import InvalidInput, ProviderError
from providers.local.config import LauncherConfig
from providers.local.events import EventLog
from providers.local.ids import PROVIDER
from providers.local.sessions import SessionManager
from providers.models import Launcher, LauncherList, RunningItem
from providers.values import now_ms

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 30.0  # a run this long resets the backoff
LOCK_RETRY_S = 2.0
SORT_KEYS = ("createdAt", "name", "id")
logger = logging.getLogger(__name__)


class LauncherSupervisor:
    def __init__(
        self, name: str, config: LauncherConfig, lock_dir: Path, sessions: SessionManager, events: EventLog
    ) -> None:
        self.name = name
        self.config = config
        self._lock_path = lock_dir / f"{name}.lock"
        self._sessions = sessions
        self._events = events
        self.state: str = "creating"
        self.previous: str | None = None
        self.session_id: str | None = None
        self.pid: int | None = None
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.last_error: str | None = None
        self.created_at = now_ms()
        self._stopping = False
        self.ports: dict[str, int] | None = None

    async def _set_state(self, state: str, previous: str | None = None) -> None:
        self.state, self.previous = state, previous
        await self._events.record(
            "launcher.state",
            {"launcher": self.name, "state": state, "previous": previous, "exit_code": self.last_exit_code},
        )

    async def run(self) -> None:
        lock = await self._take_lock()
        try:
            await self._keep_running(lock)
        finally:
            os.close(lock)

    async def _take_lock(self) -> int:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if not waiting:
                    waiting = True
                    self.last_error = "held by another runtimes-mcp server on this data directory; waiting for it"
                    await self._set_state("waiting")
                await anyio.sleep(LOCK_RETRY_S)
            except BaseException:
                os.close(fd)
                raise

    async def _keep_running(self, lock: int) -> None:
        await keep_running(
            lambda: self._run_once(lock),
            start_s=BACKOFF_START_S,
            max_s=BACKOFF_MAX_S,
            running=lambda: not self._stopping,
        )

    async def _run_once(self, lock: int) -> bool:
        """One run of the launcher's command, to its end. It went well if it ran long enough to count as stable
        (the wait before the next starts over)."""
        started = time.monotonic()
        try:
            live = await self._sessions.start(
                self.config.command,
                cwd=self.config.cwd,
                env=self.config.env,
                timeout_s=None,
                origin=f"launcher:{self.name}",
                on_server_exit="stop",
                lock_fd=lock,
                network=self.config.network,
                ports=self.config.ports,
            )
        except ProviderError as exc:
            self.last_error = exc.message
            logger.warning("runtimes-mcp: launcher %s could not start: %s", self.name, exc)
        else:
            self.session_id, self.pid, self.last_error = live.id, live.row.pid, None
            self.ports = self._sessions.network_of(live.id)[0]
            await self._set_state("active")
            await self._sessions.wait(live)
            self.last_exit_code, self.pid = live.row.exit_code, None
        if not self._stopping:
            self.restarts += 1
            await self._set_state("recreating", "exit")
        return time.monotonic() - started > STABLE_AFTER_S

    async def stop(self) -> None:
        self._stopping = True
        self.state = "deleting"
        if self.session_id is not None:
            with contextlib.suppress(ProviderError):
                await self._sessions.stop(self.session_id, "server_shutdown")

    def describe(self) -> Launcher:
        running = [RunningItem(id=self.session_id, type="session")] if self.pid and self.session_id else []
        raw: dict[str, Any] = {
            "command": self.config.command,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "pid": self.pid,
            "session_id": self.session_id,
            "error": self.last_error,
        }
        return Launcher(
            id=self.name,
            name=self.name,
            state=self.state,
            previous=self.previous,
            running=running,
            created_at=self.created_at,
            description=self.config.description or None,
            ports=self.ports if self.pid else None,
            raw=raw,
        )


def page_launchers(
    launchers: list[Launcher],
    *,
    offset: int | None,
    limit: int | None,
    ids: list[str] | None,
    search_name: str | None,
    sort: str | None,
    sort_direction: Literal["asc", "desc"] | None,
    provider: str = PROVIDER,
) -> LauncherList:
    """Decthings' paging and filter semantics over an in-memory list."""
    offset = 0 if offset is None else offset
    limit = 20 if limit is None else limit
    if offset < 0 or limit < 1:
        raise InvalidInput(provider, "offset must be >= 0 and limit >= 1")
    sort = sort or "createdAt"
    if sort not in SORT_KEYS:
        raise InvalidInput(provider, f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    selected = [
        item
        for item in launchers
        if (ids is None or item.id in ids) and (not search_name or search_name.lower() in item.name.lower())
    ]
    attr = {"createdAt": "created_at", "name": "name", "id": "id"}[sort]
    selected.sort(key=lambda item: (getattr(item, attr) or 0, item.name), reverse=sort_direction == "desc")
    return LauncherList(
        provider=provider,
        launchers=selected[offset : offset + limit],
        total=len(selected),
        offset=offset,
        limit=limit,
    )
