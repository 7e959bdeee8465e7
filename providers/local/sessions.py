"""Local sessions: each run is owned by its own supervisor process and its session directory, not by us.

Any server on the data directory lists, follows and stops any session: the one that started it talks to
the supervisor over a socket; the others read the session's files and signal the supervisor.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from providers.errors import InvalidInput, NotFound, ProviderError, Unavailable
from providers.local.events import EventLog
from providers.local.ids import PROVIDER, new_id, place_of
from providers.local.processes import child_env, end_leftovers
from providers.local.sandbox import Sandbox
from providers.local.spawner import Spare, Spawner, SpawnerError, receive, send, signal_supervisor
from providers.local.store import EventRow, SessionRow, Store, StoreError
from providers.local.supervisor import channel
from providers.local.supervisor import records as sv
from providers.local.supervisor.limits import CGROUP_NAME, remove_cgroup, sweep_cgroups
from providers.values import now_ms

TERMINAL_STATES = ("completed", "failed", "timed_out", "stopped", "lost")
STATES = ("running", *TERMINAL_STATES)
# Why a run ended -> the state it ends in (an exit is completed or failed by its code).
REASON_STATE = {
    "timeout": "timed_out",
    "stop": "stopped",
    "server_shutdown": "stopped",
    "lost": "lost",
}
# Limits that ended a run: its state is failed, and end_reason names the limit.
LIMIT_REASONS = ("output_limit", "memory_limit", "cpu_limit", "process_limit", "file_size_limit")
REASON_TEXT = {
    "stop": "stopped on request",
    "server_shutdown": 'stopped because the server that started it shut down (local.on_exit = "stop")',
}
STOP_GRACE_S = 2.0
QUIET_START_S = 0.05
PROGRESS_TICK_S = 1.0  # a follower hears at least this often that the run goes on
OUTPUT_POLL_S = 0.02  # while someone follows a run, its output is looked at this often
REPORT_GAP_S = 0.25  # and told at most this often
FOLLOW_POLL_S = 0.1  # how often a session another server runs is looked at while following it
STOP_WAIT_S = STOP_GRACE_S + 5.0

Progress = Callable[[float, float | None, str], Awaitable[None]]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    text: str
    size: int
    truncated: bool


EMPTY = Output("", 0, False)


def read_capped(path: Path, cap: int) -> Output:
    """The whole file when it fits in `cap` bytes, else its head and tail with the gap said."""
    try:
        size = path.stat().st_size
    except OSError:
        return Output("", 0, False)
    if size == 0:
        return Output("", 0, False)
    with path.open("rb") as f:
        if size <= cap:
            return Output(f.read().decode("utf-8", "replace"), size, False)
        half = cap // 2
        head = f.read(half)
        f.seek(size - half)
        tail = f.read(half)
    gap = size - 2 * half
    text = head.decode("utf-8", "replace") + f"\n[… {gap} bytes omitted …]\n" + tail.decode("utf-8", "replace")
    return Output(text, size, True)


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


@dataclass(frozen=True)
class Cwd:
    """A caller's cwd as opened: its real path, the descriptor, and whether the sandbox must bind it in."""

    path: str
    fd: int
    bind: bool


@dataclass(frozen=True)
class SessionSettings:
    output_cap: int
    max_timeout_s: float
    max_output_bytes: int
    on_exit: str
    sandbox: Sandbox | None = None
    disk_bytes: int = 0  # what a run's own directory may take while it runs (0: not measured)
    cgroups: bool = False
    cgroup_parent: str | None = None


