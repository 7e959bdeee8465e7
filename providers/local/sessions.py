"""Local sessions: each run is owned by its own supervisor process and its session directory, not by us.

Any server on the data directory lists, follows and stops any session: the one that started it talks to
the supervisor over a socket (here); the others read the session's files and signal the supervisor
(session_records.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from providers.errors import InvalidInput, ProviderError, Unavailable
from providers.local.events import EventLog
from providers.local.ids import PROVIDER
from providers.local.jobs import (
    DISK_SETTING,
    PIPE_BYTES,
    STOP_GRACE_S,
    Request,
    SessionSettings,
    WorkDir,
    build_job,
    check_start,
    open_cwd,
    spawn_error,
)
from providers.local.progress import Progress, Reporter
from providers.local.session_records import LiveSession, SessionRecords, end_event
from providers.local.spawner import Spawner, receive, send, signal_supervisor
from providers.local.store import Store, StoreError
from providers.local.supervisor import records as sv
from providers.local.supervisor.limits import sweep_cgroups
from providers.local.tables import SessionRow
from providers.services import caller

FOLLOW_POLL_S = 0.1  # how often a session another server runs is looked at while following it
STOP_WAIT_S = STOP_GRACE_S + 5.0
HAND_OVER_TRIES = 3


class SessionManager(SessionRecords):
    def __init__(
        self,
        store: Store,
        data_dir: Path,
        task_group: TaskGroup,
        events: EventLog,
        settings: SessionSettings,
        owner: str,
        spawner: Spawner,
    ) -> None:
        super().__init__(store, data_dir, events, settings, owner)
        self._tg = task_group
        self._spawner = spawner
        self._closed = False

    async def start(
        self,
        command: str,
        *,
        cwd: str | None = None,
        workspace: WorkDir | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        interactive: bool = False,
        timeout_s: float | None = 60,
        origin: str = "exec",
        durable: bool = True,
        on_server_exit: str | None = None,
        lock_fd: int | None = None,
        network: str | None = None,
        ports: Sequence[int] = (),
    ) -> LiveSession:
        """Start a session and return once its process runs: in `cwd` (a caller's directory), in `workspace`, or
        in a new directory of its own. `interactive`: its stdin stays open for sendInput. With `durable` its
        record is committed before this returns; else within a few milliseconds (or with its end, if first)."""
        check_start(command, cwd, env, timeout_s, self.settings.max_timeout_s)
        self.settings.network.check(network, ports, self.settings.sandbox)
        if interactive and stdin and len(stdin.encode()) > PIPE_BYTES:
            raise InvalidInput(
                PROVIDER,
                f"stdin of an interactive run may hold up to {PIPE_BYTES} bytes at start",
                hint="Send the rest with sendInput once it runs.",
            )
        row = SessionRow(
            rowid=0,
            id="",  # with its supervisor and start time, once a supervisor is taken for it
            state="running",
            command=command,
            cwd="",
            origin=origin,
            owner=self.owner,
            timeout_s=timeout_s,
            place=self.place,
            principal=caller().owner,
        )
        place = open_cwd(cwd, self.settings.sandbox) if cwd is not None else None
        on_exit = on_server_exit or self.settings.on_exit
        request = Request(env, stdin, interactive, on_exit, lock_fd, place, network, tuple(ports))
        try:
            return await self._start(request, row, workspace, durable)
        finally:
            if place is not None:
                os.close(place.fd)

    async def _start(self, request: Request, row: SessionRow, workspace: WorkDir | None, durable: bool) -> LiveSession:
        kind = "launcher" if row.origin.startswith("launcher:") else "session"
        spare = await self._spawner.take(kind)
        row.id, row.supervisor, row.started_at = spare.id, spare.supervisor, time.time()
        live = LiveSession(row, spare.channel, time.monotonic(), request.on_exit, kind=spare.kind)
        tries = 0
        try:
            while True:
                workdir = workspace or WorkDir(str(spare.dir / sv.WORKDIR), self.settings.disk_bytes, DISK_SETTING)
                row.cwd = request.place.path if request.place is not None else workdir.path
                own = workdir if request.place is None else None
                message, fds = build_job(self.settings, request, row, spare.dir, own, quiet=not durable)
                if send(spare.channel, message, fds=fds):
                    break
                tries += 1
                if tries >= HAND_OVER_TRIES:
                    raise Unavailable(
                        PROVIDER,
                        f"{tries} session supervisors in a row took no job (see {self._dir.parent}/supervisors.log)",
                        hint="Retry; if it persists, restart the server and report it with that log.",
                    )
                spare.channel.close()  # that supervisor has gone (it should not have): take another
                spare = await self._spawner.take(spare.kind)
                row.id, row.supervisor, live.channel = spare.id, spare.supervisor, spare.channel
            self._spawner.refill(spare.kind)
            if durable:  # the caller returns at once: it must know the command runs
                await self._started(live)
        except ProviderError as exc:
            self._spawner.refill(spare.kind)
            if getattr(exc, "supervisor_intact", False):  # it removed the session's directory, and is fine
                self._spawner.give_back(spare.supervisor, spare.channel, spare.kind)
            else:
                spare.channel.close()
            raise
        except BaseException:
            spare.channel.close()
            raise
        self.live[row.id] = live
        if self._closed:  # started while this server closed: its supervisor carries on, as the others' do
            live.channel.close()
        self._store.save_session(row)
        started = {"session_id": row.id, "command": row.command, "origin": row.origin}
        await self._events.record("session.started", started, principal=row.principal)
        if durable:
            self._tg.start_soon(self._follow, live)
            try:
                await self._store.flush()
            except StoreError as exc:
                live.note = f"not yet recorded in the state store ({exc.message}); its directory holds the record"
        else:
            self._store.flush_soon(self._tg)
        return live

    async def _started(self, live: LiveSession) -> None:
        """Wait for the supervisor's first word: the command runs (or could not start)."""
        reply, _ = await receive(live.channel)
        if reply is None:
            raise Unavailable(PROVIDER, "the session supervisor ended before starting the command", hint="Retry.")
        if reply.get("op") == "failed":
            raise spawn_error(int(reply.get("errno") or 0), str(reply.get("error")))
        live.row.pid = int(reply["pid"])
        if reply.get("op") == "ended":
            live.early_end = reply

    async def _follow(self, live: LiveSession, deadline: float | None = None) -> None:
        """Follow a run, reading its supervisor's messages, until it ends or `deadline` passes (in the background:
        the caller does not wait, or stopped waiting), unless a task follows it already."""
        if live.following or live.done.is_set():
            return
        live.following = True
        try:
            message = live.early_end
            while message is None:
                with anyio.move_on_after(None if deadline is None else deadline - time.monotonic()) as waiting:
                    message, _ = await receive(live.channel)
                if waiting.cancelled_caught:
                    return
                if message is None:
                    break
                op = message.get("op")
                if op == "failed":
                    live.error = spawn_error(int(message.get("errno") or 0), str(message.get("error")))
                    self._store.delete_sessions([live.id], running_too=True)
                    self._store.flush_soon(self._tg)
                    self._close(live, healthy=True)
                    return
                if op == "started":
                    live.row.pid = int(message["pid"])
                    self._store.set_pid(live.id, live.row.pid)
                    self._store.flush_soon(self._tg)
                    message = None
            if message is None and self._closed:
                return  # this server closed the socket on its way out: the supervisor carries on
            result = message or self.result(live.id)
            if result is None:
                result = {"reason": "lost", "detail": "its supervisor ended without recording the outcome"}
                await self.end_what_is_left(live.row)
            self.apply(live.row, result)
            self._close(live, healthy=message is not None and not message.get("retiring"))
            # The end is durable in the session's record already; the index follows in the background.
            event = end_event(live.row)
            self._store.save_end(live.row, event)
            self._store.flush_soon(self._tg, functools.partial(self.announce_end, live.row, event))
        finally:
            live.following = False

    def _close(self, live: LiveSession, healthy: bool) -> None:
        """The run is over: its supervisor goes back to the spawner (when it said so itself), the waiters wake."""
        if healthy and live.row.supervisor:
            self._spawner.give_back(live.row.supervisor, live.channel, live.kind)
        else:
            live.channel.close()
        self.live.pop(live.id, None)
        live.done.set()

    async def wait(self, live: LiveSession, wait_s: float | None = None, progress: Progress | None = None) -> bool:
        """Wait for the session to end, at most `wait_s` seconds; True when it ended. Cancelling this only
        stops the waiting, never the session."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        try:
            reporter = Reporter(self, live.row, progress, time.time() - (time.monotonic() - live.started_monotonic))
            while not live.done.is_set():
                until = reporter.next_at(deadline)
                if live.following:  # another task reads the supervisor's socket: wait for its word
                    with anyio.move_on_after(until - time.monotonic()):
                        await live.done.wait()
                else:
                    await self._follow(live, until)  # no task in between: the end wakes us directly
                if live.done.is_set():
                    break
                if self._closed or (deadline is not None and time.monotonic() >= deadline):
                    return False
                await reporter.report()
            return True
        finally:
            if not live.done.is_set() and not live.following:
                self._tg.start_soon(self._follow, live)  # we stop waiting; the run goes on, followed
            if live.error is not None:
                raise live.error

    async def follow(self, session_id: str, wait_s: float, progress: Progress | None = None) -> SessionRow:
        """Wait up to `wait_s` for a session to end, whoever started it, telling `progress` what it prints as it
        prints it (see Reporter); the session's record, ended or still running."""
        live = self.live_session(session_id)
        if live is not None:
            await self.wait(live, wait_s, progress)
            return live.row
        row = await self.get_row(session_id)
        reporter = Reporter(self, row, progress, row.started_at)
        deadline = time.monotonic() + wait_s
        look_at = time.monotonic() + FOLLOW_POLL_S
        while row.state == "running" and time.monotonic() < deadline:
            await anyio.sleep(max(0.0, min(reporter.next_at(deadline), look_at) - time.monotonic()))
            if time.monotonic() >= look_at:
                look_at = time.monotonic() + FOLLOW_POLL_S
                # another server's run: its record says when it ends (read afresh if it runs on another machine)
                row = await (self._store.get_session(row.id) if self.elsewhere(row) else self.reconcile(row)) or row
            if row.state == "running":
                await reporter.report()
        return row

    async def stop(self, session_id: str, reason: str = "stop") -> tuple[bool, SessionRow]:
        """Stop a running session, whoever started it; (False, row) when it had already ended."""
        live = self.live_session(session_id)
        if live is not None:
            if not live.done.is_set():
                send(live.channel, {"op": "stop", "reason": reason})
                if not live.following:
                    self._tg.start_soon(self._follow, live)
                with anyio.move_on_after(STOP_WAIT_S):
                    await live.done.wait()
            return live.row.end_reason == reason, live.row
        row = await self.get_row(session_id)
        if row.state != "running":
            return False, row
        self.refuse_elsewhere(
            row, "Send stopSession to a server on that machine (any server on that data directory can stop it)."
        )
        with contextlib.suppress(OSError):
            sv.write_json(str(self.path(row.id, sv.STOP)), {"reason": reason, "by": self.owner})
        if row.supervisor and signal_supervisor(row.supervisor, signal.SIGTERM):
            deadline = time.monotonic() + STOP_WAIT_S
            while time.monotonic() < deadline and self.result(row.id) is None:
                await anyio.sleep(0.02)
        row = await self.reconcile(row)
        return row.end_reason == reason, row

    async def close(self) -> None:
        """The server is stopping: end the sessions that must not outlive it (a launcher's decides for itself:
        it lives while another serving server does); the others carry on."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for live in list(self.live.values()):
                    if live.on_server_exit == "stop" and live.kind != "launcher":
                        tg.start_soon(self.stop, live.id, "server_shutdown")
            for live in list(self.live.values()):
                live.channel.close()  # its supervisor carries on; it records the end itself
            if self.settings.cgroups:  # those of supervisors killed while idle (the others remove their own)
                await anyio.to_thread.run_sync(sweep_cgroups, self.settings.cgroup_parent, sv.alive)
