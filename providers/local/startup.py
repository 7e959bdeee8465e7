"""Opening the local runtime: the data directory and its database, the sandbox and network policy, the
supervisors' spawner, recovery of earlier sessions and the launchers; and closing it again."""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from providers.local.config import LocalConfig
from providers.local.database import listen_for_events
from providers.local.events import EventLog
from providers.local.jobs import SessionSettings
from providers.local.launchers import LauncherSupervisor
from providers.local.network import NetworkError
from providers.local.network import prepare as prepare_network
from providers.local.retention import Retention
from providers.local.run_as import ROOT_WARNING, RunAsError, open_the_way
from providers.local.run_as import resolve as resolve_run_as
from providers.local.runtime import LocalRuntime
from providers.local.sandbox import SandboxError, prepare
from providers.local.sessions import SessionManager
from providers.local.spawner import Spawner
from providers.local.store import Store, StoreError
from providers.local.supervisor import records as sv
from providers.local.tables import SessionRow
from providers.local.workspaces import Workspaces
from providers.services import LOCAL_OWNER, StartError

logger = logging.getLogger(__name__)
SERVING_LOCK = "serving.lock"


class DataDirError(StartError):
    """The local runtime cannot start (an unusable data directory, a required sandbox that cannot run); the
    message says why and what to set."""


@asynccontextmanager
async def open_runtime(
    config: LocalConfig,
    data_dir: Path,
    *,
    run_launchers: bool = True,
    hidden: tuple[str, ...] = (),
    state_url: str | None = None,
    earlier_owner: str = LOCAL_OWNER,
    listening: tuple[int, ...] = (),
) -> AsyncIterator[LocalRuntime]:
    """`run_launchers=False` for one-shot commands (`runtimes-mcp call`), which must not start services.
    `hidden`: more paths no command may see (the server's config file). `state_url`: a PostgreSQL URL to keep
    the state in, shared with other replicas (default: SQLite in the data directory). `earlier_owner`: who owns
    the records and workspaces made before owners were recorded. Sessions outlive the
    runtime (see local.on_exit); its launchers outlive it only while another serving server is on the data
    directory. `listening`: the server's own ports, which no run publishes on."""
    replica = f"runtimes-mcp:{secrets.token_hex(4)}"
    store = await _open_store(data_dir, state_url, replica)
    store.earlier_owner = earlier_owner
    try:
        run_as = resolve_run_as(config.sandbox.run_as)
        if run_as is not None:
            open_the_way(run_as, data_dir)
        sandbox, sandbox_status = prepare(config.sandbox, config.limits, data_dir, hidden, run_as)
        network = prepare_network(config, data_dir, sandbox, listening, run_as)
    except (SandboxError, RunAsError, NetworkError) as exc:
        await store.close()
        raise DataDirError(str(exc)) from None
    if sandbox is None and config.sandbox.mode != "off":
        logger.warning("runtimes-mcp: sandbox %s", sandbox_status)
    if run_as is None and os.geteuid() == 0:
        logger.warning(ROOT_WARNING)
    events = EventLog(store)
    disk_mb = min(config.limits.disk_mb, config.max_data_mb)
    serving = _serve(data_dir) if run_launchers else None
    limits = config.limits.model_dump() | {"disk_mb": disk_mb, "run_as": run_as.ids() if run_as else None}
    spawner = Spawner(data_dir, limits, network.zygote_message() if network.policy else None)
    settings = SessionSettings(
        output_cap=config.output_cap_bytes,
        max_timeout_s=config.max_timeout_s,
        max_output_bytes=config.max_output_mb * 1024 * 1024,
        on_exit=config.on_exit,
        sandbox=sandbox,
        disk_bytes=disk_mb * 1024 * 1024,
        cgroups=config.limits.cgroups,
        cgroup_parent=config.limits.cgroup_parent,
        network=network,
        serving_lock=str(data_dir / SERVING_LOCK),
    )
    try:
        async with anyio.create_task_group() as tg:
            spawner.start(tg)
            owner = sv.identity(os.getpid()) or f"pid:{os.getpid()}"
            sessions = SessionManager(store, data_dir, tg, events, settings, owner, spawner)
            workspaces = Workspaces(
                data_dir,
                max_mb=config.workspace_max_mb,
                max_count=config.max_workspaces,
                retention_days=config.workspace_retention_days,
                busy=sessions.works_in,
                max_data_mb=config.max_data_mb,
                owner_ids=(run_as.uid, run_as.gid) if run_as else None,
                earlier_owner=earlier_owner,
            )
            retention = Retention(store, data_dir, config.retention_days, config.max_data_mb, workspaces)

            def ended(row: SessionRow) -> None:
                workspace = workspaces.name_of(row.cwd)
                if workspace is not None:  # what the run left in its workspace counts from now on
                    tg.start_soon(workspaces.measure, *workspace)
                if retention.note_ended((row.stdout_bytes or 0) + (row.stderr_bytes or 0)):
                    tg.start_soon(retention.run_pass)

            sessions.ended_listeners.append(ended)
            if state_url:  # events other replicas store reach this one's subscribers
                tg.start_soon(listen_for_events, state_url, replica, events.notify)
            await sessions.recover()
            tg.start_soon(retention.run_pass)
            runtime = LocalRuntime(config, store, events, sessions, workspaces)
            runtime.sandbox_status = sandbox_status
            for name, launcher_config in config.launchers.items():
                supervisor = LauncherSupervisor(name, launcher_config, data_dir / "launchers", sessions, events)
                runtime.launchers[name] = supervisor
                if run_launchers:
                    tg.start_soon(supervisor.run)
            try:
                yield runtime
            finally:
                with anyio.CancelScope(shield=True):
                    for supervisor in runtime.launchers.values():
                        supervisor.stop()
                    await sessions.close()
                    await spawner.close()
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if serving is not None:
                os.close(serving)  # the last serving server to go lets its launchers' runs end
            await store.close()


def _serve(data_dir: Path) -> int:
    """Say this server serves (stdio or HTTP): a shared lock on `serving.lock`, held while it lives. Its
    launchers' runs live while any server holds it (see launchers.py)."""
    fd = os.open(data_dir / SERVING_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


async def _open_store(data_dir: Path, state_url: str | None, replica: str) -> Store:
    """The data directory, private to the server's user, and the database (SQLite in the data directory, or
    PostgreSQL at `state_url`); a clear error when unusable."""
    path = data_dir / "local.sqlite3"
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if data_dir.stat().st_uid == os.getuid():
            data_dir.chmod(0o700)
        if state_url:
            try:
                return await Store.open_url(state_url, replica)
            except StoreError as exc:
                raise DataDirError(f"{exc.message} (RUNTIMES_MCP_STATE_URL)") from None
        return await Store.open(path)
    except (OSError, sqlite3.Error) as exc:
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataDirError(
            f"the data directory {data_dir} cannot be used ({cause}); set RUNTIMES_MCP_DATA_DIR to a directory "
            f"this user can write, or move {path.name} aside if it is damaged"
        ) from None
