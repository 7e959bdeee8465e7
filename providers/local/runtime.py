"""The local provider's face: one object that implements every capability on this machine."""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from providers import capabilities as c
from providers import services
from providers.errors import InvalidInput, NotFound
from providers.local.call_tasks import StoredCallTasks
from providers.local.config import LocalConfig
from providers.local.events import DEFAULT_SANDBOX, EventLog
from providers.local.ids import PROVIDER
from providers.local.jobs import WorkDir
from providers.local.launchers import LauncherSupervisor, page_launchers
from providers.local.output import read_from
from providers.local.progress import Progress
from providers.local.results import FOLLOW_HINT, check_offsets, ending, exec_result, summary
from providers.local.routines import Routines
from providers.local.sessions import SessionManager
from providers.local.store import Store
from providers.local.tables import TaskRow
from providers.local.workspaces import Workspaces
from providers.models import (
    EventList,
    ExecResult,
    FileContent,
    FileList,
    FileWritten,
    InputSent,
    Launcher,
    LauncherList,
    RecordList,
    RoutineRun,
    SessionList,
    SessionOutput,
    StopResult,
    StoredEvent,
    WorkspaceDeleted,
    WorkspaceList,
    page_arguments,
    wait_seconds,
)
from providers.services import RunTask, caller


