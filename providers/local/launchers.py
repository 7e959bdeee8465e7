"""Local launchers: long-lived services from the config file, services of the data directory.

A serving server (stdio or HTTP, not `runtimes-mcp call`) starts each launcher unless it already runs, and
keeps it running with backoff. A run of a launcher is a session (origin `launcher:NAME`) that lives while any
serving server is on the data directory: each holds `serving.lock` shared, and when the server that started a
run goes (exits or is killed), the run's supervisor ends it only once no serving server is left (it then takes
that lock). Who stops a launcher, then: the last serving server to go, by going. A lock file per launcher,
held by the server that starts it and by the run's supervisor until the run is gone, means a launcher never
runs twice: another serving server waits for it, and starts it again if it ends.
"""

from __future__ import annotations

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
    """One configured launcher, as this server sees it: the one it runs (`run`), or the one another serving
    server runs, or none (described from the records)."""

    def __init__(
        self, name: str, config: LauncherConfig, lock_dir: Path, sessions: SessionManager, events: EventLog
    ) -> None:
        self.name = name
        self.config = config
        self._lock_path = lock_dir / f"{name}.lock"
        self._sessions = sessions
        self._events = events
        self.state = "stopped"  # starting, running, waiting (for another server's run), failed, stopped
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.last_error: str | None = None
        self.created_at = now_ms()
        self._stopping = False

    async def _set_state(self, state: str) -> None:
        self.state = state
        await self._events.record(
            "launcher.state", {"launcher": self.name, "state": state, "exit_code": self.last_exit_code}
        )

    async def run(self) -> None:
        lock = await self._take_lock()
        try:
            await keep_running(
                lambda: self._run_once(lock),
                start_s=BACKOFF_START_S,
                max_s=BACKOFF_MAX_S,
                running=lambda: not self._stopping,
            )
        finally:
            os.close(lock)

    async def _take_lock(self) -> int:
        """The launcher's lock: ours at once, or once the run another server started has ended."""
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
                    await self._set_state("waiting")
                await anyio.sleep(LOCK_RETRY_S)
            except BaseException:
                os.close(fd)
                raise

    async def _run_once(self, lock: int) -> bool:
        """One run of the launcher's command, to its end. It went well if it ran long enough to count as stable
        (the wait before the next starts over)."""
        started = time.monotonic()
        await self._set_state("starting")
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
            await self._set_state("failed")
        else:
            self.last_error = None
            await self._set_state("running")
            await self._sessions.wait(live)
            self.last_exit_code = live.row.exit_code
            self.last_error = f"exited ({live.row.end_reason}, exit code {live.row.exit_code})"
            if not self._stopping:
                self.restarts += 1
                await self._set_state("starting")
        return time.monotonic() - started > STABLE_AFTER_S

    def stop(self) -> None:
        """This server is going: it restarts the launcher no more. Its run lives on while another serving server
        is on the data directory; its supervisor ends it once none is."""
        self._stopping = True

    async def describe(self) -> Launcher:
        """Its state: from this server's own run, or from the newest run's record (another server's, or none)."""
        row = await self._sessions.latest(f"launcher:{self.name}")
        running = row is not None and row.state == "running"
        # Its record decides once the command runs (ours may not have heard yet); otherwise our own progress.
        state = "running" if running else self.state if self.state in ("starting", "failed") else "stopped"
        ports = self._sessions.network_of(row.id)[0] if running and row is not None else None
        raw: dict[str, Any] = {
            "command": self.config.command,
            "restarts": self.restarts,
            "last_exit_code": row.exit_code if row is not None and not running else self.last_exit_code,
            "pid": row.pid if running and row is not None else None,
            "session_id": row.id if row is not None else None,
            "error": self.last_error if state != "running" else None,
        }
        return Launcher(
            id=self.name,
            name=self.name,
            state=state,
            running=[RunningItem(id=row.id, type="session")] if running and row is not None else [],
            created_at=self.created_at,
            description=self.config.description or None,
            ports=ports,
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
) -> LauncherList:
    """Decthings' paging and filter semantics over an in-memory list."""
    offset = 0 if offset is None else offset
    limit = 20 if limit is None else limit
    if offset < 0 or limit < 1:
        raise InvalidInput(PROVIDER, "offset must be >= 0 and limit >= 1")
    sort = sort or "createdAt"
    if sort not in SORT_KEYS:
        raise InvalidInput(PROVIDER, f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    selected = [
        item
        for item in launchers
        if (ids is None or item.id in ids) and (not search_name or search_name.lower() in item.name.lower())
    ]
    attr = {"createdAt": "created_at", "name": "name", "id": "id"}[sort]
    selected.sort(key=lambda item: (getattr(item, attr) or 0, item.name), reverse=sort_direction == "desc")
    return LauncherList(
        provider=PROVIDER,
        launchers=selected[offset : offset + limit],
        total=len(selected),
        offset=offset,
        limit=limit,
    )
