"""What every server knows of a local session: its record (in the store) and its directory (written by its
supervisor). Any server on the data directory reads, follows and stops any session through these; the one that
started a session also talks to its supervisor (sessions.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from providers.errors import InvalidInput, NotFound, ProviderError
from providers.local.events import EventLog
from providers.local.ids import PROVIDER, new_id, place_of
from providers.local.jobs import STOP_GRACE_S, SessionSettings
from providers.local.output import Output, read_capped, size_of
from providers.local.processes import end_leftovers
from providers.local.spawner import signal_supervisor
from providers.local.store import Store, StoreError
from providers.local.supervisor import records as sv
from providers.local.supervisor.limits import CGROUP_NAME, remove_cgroup, sweep_cgroups
from providers.local.supervisor.trees import remove_tree
from providers.local.tables import EventRow, SessionRow
from providers.models import InputSent
from providers.services import caller
from providers.values import now_ms

# Why a run ended -> the state it ends in (an exit is completed or failed by its code).
REASON_STATE = {
    "timeout": "timed_out",
    "stop": "stopped",
    "server_shutdown": "stopped",
    "lost": "lost",
}
REASON_TEXT = {
    "stop": "stopped on request",
    "server_shutdown": 'stopped because the server that started it shut down (local.on_exit = "stop")',
}
INPUT_WAIT_S = 5.0  # how long sendInput waits for a program that does not read its input
logger = logging.getLogger(__name__)


def write_input(fifo: str, data: bytes, wait_s: float) -> int:
    """Write to an interactive run's stdin FIFO, waiting up to `wait_s` for room; the bytes written."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:  # ENXIO: its reading end is closed (the program closed its stdin)
        raise InvalidInput(
            PROVIDER, f"the session's stdin is not read any more ({exc.strerror})", hint="Start it again."
        ) from None
    sent, deadline = 0, time.monotonic() + wait_s
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    try:
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += os.write(fd, data[sent:])
            except BlockingIOError:
                poller.poll(max(1, int((deadline - time.monotonic()) * 1000)))
            except BrokenPipeError:
                break
    finally:
        os.close(fd)
    return sent


@dataclass
class LiveSession:
    """A session this server started: its supervisor's socket, and the event set when it ends."""

    row: SessionRow
    channel: Any
    started_monotonic: float
    on_server_exit: str
    done: anyio.Event = field(default_factory=anyio.Event)
    note: str | None = None  # e.g. the end could not be recorded yet
    error: ProviderError | None = None  # the command could not start
    early_end: dict[str, Any] | None = None  # its end arrived with the first message
    following: bool = False  # a task is reading the supervisor's socket
    kind: str = "session"  # of its supervisor

    @property
    def id(self) -> str:
        return self.row.id