class LocalRuntime(
    c.ListSessions,
    c.ExecRun,
    c.GetSession,
    c.StopSession,
    c.InvokeRoutine,
    c.GetLaunchers,
    c.StoreEvent,
    c.GetEvents,
    c.ListRoutines,
    c.GetRoutineRun,
    c.GetLauncher,
    c.SendInput,
    c.WriteFile,
    c.ReadFile,
    c.ListFiles,
    c.ListWorkspaces,
    c.DeleteWorkspace,
    services.TaskStorage,
    services.Completes,
    services.DescribesItself,
):
    """Every capability over the parts `startup.open_runtime` assembles."""

    name = PROVIDER

    def __init__(
        self,
        config: LocalConfig,
        store: Store,
        events: EventLog,
        sessions: SessionManager,
        workspaces: Workspaces,
    ) -> None:
        self.config = config
        self.workspaces = workspaces
        self._store = store
        self.events = events
        self.sessions = sessions
        self.routines = Routines(config.routines, sessions, store)
        self.launchers: dict[str, LauncherSupervisor] = {}
        self.sandbox_status = "off"
        self.call_tasks = StoredCallTasks(store)

    async def complete(self, argument: str, prefix: str, limit: int = 20) -> list[str]:
        """Values an agent may mean for a resource argument, newest first."""
        if argument == "session_id":
            return await self._store.session_ids(prefix, limit, caller())
        if argument == "sandbox_id":
            return await self._store.sandbox_ids(prefix, limit, caller())
        if argument == "stream":
            return [s for s in ("stdout", "stderr") if s.startswith(prefix)]
        return []

    def this_server(self) -> dict[str, str]:
        return {"Sandbox": self.sandbox_status}

    # --- headline capabilities --------------------------------------------------------------------
    async def list_sessions(
        self,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        include_launchers: bool | None = None,
    ) -> SessionList:
        states, limit, before = page_arguments(PROVIDER, status, limit, cursor)
        rows = await self._store.list_sessions(states, limit + 1, before, bool(include_launchers), caller())
        more = len(rows) > limit
        rows = [await self.sessions.reconcile(r) for r in rows[:limit]]  # running = its process is alive
        if states:
            rows = [r for r in rows if r.state in states]
        return SessionList(
            provider=PROVIDER,
            sessions=[summary(r, self.sessions.directory, self._workspace_name) for r in rows],
            count=len(rows),
            next_cursor=str(rows[-1].rowid) if more and rows[-1].rowid else None,
        )

    def _workspace_name(self, directory: str) -> str | None:
        found = self.workspaces.name_of(directory)
        return found[1] if found else None

    async def exec_run(
        self,
        command: str,
        cwd: str | None = None,
        workspace: str | None = None,
        env: dict[str, Any] | None = None,
        stdin: str | None = None,
        interactive: bool | None = None,
        timeout_s: float | None = None,
        wait: bool | None = None,
        wait_s: float | None = None,
        ports: list[int] | None = None,
        progress: Progress | None = None,
    ) -> ExecResult:
        """Run a command; wait for its end at most `wait_s` (models.DEFAULT_WAIT_S), then answer with the session still
        running. `wait=False` answers at once. The run itself goes on up to its `timeout_s`."""
        bad = sorted(k for k, v in (env or {}).items() if not isinstance(v, str))
        if bad:
            raise InvalidInput(PROVIDER, f"env values must be strings; not so for {', '.join(bad)}")
        if cwd is not None and workspace is not None:
            raise InvalidInput(
                PROVIDER, "cwd and workspace both name where to run", hint="Pass one of them (a workspace is its cwd)."
            )
        waiting = 0.0 if wait is False else wait_seconds(PROVIDER, wait_s)
        live = await self.sessions.start(
            command,
            cwd=cwd,
            workspace=self.workdir(workspace) if workspace is not None else None,
            env=env,
            stdin=stdin,
            interactive=bool(interactive),
            timeout_s=self.config.default_timeout_s if timeout_s is None else timeout_s,
            durable=waiting == 0,
            ports=sorted(set(ports or ())),
        )
        if waiting == 0:
            return ExecResult(
                provider=PROVIDER,
                session_id=live.id,
                state="running",
                stdout_next_offset=0,
                stderr_next_offset=0,
                ports=self.sessions.network_of(live.id)[0],
                message=f"Running in the background; {ending(live.row, self.config.max_timeout_s)} "
                f"{FOLLOW_HINT.format(id=live.id, out=0)}",
            )
        await self.sessions.wait(live, waiting, progress=progress)
        return exec_result(self.sessions, live.row, live.note, waited=waiting, max_timeout_s=self.config.max_timeout_s)

    async def stop_session(self, session_id: str) -> StopResult:
        stopped, row = await self.sessions.stop(session_id)
        await self._store.flush()  # the end is recorded before the answer: every server reads it at once
        if stopped:
            message = "stopped: the command and everything it started were ended"
        elif row.state == "running":
            message = "still running: its supervisor did not answer; retry, or see getDocs topic local"
        else:
            message = f"already ended ({row.state}); nothing to stop"
        return StopResult(
            provider=PROVIDER,
            session_id=session_id,
            stopped=stopped,
            state=row.state,
            exit_code=row.exit_code,
            message=message,
        )

    async def invoke_routine(
        self,
        routine: str,
        message: str,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        wait_s: float | None = None,
        workspace: str | None = None,
    ) -> RoutineRun:
        workdir = self.workdir(workspace) if workspace is not None else None
        return await self.routines.invoke(
            routine, message, metadata, idempotency_key, wait_seconds(PROVIDER, wait_s), workdir
        )

    async def get_launchers(
        self,
        offset: int | None = None,
        limit: int | None = None,
        ids: list[str] | None = None,
        search_name: str | None = None,
        sort: str | None = None,
        sort_direction: Literal["asc", "desc"] | None = None,
    ) -> LauncherList:
        return page_launchers(
            [await s.describe() for s in self.launchers.values()],
            offset=offset,
            limit=limit,
            ids=ids,
            search_name=search_name,
            sort=sort,
            sort_direction=sort_direction,
        )

    async def store_event(self, type: str, data: dict[str, Any], sandbox_id: str | None = None) -> StoredEvent:
        return await self.events.record(type, data, sandbox_id or DEFAULT_SANDBOX, durable=True)

    # --- toolset capabilities ---------------------------------------------------------------------
    async def get_session(
        self,
        session_id: str,
        wait_s: float | None = None,
        stdout_offset: int | None = None,
        stderr_offset: int | None = None,
        progress: Progress | None = None,
    ) -> ExecResult:
        """A session's state and output; with `wait_s`, once it has ended or `wait_s` has passed (progress
        notifications carry its newest line meanwhile); with offsets, the output from there on."""
        for name, offset in (("stdout_offset", stdout_offset), ("stderr_offset", stderr_offset)):
            if offset is not None and offset < 0:
                raise InvalidInput(PROVIDER, f"{name} must be >= 0, got {offset}")
        offsets = (stdout_offset, stderr_offset)
        if stdout_offset or stderr_offset:  # before any wait
            check_offsets(self.sessions, await self.sessions.get_row(session_id), offsets)
        if wait_s:
            row = await self.sessions.follow(session_id, wait_seconds(PROVIDER, wait_s), progress)
        else:
            row = await self.sessions.get_row(session_id)
        return exec_result(self.sessions, row, waited=wait_s, offsets=offsets, max_timeout_s=self.config.max_timeout_s)

    async def read_output(self, session_id: str, stream: str, offset: int, limit: int) -> SessionOutput:
        """Up to `limit` bytes of a session's output from `offset` (the resource reads large pages)."""
        row = await self.sessions.get_row(session_id)
        text, end, size = read_from(self.sessions.path(row.id, stream), offset, limit, row.ended_at is not None)
        return SessionOutput(
            session_id=row.id,
            stream=stream,
            offset=offset,
            size=size,
            text=text,
            next_offset=end if end < size else None,
            state=row.state,
        )

    async def get_events(
        self,
        sandbox_id: str | None = None,
        type: str | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> EventList:
        limit = 100 if limit is None else limit
        return await self.events.query(sandbox_id or DEFAULT_SANDBOX, type, since, limit)

    async def list_routines(self) -> RecordList:
        routines = [
            {"name": n, "description": c.description, "command": c.command, "timeout_s": c.timeout_s}
            for n, c in sorted(self.routines.configs.items())
        ]
        return RecordList(provider=PROVIDER, items=routines, count=len(routines))

    async def get_routine_run(self, run_id: str) -> RoutineRun:
        return await self.routines.get(run_id)

    # --- MCP tasks that follow local runs (providers.services.TaskStorage) ----------------------------

    @property
    def task_ttl_ms(self) -> int:
        """A task lives as long as its session's record: local.retention_days after the end."""
        return int(self.config.retention_days * 86_400_000)

    async def remember_task(self, task_id: str, follow: str, ref: str, session_id: str) -> TaskRow:
        """Record that MCP task `task_id` (the caller's) follows `ref` (read with capability `follow`); any server on
        this data directory answers for it from now on. recall_task finds another owner's as one that does not exist."""
        task = TaskRow(task_id, follow, ref, session_id, created_at=time.time(), principal=caller().owner)
        await self._store.save_task(task)
        return task

    async def recall_task(self, task_id: str) -> TaskRow | None:
        return await self._store.get_task(task_id, caller())

    async def cancel_task(self, task: RunTask) -> None:
        """Harmless when its session has already ended."""
        await self._store.cancel_task(task.id, time.time())
        await self.sessions.stop(task.session_id)

    async def get_launcher(self, launcher_id: str) -> Launcher:
        supervisor = self.launchers.get(launcher_id)
        if supervisor is None:
            known = ", ".join(sorted(self.launchers)) or "none"
            raise NotFound(PROVIDER, f"no local launcher {launcher_id!r} (configured: {known})")
        return await supervisor.describe()

    # --- workspaces, files and input ------------------------------------------------------------------
    def workdir(self, workspace: str) -> WorkDir:
        """A workspace as a run's directory (made on first use), measured against local.workspace_max_mb (or
        what the other workspaces leave of local.max_data_mb)."""
        path = self.workspaces.ensure(workspace)
        return WorkDir(str(path), *self.workspaces.run_room(workspace), workspace)

    async def send_input(self, session_id: str, text: str | None = None, eof: bool | None = None) -> InputSent:
        return await self.sessions.send_input(session_id, text, eof)

    async def write_file(
        self, workspace: str, path: str, content: str, encoding: str | None = None, mode: str | None = None
    ) -> FileWritten:
        bits = None
        if mode is not None:
            if not re.fullmatch(r"0?[0-7]{3}", mode):
                raise InvalidInput(PROVIDER, f"mode {mode!r} is not octal permission bits", hint='Send e.g. "755".')
            bits = int(mode, 8)
        return await self.workspaces.write_file(workspace, path, content, encoding, bits)

    async def read_file(
        self, workspace: str, path: str, offset: int | None = None, length: int | None = None
    ) -> FileContent:
        return await self.workspaces.read_file(workspace, path, offset, length)

    async def list_files(self, workspace: str, path: str | None = None, depth: int | None = None) -> FileList:
        return await self.workspaces.list_files(workspace, path, depth)

    async def list_workspaces(self) -> WorkspaceList:
        return await self.workspaces.list_workspaces()

    async def delete_workspace(self, workspace: str) -> WorkspaceDeleted:
        return await self.workspaces.delete_workspace(workspace)
