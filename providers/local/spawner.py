"""The server's side of the session supervisors: start the zygote, keep supervisors and session directories
ready, talk to supervisors. See providers/local/supervisor.py for the other side.

Every socket here is non-blocking and served by the event loop: a supervisor's message wakes the task that
waits for it, with no thread hop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from providers.local import supervisor as sv

logger = logging.getLogger(__name__)
SCRIPT = Path(sv.__file__).resolve()
LOG = "supervisors.log"
READY_WAIT_S = 20.0  # a cold zygote (a fresh Python) takes ~0.1 s; a loaded machine much longer
# Supervisors are reused one session after another, so a few cover a steady stream of runs; more are forked
# when runs overlap. Session directories cost a few file creations each (milliseconds on a busy disk), so a
# stock is made ahead, at the lowest CPU priority, and grows while runs use it faster than it fills.
IDLE_SUPERVISORS = 4
FIRST_SLOTS = 8
MAX_SLOTS = 64


class SpawnerError(Exception):
    """No supervisor or session directory could be had: the message says why (e.g. the disk is full)."""


async def receive(sock: socket.socket, with_fds: bool = False) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message on a supervisor socket (None at end of stream), and any descriptors passed with it."""
    while True:
        try:
            data, fds = sv.recv_message(sock, max_fds=1 if with_fds else 0)
        except BlockingIOError:
            await anyio.wait_readable(sock)
            continue
        except OSError:
            return None, []
        if not data:
            return None, fds
        message: dict[str, Any] = json.loads(data)
        return message, fds


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> bool:
    data = json.dumps(message, separators=(",", ":")).encode()
    try:
        if fds:
            socket.send_fds(sock, [data], fds)
        else:
            sock.send(data)
    except OSError:
        return False
    return True


@dataclass
class Spare:
    """A supervisor waiting for a job, and the session directory made ready for it."""

    id: str
    dir: Path
    supervisor: str  # its identity (see supervisor.identity)
    channel: socket.socket
    kind: str = "session"