class SessionRecords:
    """Sessions as records and directories. `live`: the sessions this server follows itself (their record is
    kept up to date by it, not read back)."""

    def __init__(self, store: Store, data_dir: Path, events: EventLog, settings: SessionSettings, owner: str) -> None:
        self._store = store
        self._dir = data_dir / "sessions"
        self.directory = str(self._dir)
        self._events = events
        self.settings = settings
        self.owner = owner
        self.place = place_of(data_dir)
        self.live: dict[str, LiveSession] = {}
        self.ended_listeners: list[Callable[[SessionRow], None]] = []

    def live_session(self, session_id: str) -> LiveSession | None:
        """A session this server follows itself, if the caller sees it."""
        live = self.live.get(session_id)
        return live if live is not None and self._store.sees(caller(), live.row.principal) else None

    async def get_row(self, session_id: str) -> SessionRow:
        """The caller's session (any session, for an admin). Another owner's reads as one that does not exist,
        after the same work: the store's query filters it out."""
        live = self.live_session(session_id)
        if live is not None:
            return live.row
        row = await self._store.get_session(session_id, caller())
        if row is None:
            row = await self._adopt(session_id)
        if row is None:
            raise NotFound(PROVIDER, f"no local session {session_id!r}", hint="Call listSessions to see session ids.")
        return await self.reconcile(row)

    async def reconcile(self, row: SessionRow) -> SessionRow:
        """Bring a 'running' record that no task of ours follows up to date with its session directory."""
        if row.state != "running" or row.id in self.live or self.elsewhere(row):
            return row
        result = self.result(row.id)
        if result is None:
            if sv.alive(row.supervisor):
                return row
            result = self.result(row.id)  # it may have just finished
        if result is None:
            result = {"reason": "lost", "detail": "its supervisor ended without recording the outcome"}
            if await self.end_what_is_left(row):
                result["detail"] += "; its leftover processes were stopped"
        await self.record(row, result)
        return row

    async def end_what_is_left(self, row: SessionRow) -> bool:
        """End what a lost session left running, and remove the cgroup its supervisor could not."""
        record = sv.read_json(str(self.path(row.id, sv.RECORD))) or {}
        pid = row.pid or record.get("pid")
        ended = pid is not None and await end_leftovers(pid, row.started_at, STOP_GRACE_S)
        if row.supervisor and not sv.alive(row.supervisor):
            remove_cgroup([str(path) for path in record.get("cgroup") or [] if CGROUP_NAME in str(path)])
        return ended

    async def _adopt(self, session_id: str, everyone: bool = False) -> SessionRow | None:
        """A session directory with no record (its server died before committing it): record it from its files.
        Only the caller's (`everyone`: the server's own recovery), so that another owner's record is never
        overwritten from here."""
        if "/" in session_id or session_id in ("", ".", ".."):
            return None
        job = sv.read_json(str(self.path(session_id, sv.RECORD)))
        if job is None or "command" not in job:
            return None  # a spare slot (or one being written)
        principal = job.get("principal")
        if not everyone and not self._store.sees(caller(), principal):
            return None
        row = SessionRow(
            rowid=0,
            id=session_id,
            state="running",
            command=str(job.get("command", "")),
            cwd=str(job.get("cwd", "")),
            origin=str(job.get("origin", "exec")),
            owner=job.get("owner"),
            supervisor=job.get("supervisor"),
            pid=job.get("pid"),
            timeout_s=job.get("timeout_s"),
            started_at=float(job.get("started_at") or time.time()),
            place=self.place,
            principal=principal,
        )
        self._store.save_session(row)
        return row

    async def recover(self) -> None:
        """At start: records of runs that ended (or were lost) while no server watched them; directories of
        runs whose server died before recording them; spare directories nobody will use."""
        if self.settings.cgroups:
            await anyio.to_thread.run_sync(sweep_cgroups, self.settings.cgroup_parent, sv.alive)
        try:
            known = await self._store.all_session_ids()
            for row in await self._store.running_sessions(self.place):
                await self.reconcile(row)
            entries = list(os.scandir(self._dir)) if self._dir.is_dir() else []
        except (StoreError, OSError) as exc:
            logger.warning("runtimes-mcp: could not check earlier sessions: %s", exc)
            return
        for entry in entries:
            if entry.name in known or not entry.name.startswith("ses_") or not entry.is_dir():
                continue
            adopted = await self._adopt(entry.name, everyone=True)
            if adopted is not None:
                await self.reconcile(adopted)
                continue
            record = sv.read_json(str(Path(entry.path) / sv.RECORD))
            owner = (record or {}).get("spare")
            if (owner and not sv.alive(owner)) or (not owner and _older_than(entry.path, 60)):
                remove_tree(entry.path)  # made ahead by a supervisor that is gone: unused
        with contextlib.suppress(StoreError):
            await self._store.flush()

    def result(self, session_id: str) -> dict[str, Any] | None:
        result = (sv.read_json(str(self.path(session_id, sv.RECORD))) or {}).get("result")
        return result if isinstance(result, dict) else None

    def apply(self, row: SessionRow, result: dict[str, Any]) -> None:
        """Fold a supervisor's result into the row."""
        reason = str(result.get("reason") or "exit")
        code = result.get("exit_code")
        state = REASON_STATE.get(reason, "failed")  # a limit fails the run (end_reason: e.g. memory_limit)
        if reason == "exit":
            state = "completed" if code == 0 else "failed"
        row.state, row.exit_code, row.end_reason = state, code, reason
        row.ended_at = float(result.get("ended_at") or time.time())
        row.message = result.get("detail") or REASON_TEXT.get(reason)
        if reason == "timeout" and not result.get("detail"):
            row.message = f"ended after timeout_s={row.timeout_s:g}"
        row.stdout_bytes = result.get("stdout_bytes")
        row.stderr_bytes = result.get("stderr_bytes")
        if isinstance(result.get("pid"), int):
            row.pid = result["pid"]

    async def record(self, row: SessionRow, result: dict[str, Any]) -> None:
        """Record the end of a run no task of ours followed (another server's, or one that ran while none did)."""
        self.apply(row, result)
        event = end_event(row)
        try:
            if await self._store.record_end(row, event):
                await self.announce_end(row, event)
        except StoreError as exc:
            logger.warning("runtimes-mcp: session %s ended but could not be recorded: %s", row.id, exc)

    async def announce_end(self, row: SessionRow, event: EventRow) -> None:
        """Once the end is recorded: wake the event stream's followers, and tell the ended_listeners."""
        await self._events.notify(event.sandbox_id)
        for listener in self.ended_listeners:
            listener(row)

    async def latest(self, origin: str) -> SessionRow | None:
        """The newest session of this origin (e.g. a launcher's), brought up to date."""
        row = await self._store.latest_session(origin)
        return await self.reconcile(row) if row is not None else None

    async def works_in(self, directory: str) -> bool:
        """Is a running session (of this machine) working in `directory`?"""
        for row in await self._store.running_sessions(self.place):
            if row.cwd == directory and (await self.reconcile(row)).state == "running":
                return True
        return False

    async def send_input(self, session_id: str, text: str | None = None, eof: bool | None = None) -> InputSent:
        """Write to a running interactive session's stdin (and close it with `eof`), whoever started it."""
        row = await self.get_row(session_id)
        if row.state != "running":
            raise InvalidInput(
                PROVIDER,
                f"session {session_id} has ended ({row.state}); nothing reads its stdin",
                hint="Start it again with execRun interactive=true.",
            )
        self.refuse_elsewhere(row, "Send its input through a server on that machine.")
        if not (sv.read_json(str(self.path(row.id, sv.RECORD))) or {}).get("interactive"):
            raise InvalidInput(
                PROVIDER,
                f"session {session_id} was not started with interactive=true, so its stdin is closed",
                hint="Start the command with execRun interactive=true to answer it while it runs.",
            )
        data = (text or "").encode()
        sent = 0
        if data:
            fifo = str(self.path(row.id, sv.STDIN_FIFO))
            sent = await anyio.to_thread.run_sync(write_input, fifo, data, INPUT_WAIT_S)
        if eof:
            with contextlib.suppress(OSError):
                sv.write_json(str(self.path(row.id, sv.INPUT_CLOSED)), {"by": self.owner})
            if row.supervisor:
                signal_supervisor(row.supervisor, signal.SIGUSR1)
        message = None
        if sent < len(data):
            message = (
                f"{sent} of {len(data)} bytes taken within {INPUT_WAIT_S:g} s: the program is not reading its input; "
                "send the rest later"
            )
        return InputSent(
            provider=PROVIDER, session_id=row.id, bytes=sent, closed=bool(eof), state=row.state, message=message
        )

    def network_of(self, session_id: str) -> tuple[dict[str, int] | None, list[str] | None, str]:
        """(published ports: inside -> host loopback, what its network policy refused, the network mode it ran
        with: none, allowlist or host), from its record."""
        record = sv.read_json(str(self.path(session_id, sv.RECORD))) or {}
        result = record.get("result") or {}
        mode = str(record.get("network") or self.settings.network.default)
        return record.get("ports") or None, result.get("network_denied") or None, mode

    def output(self, session_id: str, stream: str, ended: bool) -> Output:
        return read_capped(self.path(session_id, stream), self.settings.output_cap, ended)

    def path(self, session_id: str, name: str) -> Path:
        return self._dir / session_id / name

    def output_size(self, session_id: str) -> int:
        return size_of(self.path(session_id, "stdout"))

    def elsewhere(self, row: SessionRow) -> bool:
        """The session runs in another place (machine and data directory): its processes and output are there."""
        return row.place is not None and row.place != self.place

    def refuse_elsewhere(self, row: SessionRow, hint: str) -> None:
        if self.elsewhere(row):
            message = f"session {row.id} runs on {row.place}, not on this server's machine ({self.place})"
            raise InvalidInput(PROVIDER, message, hint=hint)


def end_event(row: SessionRow) -> EventRow:
    """A session's end, in its owner's event stream (whoever saw the end)."""
    data = {"session_id": row.id, "exit_code": row.exit_code, "reason": row.end_reason}
    return EventRow(new_id("evt"), "local", f"session.{row.state}", data, now_ms(), row.principal)


def _older_than(path: str, seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime > seconds
    except OSError:
        return False