class SessionManager:
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
        self._store = store
        self._dir = data_dir / "sessions"
        self._tg = task_group
        self._events = events
        self.settings = settings
        self.output_cap = settings.output_cap
        self.owner = owner
        self.place = place_of(data_dir)
        self._spawner = spawner
        self._live: dict[str, LiveSession] = {}
        self.ended_listeners: list[Callable[[SessionRow], None]] = []

    # --- start ------------------------------------------------------------------------------------
    async def start(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout_s: float | None = 60,
        origin: str = "exec",
        durable: bool = True,
        on_server_exit: str | None = None,
        lock_fd: int | None = None,
    ) -> LiveSession:
        """Start a session and return once its process runs. With `durable` its record is committed before
        this returns; else it is committed within a few milliseconds (or with its end, if that comes first)."""
        if not command.strip():
            raise InvalidInput(PROVIDER, "command is empty", hint="Pass a shell command line, e.g. 'echo hello'.")
        _check_text(command=command, cwd=cwd, **{f"env value {k!r}": v for k, v in (env or {}).items()})
        for name in env or {}:
            if not name or "=" in name or "\0" in name:
                raise InvalidInput(
                    PROVIDER,
                    f"env name {name!r} cannot be a variable name",
                    hint="Use names such as MY_VAR: not empty, without '=' or NUL characters.",
                )
        if timeout_s is not None and not 0 < timeout_s <= self.settings.max_timeout_s:
            raise InvalidInput(
                PROVIDER,
                f"timeout_s must be between 0 and {self.settings.max_timeout_s:g} (the local.max_timeout_s cap), "
                f"got {timeout_s:g}",
            )
        place = self._open_cwd(cwd) if cwd is not None else None
        try:
            return await self._start(command, place, env, stdin, timeout_s, origin, durable, on_server_exit, lock_fd)
        finally:
            if place is not None:
                os.close(place.fd)

    def _open_cwd(self, cwd: str) -> Cwd:
        """Open a caller's cwd once and judge what was opened (its real path), never the path again: the run
        gets that directory (bound from the descriptor where the sandbox would not show it), whatever the path
        names by the time the run starts."""
        if not os.path.isabs(os.path.expanduser(cwd)):
            raise InvalidInput(
                PROVIDER, f"cwd {cwd!r} is not an absolute path", hint="Give an absolute path, or leave cwd out."
            )
        try:
            fd = os.open(os.path.expanduser(cwd), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            why = "is too long" if exc.errno == errno.ENAMETOOLONG else "is not an existing directory"
            raise InvalidInput(
                PROVIDER, f"cwd {cwd[:200]!r} {why}", hint="Give an existing directory, or leave cwd out."
            ) from None
        real = os.readlink(f"/proc/self/fd/{fd}")
        sandbox = self.settings.sandbox
        shown = sandbox.shows(real) if sandbox is not None else "rw"
        if shown == "hidden" or not real.startswith("/"):  # not "/x (deleted)" nor outside our mount namespace
            os.close(fd)
            raise InvalidInput(
                PROVIDER,
                f"cwd {cwd!r} is hidden from sandboxed commands (the home directory, the data directory or a "
                "credential location)",
                hint="Leave cwd out for a fresh working directory, or ask the operator to add the directory to "
                "local.sandbox readable_paths or writable_paths.",
            )
        return Cwd(real, fd, bind=shown == "private")

    async def _start(
        self,
        command: str,
        place: Cwd | None,
        env: Mapping[str, str] | None,
        stdin: str | None,
        timeout_s: float | None,
        origin: str,
        durable: bool,
        on_server_exit: str | None,
        lock_fd: int | None,
    ) -> LiveSession:
        kind = "launcher" if on_server_exit == "stop" and origin.startswith("launcher:") else "session"
        spare = await self._take(kind)
        on_exit = on_server_exit or self.settings.on_exit
        row = SessionRow(
            rowid=0,
            id=spare.id,
            state="running",
            command=command,
            cwd=place.path if place is not None else os.path.join(spare.dir, sv.WORKDIR),
            origin=origin,
            owner=self.owner,
            supervisor=spare.supervisor,
            timeout_s=timeout_s,
            started_at=time.time(),
            place=self.place,
        )
        live = LiveSession(row, spare.channel, time.monotonic(), on_exit, kind=spare.kind)
        try:
            while not self._hand_over(spare, row, place, env, stdin, on_exit, lock_fd, quiet=not durable):
                spare.channel.close()  # that supervisor has gone (it should not have): take another
                spare = await self._take(spare.kind)
                row.id, row.supervisor, live.channel = spare.id, spare.supervisor, spare.channel
                if place is None:
                    row.cwd = os.path.join(spare.dir, sv.WORKDIR)
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
        self._live[row.id] = live
        self._store.save_session(row)
        await self._events.record("session.started", {"session_id": row.id, "command": command, "origin": origin})
        if durable:
            self._tg.start_soon(self._follow, live)
        if durable:
            try:
                await self._store.flush()
            except StoreError as exc:
                live.note = f"not yet recorded in the state store ({exc.message}); its directory holds the record"
        else:
            self._store.flush_soon(self._tg)
        return live

    async def _take(self, kind: str) -> Spare:
        try:
            return await self._spawner.take(kind)
        except SpawnerError as exc:
            raise Unavailable(
                PROVIDER,
                str(exc),
                hint="Free space or fix permissions in the data directory (RUNTIMES_MCP_DATA_DIR), then retry.",
            ) from None

    def _hand_over(
        self,
        spare: Spare,
        row: SessionRow,
        place: Cwd | None,
        env: Mapping[str, str] | None,
        stdin: str | None,
        on_exit: str,
        lock_fd: int | None,
        quiet: bool,
    ) -> bool:
        """Give the job to the supervisor; False if it has gone. With `quiet`, it says the command started only
        if it is still running after a moment (a short waited-for run costs one message, not two)."""
        if stdin:
            (spare.dir / sv.STDIN).write_text(stdin, encoding="utf-8")
        sandbox = self.settings.sandbox
        job_env = child_env(env)
        fds = {"lock": lock_fd} if lock_fd is not None else {}
        if place is not None and (sandbox is None or place.bind):  # unconfined: the supervisor goes there
            fds["cwd"] = place.fd
        if sandbox is None:
            argv = ["/bin/sh", "-c", row.command]
        elif place is None:
            argv = sandbox.argv(row.command, row.cwd, job_env, workdir=row.cwd)
        else:
            argv = sandbox.argv(row.command, row.cwd, job_env, bind_cwd=place.bind)
        disk = {"path": row.cwd, "max_bytes": self.settings.disk_bytes, "setting": "local.limits.disk_mb"}
        job: dict[str, Any] = {
            "id": spare.id,
            "argv": argv,
            "fds": list(fds),
            "sandboxed": sandbox is not None,
            "env": job_env if sandbox is None else {},  # a sandbox's variables are in its argv, set inside it
            "stdin": bool(stdin),
            "timeout_s": row.timeout_s,
            "on_server_exit": on_exit,
            "grace_s": STOP_GRACE_S,
            "max_output_bytes": self.settings.max_output_bytes,
            "disk": disk if place is None and self.settings.disk_bytes else None,
            "quiet_start_s": QUIET_START_S if quiet else 0,
            "record": {
                "command": row.command,
                "cwd": row.cwd,
                "origin": row.origin,
                "owner": row.owner,
                "timeout_s": row.timeout_s,
                "on_server_exit": on_exit,
            },
        }
        if 2 * len(row.command) + sum(len(k) + len(v) for k, v in job_env.items()) > channel.INLINE_JOB_BYTES:
            sv.write_json(str(spare.dir / sv.REQUEST), job)  # too large for one socket message
            job = {"file": sv.REQUEST, "id": spare.id}
        return send(spare.channel, job, fds=list(fds.values()))

    async def _started(self, live: LiveSession) -> None:
        """Wait for the supervisor's first word: the command runs (or could not start)."""
        reply, _ = await receive(live.channel)
        if reply is None:
            raise Unavailable(PROVIDER, "the session supervisor ended before starting the command", hint="Retry.")
        if reply.get("op") == "failed":
            raise _spawn_error(int(reply.get("errno") or 0), str(reply.get("error")))
        live.row.pid = int(reply["pid"])
        if reply.get("op") == "ended":
            live.early_end = reply

    async def _follow(self, live: LiveSession) -> None:
        """Follow a run in the background until it ends (the caller does not wait, or stopped waiting)."""
        if live.following or live.done.is_set():
            return
        live.following = True
        try:
            await self._receive_end(live)
        finally:
            live.following = False

    async def _receive_end(self, live: LiveSession, deadline: float | None = None) -> bool:
        """Read the supervisor's messages until the run ends (True) or `deadline` passes (False)."""
        message = live.early_end
        while message is None:
            if deadline is None:
                message, _ = await receive(live.channel)
            else:
                with anyio.move_on_after(deadline - time.monotonic()) as waiting:
                    message, _ = await receive(live.channel)
                if waiting.cancelled_caught:
                    return False
            if message is None:
                break
            op = message.get("op")
            if op == "failed":
                live.error = _spawn_error(int(message.get("errno") or 0), str(message.get("error")))
                self._store.delete_sessions([live.id], running_too=True)
                self._store.flush_soon(self._tg)
                self._close(live, healthy=True)
                return True
            if op == "started":
                live.row.pid = int(message["pid"])
                self._store.set_pid(live.id, live.row.pid)
                self._store.flush_soon(self._tg)
                message = None
        result = message or self._result(live.id)
        if result is None:
            result = {"reason": "lost", "detail": "its supervisor ended without recording the outcome"}
            await self._end_leftovers(live.row)
        self._apply(live.row, result)
        self._close(live, healthy=message is not None and not message.get("retiring"))
        # The end is durable in the session's record already; the index follows in the background.
        event = _event(f"session.{live.row.state}", _end_data(live.row))
        self._store.save_end(live.row, event)
        row = live.row

        async def ended() -> None:
            await self._events.notify(event.sandbox_id)
            for listener in self.ended_listeners:
                listener(row)

        self._store.flush_soon(self._tg, ended)
        return True

    def _close(self, live: LiveSession, healthy: bool) -> None:
        """The run is over: its supervisor goes back to the spawner (when it said so itself), the waiters wake."""
        if healthy and live.row.supervisor:
            self._spawner.give_back(live.row.supervisor, live.channel, live.kind)
        else:
            live.channel.close()
        self._live.pop(live.id, None)
        live.done.set()

    def _apply(self, row: SessionRow, result: dict[str, Any]) -> None:
        """Fold a supervisor's result into the row."""
        reason = str(result.get("reason") or "exit")
        code = result.get("exit_code")
        state = REASON_STATE.get(reason, "failed")  # a limit (LIMIT_REASONS) fails the run
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

    async def _record(self, row: SessionRow, result: dict[str, Any]) -> None:
        """Record the end of a run no task of ours followed (another server's, or one that ran while none did)."""
        self._apply(row, result)
        event = _event(f"session.{row.state}", _end_data(row))
        try:
            if await self._store.record_end(row, event):
                await self._events.notify(event.sandbox_id)
                for listener in self.ended_listeners:
                    listener(row)
        except StoreError as exc:
            logger.warning("runtimes-mcp: session %s ended but could not be recorded: %s", row.id, exc)

    async def wait(self, live: LiveSession, wait_s: float | None = None, progress: Progress | None = None) -> bool:
        """Wait for the session to end, at most `wait_s` seconds; True when it ended. Cancelling this only
        stops the waiting, never the session."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        try:
            return await self._wait(live, deadline, progress)
        finally:
            if not live.done.is_set() and not live.following:
                self._tg.start_soon(self._follow, live)  # we stop waiting; the run goes on, followed
            if live.error is not None:
                raise live.error

    async def _wait(self, live: LiveSession, deadline: float | None, progress: Progress | None) -> bool:
        reporter = Reporter(self, live.row, progress, time.time() - (time.monotonic() - live.started_monotonic))
        while not live.done.is_set():
            until = reporter.next_at(deadline)
            if live.following:  # another task reads the supervisor's socket: wait for its word
                with anyio.move_on_after(until - time.monotonic()):
                    await live.done.wait()
            else:
                live.following = True
                try:
                    await self._receive_end(live, until)  # no task in between: the end wakes us directly
                finally:
                    live.following = False
            if live.done.is_set():
                break
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await reporter.report()
        return True

    async def follow(self, session_id: str, wait_s: float, progress: Progress | None = None) -> SessionRow:
        """Wait up to `wait_s` for a session to end, whoever started it, telling `progress` what it prints as it
        prints it (see Reporter); the session's record, ended or still running."""
        live = self._live.get(session_id)
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
                row = await self.reconcile(row) if not self.elsewhere(row) else await self._reread(row)
            if row.state == "running":
                await reporter.report()
        return row

    def progress_message(self, session_id: str, elapsed: float) -> str:
        """What a progress notification says: how long it has run, how much it printed, its newest line."""
        size = self._size(session_id, "stdout")
        message = f"running {elapsed:.0f}s, {size} bytes of stdout"
        last = _last_line(self.path(session_id, "stdout"))
        return f"{message}; last line: {last}" if last else message

    # --- stop -------------------------------------------------------------------------------------
    async def stop(self, session_id: str, reason: str = "stop") -> tuple[bool, SessionRow]:
        """Stop a running session, whoever started it; (False, row) when it had already ended."""
        live = self._live.get(session_id)
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
        if self.elsewhere(row):
            raise InvalidInput(
                PROVIDER,
                f"session {session_id} runs on {row.place}, not on this server's machine ({self.place})",
                hint="Send stopSession to a server on that machine (any server on that data directory can stop it).",
            )
        directory = self._dir / row.id
        with contextlib.suppress(OSError):
            sv.write_json(str(directory / sv.STOP), {"reason": reason, "by": self.owner})
        if row.supervisor and signal_supervisor(row.supervisor, signal.SIGTERM):
            deadline = time.monotonic() + STOP_WAIT_S
            while time.monotonic() < deadline and self._result(row.id) is None:
                await anyio.sleep(0.02)
        row = await self.reconcile(row)
        return row.end_reason == reason, row

    async def _reread(self, row: SessionRow) -> SessionRow:
        return await self._store.get_session(row.id) or row

    def elsewhere(self, row: SessionRow) -> bool:
        """The session runs in another place (machine and data directory): its processes and output are there."""
        return row.place is not None and row.place != self.place

    async def close(self) -> None:
        """The server is stopping: end the sessions that must not outlive it; the others carry on."""
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for live in list(self._live.values()):
                    if live.on_server_exit == "stop":
                        tg.start_soon(self.stop, live.id, "server_shutdown")
            for live in list(self._live.values()):
                live.channel.close()  # its supervisor carries on; it records the end itself

    # --- records ----------------------------------------------------------------------------------
    async def get_row(self, session_id: str) -> SessionRow:
        live = self._live.get(session_id)
        if live is not None:
            return live.row
        row = await self._store.get_session(session_id)
        if row is None:
            row = await self._adopt(session_id)
        if row is None:
            raise NotFound(PROVIDER, f"no local session {session_id!r}", hint="Call listSessions to see session ids.")
        return await self.reconcile(row)

    async def reconcile(self, row: SessionRow) -> SessionRow:
        """Bring a 'running' record that no task of ours follows up to date with its session directory."""
        if row.state != "running" or row.id in self._live or self.elsewhere(row):
            return row
        result = self._result(row.id)
        if result is None:
            if sv.alive(row.supervisor):
                return row
            result = self._result(row.id)  # it may have just finished
        if result is None:
            result = {"reason": "lost", "detail": "its supervisor ended without recording the outcome"}
            if await self._end_leftovers(row):
                result["detail"] += "; its leftover processes were stopped"
        await self._record(row, result)
        return row

    async def _end_leftovers(self, row: SessionRow) -> bool:
        """End what a lost session left running, and remove the cgroup its supervisor could not."""
        record = sv.read_json(str(self.path(row.id, sv.RECORD))) or {}
        pid = row.pid or record.get("pid")
        ended = pid is not None and await end_leftovers(pid, row.started_at, STOP_GRACE_S)
        if row.supervisor and not sv.alive(row.supervisor):
            remove_cgroup([str(path) for path in record.get("cgroup") or [] if CGROUP_NAME in str(path)])
        return ended

    async def _adopt(self, session_id: str) -> SessionRow | None:
        """A session directory with no record (its server died before committing it): record it from its files."""
        if "/" in session_id or session_id in ("", ".", ".."):
            return None
        job = sv.read_json(str(self.path(session_id, sv.RECORD)))
        if job is None or "command" not in job:
            return None  # a spare slot (or one being written)
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
            adopted = await self._adopt(entry.name)
            if adopted is not None:
                await self.reconcile(adopted)
                continue
            record = sv.read_json(str(Path(entry.path) / sv.RECORD))
            owner = (record or {}).get("spare")
            if (owner and not sv.alive(owner)) or (not owner and _older_than(entry.path, 60)):
                shutil.rmtree(entry.path, ignore_errors=True)  # made ahead by a server that is gone: unused
        with contextlib.suppress(StoreError):
            await self._store.flush()

    def _result(self, session_id: str) -> dict[str, Any] | None:
        result = (sv.read_json(str(self.path(session_id, sv.RECORD))) or {}).get("result")
        return result if isinstance(result, dict) else None

    def output(self, session_id: str, stream: str) -> Output:
        return read_capped(self.path(session_id, stream), self.output_cap)

    def path(self, session_id: str, name: str) -> Path:
        return self._dir / session_id / name

    def output_path(self, session_id: str, stream: str) -> Path:
        return self.path(session_id, stream)

    def output_size(self, session_id: str) -> int:
        return self._size(session_id, "stdout")

    def _size(self, session_id: str, stream: str) -> int:
        try:
            return self.path(session_id, stream).stat().st_size
        except OSError:
            return 0


class Reporter:
    """Progress for a caller following a run: a notification soon after the run prints something (its output
    is looked at every OUTPUT_POLL_S while someone follows), at most one every REPORT_GAP_S while it keeps
    printing, and one every PROGRESS_TICK_S when it prints nothing (it is still running)."""

    def __init__(self, sessions: SessionManager, row: SessionRow, progress: Progress | None, started: float) -> None:
        self.sessions, self.row, self.progress, self.started = sessions, row, progress, started
        self.size = sessions.output_size(row.id)
        self.sent = time.monotonic()

    def next_at(self, deadline: float | None) -> float:
        """When to look again (the caller's deadline, if that comes first)."""
        if self.progress is None or self.sessions.elsewhere(self.row):
            at = time.monotonic() + PROGRESS_TICK_S
        else:
            at = max(time.monotonic() + OUTPUT_POLL_S, self.sent + REPORT_GAP_S)
        return at if deadline is None else min(at, deadline)

    async def report(self) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        size = self.sessions.output_size(self.row.id)
        if size == self.size and now < self.sent + PROGRESS_TICK_S:
            return
        self.size, self.sent = size, now
        elapsed = time.time() - self.started
        await self.progress(elapsed, self.row.timeout_s, self.sessions.progress_message(self.row.id, elapsed))


def _check_text(**values: str | None) -> None:
    """A NUL character cannot reach a process (argument, variable or path): refuse it as invalid input."""
    for what, value in values.items():
        if value is not None and "\0" in value:
            raise InvalidInput(
                PROVIDER,
                f"{what} contains a NUL character (\\0), which no command line, variable or path can hold",
                hint="Remove the NUL character; to pass binary data, use stdin or a file.",
            )


def _last_line(path: Path, limit: int = 200) -> str:
    """The newest complete-or-not line of an output file, at most `limit` characters."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - 4096))
            tail = f.read()
    except OSError:
        return ""
    return newest_line(tail.decode("utf-8", "replace"))[-limit:]


def newest_line(text: str) -> str:
    """The last line of `text` that is not blank ("" when there is none)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def read_from(path: Path, offset: int, limit: int) -> tuple[str, int, int]:
    """(text, next offset, size): up to `limit` bytes from `offset`, cut before a split UTF-8 character."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            chunk = f.read(limit)
    except OSError:
        return "", offset, 0
    if offset + len(chunk) < size:  # more follows: do not end inside a character
        for back in range(1, min(4, len(chunk)) + 1):
            lead = chunk[-back]
            if lead & 0xC0 != 0x80:  # the first byte of the last character
                width = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
                if width > back:
                    chunk = chunk[:-back]
                break
    return chunk.decode("utf-8", "replace"), offset + len(chunk), size


def _end_data(row: SessionRow) -> dict[str, Any]:
    return {"session_id": row.id, "exit_code": row.exit_code, "reason": row.end_reason}


def _event(type_: str, data: dict[str, Any]) -> EventRow:
    return EventRow(new_id("evt"), "local", type_, data, now_ms())


def _older_than(path: str, seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime > seconds
    except OSError:
        return False


def _spawn_error(code: int, message: str) -> ProviderError:
    """The supervisor could not start the command (it removed the session's directory and is ready for more)."""
    error: ProviderError
    if code == errno.E2BIG:
        error = InvalidInput(
            PROVIDER,
            "the command (or env) is too large for the operating system to start (Linux takes up to 128 KiB "
            "per argument)",
            hint="Pass a long script on stdin instead, e.g. command='sh' with the script as stdin.",
        )
    else:
        hint = "Free space in RUNTIMES_MCP_DATA_DIR, then retry." if code == errno.ENOSPC else "Check the machine."
        error = Unavailable(PROVIDER, f"could not start the command: {message}", hint=hint)
    setattr(error, "supervisor_intact", True)  # noqa: B010 - a mark read with getattr, not a field
    return error