class Spawner:
    """One zygote per server. `take()` returns a ready supervisor with a session directory; `give_back()`
    returns a supervisor whose session ended, for the next one."""

    def __init__(
        self,
        data_dir: Path,
        limits: dict[str, Any] | None = None,
        warm: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        """`warm`: for a session directory, how to start its sandbox ahead of time (argv and env), when
        commands run sandboxed."""
        self._sessions = data_dir / "sessions"
        self._warm = warm
        self._prepared: dict[str, str] = {}  # idle supervisor -> the session directory its sandbox is ready in
        self._data_dir = data_dir
        self._limits = limits or {}
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._supervisors: dict[str, deque[tuple[str, socket.socket]]] = {"session": deque(), "launcher": deque()}
        self._forks_asked: dict[str, int] = {"session": 0, "launcher": 0}
        self._waiting: dict[str, int] = {"session": 0, "launcher": 0}
        self._slots: deque[str] = deque()
        self._slot_target = FIRST_SLOTS
        self._slots_asked = 0
        self._ready = anyio.Event()
        self._error: str | None = None
        self._closed = False
        self._listened = anyio.Event()  # set when _listen has read the zygote's last message

    def start(self, task_group: Any) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        # Supervisors outlive the server, so they must not hold its stdio: a client that reads the server's
        # stderr until it closes would wait for them. What they have to say goes to a log in the data directory.
        log = os.open(self._data_dir / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    str(SCRIPT),
                    "zygote",
                    str(theirs.fileno()),
                    str(self._data_dir),
                    json.dumps(self._limits),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C is for the server, not for this
            )
        finally:
            theirs.close()
            os.close(log)
        self._sock = ours
        self._fork(1)
        self._ask_slots()
        task_group.start_soon(self._listen)

    def _fork(self, n: int, kind: str = "session") -> None:
        if self._sock is not None and send(self._sock, {"op": "more", "n": n, "kind": kind}):
            self._forks_asked[kind] += n

    def _ask_slots(self) -> None:
        """Refill the stock of session directories (made or asked for) to its target once it is down to half:
        one request and one answer for several runs, not a round of messages through the zygote for each."""
        stock = len(self._slots) + self._slots_asked
        missing = self._slot_target - stock
        if (
            stock <= self._slot_target // 2
            and self._sock is not None
            and send(self._sock, {"op": "slots", "n": missing})
        ):
            self._slots_asked += missing

    async def _listen(self) -> None:
        assert self._sock is not None
        sock = self._sock
        try:
            await self._serve(sock)
        finally:
            self._listened.set()

    async def _serve(self, sock: socket.socket) -> None:
        while True:
            message, fds = await receive(sock, with_fds=True)
            if message is None:
                for fd in fds:
                    os.close(fd)
                if not self._closed:
                    self._error = "the session supervisor process ended unexpectedly"
                    logger.error("runtimes-mcp: %s", self._error)
                self._wake()
                return
            op = message.get("op")
            if self._closed:  # what was on its way while we closed: nobody will use it
                for fd in fds:
                    os.close(fd)
                if op == "slots":
                    sv.remove_slots(str(self._sessions), message.get("ids", []))
                continue
            if op == "spare" and fds:
                kind = str(message.get("kind", "session"))
                self._forks_asked[kind] = max(0, self._forks_asked[kind] - 1)
                channel = socket.socket(fileno=fds[0])
                channel.setblocking(False)
                self._supervisors[kind].append((str(message["supervisor"]), channel))
                self._prepare(str(message["supervisor"]), channel, kind)
            elif op == "slots":
                ids = [str(i) for i in message.get("ids", [])]
                self._slots_asked = max(0, self._slots_asked - len(ids))
                self._slots.extend(ids)
                self._error = None
                for supervisor, channel in self._supervisors["session"]:
                    self._prepare(supervisor, channel, "session")
            else:
                for fd in fds:
                    os.close(fd)
                self._slots_asked = 0
                self._error = str(message.get("error") or message)
            self._wake()

    def _wake(self) -> None:
        """Wake every task waiting in take(); later waiters wait for the next message."""
        ready, self._ready = self._ready, anyio.Event()
        ready.set()

    async def take(self, kind: str = "session") -> Spare:
        """A ready supervisor (of a session or a launcher: a launcher's has no CPU limit) and a session
        directory. Raises SpawnerError with the cause when none can be had."""
        supervisors = self._supervisors[kind]
        self._waiting[kind] += 1
        try:
            return await self._take(kind, supervisors)
        finally:
            self._waiting[kind] -= 1

    def _prepare(self, supervisor: str, channel: socket.socket, kind: str) -> None:
        """Give an idle supervisor its next session directory now, so that it starts the sandbox ahead."""
        if self._warm is None or kind != "session" or not self._slots or supervisor in self._prepared:
            return
        session_id = self._slots.popleft()
        directory = str(self._sessions / session_id)
        if send(channel, {"op": "prepare", "dir": directory, **self._warm(directory)}):
            self._prepared[supervisor] = session_id
        else:
            self._slots.appendleft(session_id)
        self._ask_slots()

    def _ready_for(self, supervisors: deque[tuple[str, socket.socket]]) -> bool:
        return bool(supervisors) and (bool(self._slots) or any(ident in self._prepared for ident, _ in supervisors))

    async def _take(self, kind: str, supervisors: deque[tuple[str, socket.socket]]) -> Spare:
        missing = self._waiting[kind] - len(supervisors) - self._forks_asked[kind]
        if missing > 0:
            self._fork(missing, kind)  # one for each caller waiting
        if not self._slots and not self._ready_for(supervisors):
            if self._slot_target < MAX_SLOTS:
                self._slot_target *= 2  # runs use them faster than they are made: keep more in stock
            if self._sock is not None:
                self._error = None
                send(self._sock, {"op": "slot_now"})  # made at once, not at the lowest priority
        if not self._ready_for(supervisors):
            with anyio.move_on_after(READY_WAIT_S):
                while not self._ready_for(supervisors) and self._error is None:
                    await self._ready.wait()
        if not self._ready_for(supervisors):
            raise SpawnerError(self._error or f"no session supervisor became ready within {READY_WAIT_S:g} s")
        # One whose sandbox is ready, if any; else the one back last (its memory is the likeliest in the caches).
        ready = next((i for i, (ident, _) in enumerate(supervisors) if ident in self._prepared), len(supervisors) - 1)
        supervisor, channel = supervisors[ready]
        del supervisors[ready]
        session_id = self._prepared.pop(supervisor, None) or self._slots.popleft()
        return Spare(session_id, self._sessions / session_id, supervisor, channel, kind)

    def refill(self, kind: str = "session") -> None:
        """After a job is handed over: ask for what the next runs will need. Not before the hand-over: the
        message wakes the zygote, and on a small machine that would run ahead of the supervisor."""
        self._ask_slots()
        if kind == "session" and not self._supervisors[kind] and not self._forks_asked[kind]:
            self._fork(1)  # the next run may come before this one ends

    def return_slot(self, session_id: str) -> None:
        """A session directory taken but not used."""
        self._slots.appendleft(session_id)

    def give_back(self, supervisor: str, channel: socket.socket, kind: str = "session") -> None:
        """A supervisor whose session ended, ready for another (or let go, when enough are idle)."""
        idle = self._supervisors[kind]
        if self._closed or len(idle) >= (IDLE_SUPERVISORS if kind == "session" else 1):
            channel.close()  # it leaves when it sees its server has gone
        else:
            idle.append((supervisor, channel))
            self._prepare(supervisor, channel, kind)
            self._wake()

    async def close(self) -> None:
        """Stop the zygote and let idle supervisors go. Supervisors of running sessions live on; unused session
        directories are removed."""
        self._closed = True
        for idle in self._supervisors.values():
            for _, channel in idle:
                channel.close()
            idle.clear()
        sv.remove_slots(str(self._sessions), [*self._slots, *self._prepared.values()])
        self._slots.clear()
        self._prepared.clear()
        sock, self._sock = self._sock, None
        process, self._process = self._process, None
        if sock is not None:
            # The zygote sees the end of our requests, stops its slot maker and removes what that made
            # meanwhile; directories and supervisors already on their way to us are let go by _listen
            # as it reads the rest, up to the zygote's end of stream.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        with anyio.move_on_after(5):  # one deadline for the zygote's last word and its exit
            if sock is not None:
                await self._listened.wait()
            while process is not None and process.poll() is None:
                await anyio.sleep(0.01)
        if sock is not None:
            sock.close()
        if process is not None and process.returncode is None:
            process.kill()
            process.wait()


def signal_supervisor(ident: str, sig: int) -> bool:
    """Signal a supervisor by identity; False when that process is gone (a reused pid is never signalled)."""
    if not sv.alive(ident):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(sv.pid_of(ident), sig)
        return True
    return False
