"""Local launchers: long-lived services from the config file, kept running with backoff."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Literal

import anyio

from providers.errors import InvalidInput
from providers.local.config import LauncherConfig
from providers.local.processes import Child, child_env, spawn_group, terminate_group
from providers.local.sessions import PROVIDER, EmitEvent
from providers.models import Launcher, LauncherList, RunningItem

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 30.0  # a run this long resets the backoff
SORT_KEYS = ("createdAt", "name", "id")


class LauncherSupervisor:
    def __init__(self, name: str, config: LauncherConfig, directory: Path, emit: EmitEvent) -> None:
        self.name = name
        self.config = config
        self._dir = directory
        self._emit = emit
        self.state: str = "creating"
        self.previous: str | None = None
        self.process: Child | None = None
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.created_at = int(time.time() * 1000)
        self._stopping = False

    async def _set_state(self, state: str, previous: str | None = None) -> None:
        self.state, self.previous = state, previous
        await self._emit(
            "launcher.state",
            {"launcher": self.name, "state": state, "previous": previous, "exit_code": self.last_exit_code},
        )

    async def run(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        backoff = BACKOFF_START_S
        while not self._stopping:
            workdir = Path(self.config.cwd).expanduser() if self.config.cwd else self._dir
            with (self._dir / "stdout").open("ab") as out, (self._dir / "stderr").open("ab") as err:
                self.process = await spawn_group(
                    self.config.command,
                    cwd=workdir,
                    env=child_env(self.config.env),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                )
            started = time.monotonic()
            await self._set_state("active")
            try:
                await self.process.wait()
            finally:
                with anyio.CancelScope(shield=True):
                    await terminate_group(self.process.pid, self.process)
            self.last_exit_code = self.process.returncode
            self.process = None
            if self._stopping:
                break
            if time.monotonic() - started > STABLE_AFTER_S:
                backoff = BACKOFF_START_S
            self.restarts += 1
            await self._set_state("recreating", "exit")
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def stop(self) -> None:
        self._stopping = True
        self.state = "deleting"
        if self.process is not None:
            await terminate_group(self.process.pid, self.process)

    def describe(self) -> Launcher:
        running = [RunningItem(id=f"pid-{self.process.pid}", type="spawned")] if self.process else []
        raw: dict[str, Any] = {
            "command": self.config.command,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "pid": self.process.pid if self.process else None,
            "output_dir": str(self._dir),
        }
        return Launcher(
            id=self.name,
            name=self.name,
            state=self.state,
            previous=self.previous,
            running=running,
            created_at=self.created_at,
            description=self.config.description or None,
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
