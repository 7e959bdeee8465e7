"""Local sessions: each run is a process group with its output in files and its record in SQLite."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from providers.errors import InvalidInput, NotFound, ProviderError, Unavailable
from providers.local.processes import Child, child_env, group_alive, group_members, spawn_group, terminate_group
from providers.local.store import SessionRow, Store

PROVIDER = "local"
TERMINAL_STATES = ("completed", "failed", "timed_out", "stopped", "lost", "detached")
STATES = ("running", *TERMINAL_STATES)

Progress = Callable[[float, float | None, str], Awaitable[None]]
EmitEvent = Callable[[str, dict[str, Any]], Awaitable[None]]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


@dataclass
class Output:
    text: str
    size: int
    truncated: bool


def read_capped(path: Path, cap: int) -> Output:
    """The whole file when it fits in `cap` bytes, else its head and tail with the gap said."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
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
class Slot:
    """A session id with its working directory and output files already made."""

    id: str
    workdir: Path
    stdout: int
    stderr: int


@dataclass
class LiveSession:
    row: SessionRow
    process: Child
    started_monotonic: float
    done: anyio.Event = field(default_factory=anyio.Event)
    stop_requested: bool = False

    @property
    def id(self) -> str:
        return self.row.id


class SessionManager:
    def __init__(
        self,
        store: Store,
        data_dir: Path,
        task_group: TaskGroup,
        emit: EmitEvent,
        output_cap: int,
        max_timeout_s: float,
        keep_on_exit: bool = False,
    ) -> None:
        self._store = store
        self._dir = data_dir / "sessions"
        self._tg = task_group
        self._emit = emit
        self.output_cap = output_cap
        self.max_timeout_s = max_timeout_s
        self.keep_on_exit = keep_on_exit
        self._live: dict[str, LiveSession] = {}
        self._spare: Slot | None = None

    # --- start and supervise ----------------------------------------------------------------------
    async def start(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout_s: float = 60,
        origin: str = "exec",
        durable: bool = True,
    ) -> LiveSession:
        """Start a session. With `durable=False` its record is committed later (by the flush that ends it),
        which saves a commit when the caller waits for the end anyway."""
        if not command.strip():
            raise InvalidInput(PROVIDER, "command is empty", hint="Pass a shell command line, e.g. 'echo hello'.")
        if not 0 < timeout_s <= self.max_timeout_s:
            raise InvalidInput(
                PROVIDER,
                f"timeout_s must be between 0 and {self.max_timeout_s:g} (the local.max_timeout_s cap), "
                f"got {timeout_s:g}",
            )
        if cwd is not None:
            workdir = Path(cwd).expanduser()
            if not workdir.is_dir():
                raise InvalidInput(PROVIDER, f"cwd {cwd!r} is not an existing directory")
        try:
            slot, self._spare = self._spare or self._new_slot(), None
        except OSError as exc:
            raise Unavailable(
                PROVIDER,
                f"cannot create the session's files in {self._dir}: {exc.strerror}",
                hint="Free space or fix permissions in the data directory (RUNTIMES_MCP_DATA_DIR), then retry.",
            ) from None
        session_id = slot.id
        try:
            if cwd is None:
                workdir = slot.workdir
            else:
                slot.workdir.rmdir()
            if stdin:
                stdin_path = self.output_path(session_id, "stdin")
                stdin_path.write_text(stdin, encoding="utf-8")
                with stdin_path.open("rb") as inp:
                    process = await spawn_group(
                        command, cwd=workdir, env=child_env(env), stdin=inp, stdout=slot.stdout, stderr=slot.stderr
                    )
            else:
                process = await spawn_group(
                    command,
                    cwd=workdir,
                    env=child_env(env),
                    stdin=subprocess.DEVNULL,
                    stdout=slot.stdout,
                    stderr=slot.stderr,
                )
        except BaseException as exc:
            self._discard(slot, keep_written=False)  # nothing ran: all of it is ours
            if isinstance(exc, OSError):
                raise _spawn_error(exc) from None
            raise
        finally:
            os.close(slot.stdout)
            os.close(slot.stderr)
        self._store.drop_spare_slot(session_id)
        row = SessionRow(
            rowid=0,
            id=session_id,
            command=command,
            cwd=str(workdir),
            origin=origin,
            state="running",
            pid=process.pid,
            owner_pid=os.getpid(),
            exit_code=None,
            timeout_s=timeout_s,
            started_at=time.time(),
            ended_at=None,
            message=None,
        )
        live = LiveSession(row, process, time.monotonic())
        self._live[session_id] = live
        self._store.insert_session(row)
        self._tg.start_soon(self._supervise, live)
        await self._emit("session.started", {"session_id": session_id, "command": command, "origin": origin})
        if durable:
            await self._store.flush()
        return live

    # --- slots: the files of the next session, made while the loop waits on a child ----------------------
    def _new_slot(self) -> Slot:
        """sessions/<id>/ is the run's own working directory; its output files sit beside it, out of the
        command's way (sessions/<id>.stdout, .stderr, .stdin)."""
        session_id = new_id("ses")
        workdir = self._dir / session_id
        workdir.mkdir(parents=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        stdout = os.open(self.output_path(session_id, "stdout"), flags, 0o666)
        stderr = os.open(self.output_path(session_id, "stderr"), flags, 0o666)
        return Slot(session_id, workdir, stdout, stderr)

    def _refill(self) -> None:
        if self._spare is None:
            with contextlib.suppress(OSError):  # the next start makes its own, and reports what fails
                self._spare = self._new_slot()
                # Recorded, so that a crash cannot leave it behind (a slot used at once needs no record).
                self._store.add_spare_slot(self._spare.id, os.getpid())

    def _discard(self, slot: Slot | str, keep_written: bool = True) -> None:
        """Remove an unused slot's files (with `keep_written`, only those nothing was written to)."""
        session_id = slot if isinstance(slot, str) else slot.id
        for stream in ("stdout", "stderr", "stdin"):
            path = self.output_path(session_id, stream)
            with contextlib.suppress(OSError):
                if not keep_written or path.stat().st_size == 0:
                    path.unlink()
        with contextlib.suppress(OSError):
            (self._dir / session_id).rmdir()
        self._store.drop_spare_slot(session_id)

    async def close(self) -> None:
        """Give back the spare slot (the caller stops the sessions)."""
        if self._spare is not None:
            os.close(self._spare.stdout)
            os.close(self._spare.stderr)
            self._discard(self._spare)
            self._spare = None
        await self._store.flush()

    async def _supervise(self, live: LiveSession) -> None:
        # Making the next session's files here costs nothing: the child is starting up meanwhile.
        self._refill()
        timed_out = server_stopping = False
        try:
            with anyio.move_on_after(live.row.timeout_s or self.max_timeout_s) as scope:
                await live.process.wait()
            timed_out = scope.cancelled_caught
        except anyio.get_cancelled_exc_class():
            server_stopping = True  # the runtime's task group is being torn down
            raise
        finally:
            # Shielded: the record must be written, and `done` set, even while the server shuts down.
            with anyio.CancelScope(shield=True):
                await self._finish(live, timed_out=timed_out, server_stopping=server_stopping)

    async def _finish(self, live: LiveSession, *, timed_out: bool, server_stopping: bool) -> None:
        if server_stopping and self.keep_on_exit:
            state, message = "detached", "left running when the server stopped (local.keep_processes_on_exit)"
        else:
            # Ends the run on timeout/stop/shutdown; after a normal exit, reaps what it left in its group.
            await terminate_group(live.process.pid, live.process)
            if timed_out:
                state, message = "timed_out", f"ended after timeout_s={live.row.timeout_s:g}"
            elif live.stop_requested:
                state, message = "stopped", "stopped on request"
            elif server_stopping:
                state, message = "stopped", "stopped because the server shut down"
            else:
                state, message = ("completed" if live.process.returncode == 0 else "failed"), None
        code = live.process.returncode
        live.row.state, live.row.exit_code, live.row.ended_at, live.row.message = state, code, time.time(), message
        self._store.finish_session(live.id, state, code, live.row.ended_at, message)
        await self._emit(f"session.{state}", {"session_id": live.id, "exit_code": code})
        try:
            await self._store.flush()  # one commit for the session's whole record and its events
        finally:
            self._live.pop(live.id, None)
            live.done.set()

    async def wait(self, live: LiveSession, progress: Progress | None = None, tick_s: float = 1.0) -> None:
        """Wait for the session to end. Cancelling this only stops the waiting, never the session."""
        while not live.done.is_set():
            with anyio.move_on_after(tick_s):
                await live.done.wait()
            if progress is not None and not live.done.is_set():
                elapsed = time.monotonic() - live.started_monotonic
                out = self.output_path(live.id, "stdout").stat().st_size
                await progress(elapsed, live.row.timeout_s, f"running {elapsed:.0f}s, {out} bytes of stdout")

    # --- stop -------------------------------------------------------------------------------------
    async def stop(self, session_id: str) -> tuple[bool, SessionRow]:
        """Stop a running session; (False, row) when it had already ended."""
        live = self._live.get(session_id)
        if live is not None:
            if live.process.returncode is not None:  # exited on its own; the supervisor is recording it
                await live.done.wait()
                return False, live.row
            live.stop_requested = True
            await terminate_group(live.process.pid, live.process)
            await live.done.wait()
            return True, live.row
        row = await self.get_row(session_id)
        if row.state == "running" and row.pid and row.owner_pid != os.getpid() and group_alive(row.pid):
            # Owned by another server process sharing this data directory: its supervisor records the end.
            await terminate_group(row.pid)
            return True, row
        return False, row

    async def stop_all(self) -> None:
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for session_id in list(self._live):
                    tg.start_soon(self.stop, session_id)

    # --- records ----------------------------------------------------------------------------------
    async def get_row(self, session_id: str) -> SessionRow:
        live = self._live.get(session_id)
        if live is not None:
            return live.row
        row = await self._store.get_session(session_id)
        if row is None:
            raise NotFound(PROVIDER, f"no local session {session_id!r}", hint="Call listSessions to see session ids.")
        return row

    def live(self, session_id: str) -> LiveSession | None:
        return self._live.get(session_id)

    def output(self, session_id: str, stream: str) -> Output:
        return read_capped(self.output_path(session_id, stream), self.output_cap)

    def output_path(self, session_id: str, stream: str) -> Path:
        return self._dir / f"{session_id}.{stream}"

    async def mark_lost(self) -> int:
        """Sessions left 'running' by a server that is gone are shown as lost, not running forever;
        the slot it had made ahead is removed."""
        for session_id, owner_pid in await self._store.spare_slots():
            if owner_pid != os.getpid() and not _process_exists(owner_pid):
                self._discard(session_id)
        lost = 0
        for row in await self._store.running_sessions():
            if row.owner_pid == os.getpid() or _process_exists(row.owner_pid):
                continue
            message = "the server that ran it stopped before it finished"
            if row.pid and _started_by(row):
                await terminate_group(row.pid)
                message += "; its leftover processes were stopped at restart"
            self._store.finish_session(row.id, "lost", None, time.time(), message)
            lost += 1
        await self._store.flush()
        return lost


def _spawn_error(exc: OSError) -> ProviderError:
    if exc.errno == errno.E2BIG:
        return InvalidInput(
            PROVIDER,
            "the command (or env) is too large for the operating system to start (Linux takes up to 128 KiB "
            "per argument)",
            hint="Pass a long script on stdin instead, e.g. command='sh' with the script as stdin.",
        )
    return Unavailable(PROVIDER, f"could not start /bin/sh: {exc.strerror}", hint="Check the machine, then retry.")


def _started_by(row: SessionRow) -> bool:
    """Is this session's process group still there? Its members must have started at or after the
    session did: an older process holding a reused pid belongs to someone else and is left alone."""
    assert row.pid is not None
    members = group_members(row.pid)
    return bool(members) and min(members.values()) >= row.started_at - 1.0


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
