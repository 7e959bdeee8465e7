"""Local routines: named commands from the config file, run as sessions, idempotent by key."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from providers.errors import InvalidInput, NotFound
from providers.local.config import RoutineConfig
from providers.local.ids import PROVIDER, new_id
from providers.local.jobs import WorkDir
from providers.local.sessions import SessionManager
from providers.local.store import Store
from providers.local.tables import RunRow
from providers.models import RoutineRun
from providers.services import caller
from providers.values import iso_time

# Session state -> routine run status (ArchAstro's vocabulary).
RUN_STATUS = {"running": "running", "completed": "completed"}
# A claimed key whose run never got a session (its server died in between) is given up after this.
NEVER_STARTED_S = 60.0


def digest(message: str) -> str:
    return hashlib.sha256(message.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class Routines:
    def __init__(self, routines: dict[str, RoutineConfig], sessions: SessionManager, store: Store) -> None:
        self.configs = routines
        self._sessions = sessions
        self._store = store

    async def invoke(
        self,
        routine: str,
        message: str,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        wait_s: float | None = None,
        workspace: WorkDir | None = None,
    ) -> RoutineRun:
        cfg = self.configs.get(routine)
        if cfg is None:
            known = ", ".join(sorted(self.configs)) or "none"
            raise NotFound(
                PROVIDER,
                f"no local routine {routine!r} (configured: {known})",
                hint="Add a [local.routines.NAME] table with a command to the config file and restart.",
            )
        if idempotency_key is not None and not idempotency_key.strip():
            raise InvalidInput(PROVIDER, "idempotency_key is empty; omit it or pass a non-empty key")
        run = RunRow(
            new_id("run"), routine, idempotency_key, digest(message), None, metadata, time.time(), caller().owner
        )
        holder, _ = await self._store.claim_run(run, NEVER_STARTED_S)  # without a key: no holder
        if holder is not None:
            if holder.message_digest not in (None, run.message_digest):
                raise InvalidInput(
                    PROVIDER,
                    f"idempotency_key {idempotency_key!r} already belongs to run {holder.id} of {routine!r}, "
                    "which was invoked with a different message",
                    hint="Use a new key for new work; repeat the same message to get that run back.",
                )
            return await self.describe(holder, deduplicated=True)
        env = {
            **cfg.env,
            "ROUTINE_NAME": routine,
            "ROUTINE_RUN_ID": run.id,
            "ROUTINE_MESSAGE": message,
            "ROUTINE_METADATA": json.dumps(metadata or {}),
        }
        try:
            live = await self._sessions.start(
                cfg.command,
                cwd=cfg.cwd if workspace is None else None,
                workspace=workspace,
                env=env,
                stdin=message,
                timeout_s=cfg.timeout_s,
                origin=f"routine:{routine}",
                durable=False,
                network=cfg.network,
            )
        except BaseException:
            self._store.release_key(run.id)  # it never ran: a retry must be able to run it
            await self._store.flush()
            raise
        self._store.set_run_session(run.id, live.id)
        run.session_id = live.id
        if not await self._sessions.wait(live, wait_s):
            described = await self.describe(run)
            described.message = (
                f"still running after {wait_s:g} s; follow it with getSession session_id={live.id} wait_s=30 "
                "(or getRoutineRun run_id)"
            )
            return described
        return await self.describe(run)

    async def get(self, run_id: str) -> RoutineRun:
        run = await self._store.get_run(run_id, caller())
        if run is None:
            raise NotFound(PROVIDER, f"no local routine run {run_id!r}")
        return await self.describe(run)

    async def describe(self, run: RunRow, deduplicated: bool = False) -> RoutineRun:
        created = iso_time(run.created_at)
        base: dict[str, Any] = {
            "provider": PROVIDER,
            "run_id": run.id,
            "routine": run.routine,
            "created_at": created,
            "deduplicated": deduplicated,
        }
        if run.session_id is None:
            return RoutineRun(**base, status="pending")
        row = await self._sessions.get_row(run.session_id)
        ended = row.ended_at is not None
        out = self._sessions.output(run.session_id, "stdout", ended)
        message = row.message
        if row.state not in RUN_STATUS:
            err = self._sessions.output(run.session_id, "stderr", ended).text.strip()
            message = "; ".join(m for m in (row.message, f"stderr: {err[-500:]}" if err else None) if m) or None
        return RoutineRun(
            **base,
            status=RUN_STATUS.get(row.state, "failed"),
            session_id=run.session_id,
            output=out.text,
            exit_code=row.exit_code,
            message=message,
        )
