"""The server's side of the session supervisors: start the zygote, keep supervisors ready, talk to them.
See providers/local/supervisor/ for the other side, and CONTRIBUTING.md for the protocol.

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
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from providers.errors import Unavailable
from providers.local.ids import PROVIDER
from providers.local.supervisor import channel, records

logger = logging.getLogger(__name__)
ZYGOTE = Path(records.__file__).resolve().parent / "__main__.py"
LOG = "supervisors.log"
READY_WAIT_S = 20.0  # a cold zygote (a fresh Python) takes ~0.1 s; a loaded machine much longer
# Supervisors are reused one session after another, so a few cover a steady stream of runs; more are forked
# when runs overlap.
IDLE_SUPERVISORS = 4
ZYGOTE_RESTARTS = 5  # in a minute
ZYGOTE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


def _no_supervisor(cause: str) -> Unavailable:
    """No supervisor or session directory could be had: `cause` says why (e.g. the disk is full)."""
    hint = "Free space or fix permissions in the data directory (RUNTIMES_MCP_DATA_DIR), then retry."
    return Unavailable(PROVIDER, cause, hint=hint)


async def receive(sock: socket.socket, with_fds: bool = False) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message on a supervisor socket (None at end of stream), and any descriptors passed with it."""
    while True:
        try:
            return channel.receive(sock, max_fds=1 if with_fds else 0)
        except BlockingIOError:
            try:
                await anyio.wait_readable(sock)
            except anyio.ClosedResourceError:  # closed by this server while we waited: its end too
                return None, []
        except OSError:
            return None, []


send = channel.send


@dataclass
class Spare:
    """A supervisor waiting for a job, and the session directory it made for it."""

    id: str
    dir: Path
    supervisor: str  # its identity (see records.identity)
    channel: socket.socket
    kind: str = "session"


class Spawner:
    """One zygote per server. `take()` returns a ready supervisor with its session directory; `give_back()`
    returns a supervisor whose session ended, for the next one."""

    def __init__(
        self, data_dir: Path, limits: dict[str, Any] | None = None, network: dict[str, Any] | None = None
    ) -> None:
        """`network`: the message that gives the zygote (and every supervisor it forks) the network policy."""
        self._network = network
        self._sessions = data_dir / "sessions"
        self._data_dir = data_dir
        self._limits = limits or {}
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._idle: dict[str, deque[tuple[str, socket.socket]]] = {"session": deque(), "launcher": deque()}
        self._forks_asked: dict[str, int] = {"session": 0, "launcher": 0}
        self._waiting: dict[str, int] = {"session": 0, "launcher": 0}
        self._ready = anyio.Event()
        self._error: str | None = None
        self._closed = False
        self._listened = anyio.Event()  # set when _listen has read the zygote's last message

    def start(self, task_group: Any) -> None:
        self._start_zygote()
        task_group.start_soon(self._listen)

    def _start_zygote(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        env = {k: v for k, v in os.environ.items() if k in ZYGOTE_ENV}
        # Supervisors outlive the server, so they must not hold its stdio: a client that reads the server's
        # stderr until it closes would wait for them. What they have to say goes to a log in the data directory.
        log = os.open(self._data_dir / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            zygote = [str(ZYGOTE), "zygote", str(theirs.fileno()), str(self._data_dir), json.dumps(self._limits)]
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", *zygote],
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
        self._forks_asked = {kind: 0 for kind in self._forks_asked}
        if self._network is not None:
            send(ours, self._network)
        self._fork(1)

    def _fork(self, n: int, kind: str = "session") -> None:
        if self._sock is not None and send(self._sock, {"op": "more", "n": n, "kind": kind}):
            self._forks_asked[kind] += n

    async def _listen(self) -> None:
        """Take the supervisors the zygote forks. A zygote that dies (it should not: killed by hand, or by the
        OOM killer) is started again, a few times a minute at most."""
        restarts: list[float] = []
        try:
            while True:
                zygote = self._sock
                assert zygote is not None
                await self._take_supervisors(zygote)
                if self._closed:
                    return
                restarts = [t for t in restarts if t > time.monotonic() - 60] + [time.monotonic()]
                if len(restarts) > ZYGOTE_RESTARTS:
                    self._error = (
                        "the session supervisor process keeps ending; see supervisors.log in the data directory"
                    )
                    self._forks_asked = {kind: 0 for kind in self._forks_asked}  # none will come
                    logger.error("runtimes-mcp: %s", self._error)
                    self._wake()
                    return
                logger.error("runtimes-mcp: the session supervisor process ended unexpectedly; starting it again")
                zygote.close()
                if self._process is not None:
                    self._process.wait()
                self._start_zygote()
        finally:
            self._listened.set()

    async def _take_supervisors(self, zygote: socket.socket) -> None:
        while True:
            message, fds = await receive(zygote, with_fds=True)
            if message is None or self._closed or not fds:
                for fd in fds:
                    os.close(fd)  # a supervisor on its way while we closed: it leaves by itself
                if message is None:
                    self._wake()
                    return
                continue
            kind = str(message.get("kind", "session"))
            self._forks_asked[kind] = max(0, self._forks_asked[kind] - 1)
            sock = socket.socket(fileno=fds[0])
            sock.setblocking(False)
            self._idle[kind].append((str(message["supervisor"]), sock))
            self._wake()

    def _wake(self) -> None:
        """Wake every task waiting in take(); later waiters wait for the next message."""
        ready, self._ready = self._ready, anyio.Event()
        ready.set()

    async def take(self, kind: str = "session") -> Spare:
        """A ready supervisor (of a session or a launcher: a launcher's has no CPU limit) and its session
        directory. Raises Unavailable with the cause when none can be had."""
        self._waiting[kind] += 1
        try:
            with anyio.fail_after(READY_WAIT_S):
                while True:
                    spare = await self._take(kind)
                    if spare is not None:
                        return spare
        except TimeoutError:
            raise _no_supervisor(
                self._error or f"no session supervisor became ready within {READY_WAIT_S:g} s"
            ) from None
        finally:
            self._waiting[kind] -= 1

    async def _take(self, kind: str) -> Spare | None:
        idle = self._idle[kind]
        missing = self._waiting[kind] - len(idle) - self._forks_asked[kind]
        if missing > 0:
            self._fork(missing, kind)
        while not idle:
            if self._error is not None and not self._forks_asked[kind]:
                raise _no_supervisor(self._error)
            await self._ready.wait()
        supervisor, sock = idle.pop()  # the one back last: its memory is the likeliest in the caches
        try:
            ready, _ = await receive(sock)  # it sends this once its next session's directory is made
        except BaseException:
            sock.close()  # cancelled meanwhile: let it go (an unclosed socket would keep it waiting)
            raise
        if ready is None:  # it has gone (retired, or killed): take another
            sock.close()
            return None
        if ready.get("error"):
            sock.close()
            self._error = str(ready["error"])
            raise _no_supervisor(self._error)
        self._error = None
        session_id = str(ready["id"])
        return Spare(session_id, self._sessions / session_id, supervisor, sock, kind)

    def refill(self, kind: str = "session") -> None:
        """After a job is handed over: fork one for the next run if none is left. Not before the hand-over: the
        message wakes the zygote, and on a small machine that would run ahead of the supervisor."""
        if kind == "session" and not self._idle[kind] and not self._forks_asked[kind]:
            self._fork(1)

    def give_back(self, supervisor: str, sock: socket.socket, kind: str = "session") -> None:
        """A supervisor whose session ended, ready for another (or let go, when enough are idle)."""
        idle = self._idle[kind]
        if self._closed or len(idle) >= (IDLE_SUPERVISORS if kind == "session" else 1):
            sock.close()  # it removes its spare directory and leaves when it sees its server has gone
        else:
            idle.append((supervisor, sock))
            self._wake()

    async def close(self) -> None:
        """Stop the zygote and let idle supervisors go. Supervisors of running sessions live on."""
        self._closed = True
        for idle in self._idle.values():
            for _, supervisor in idle:
                supervisor.close()
            idle.clear()
        sock, self._sock = self._sock, None
        process, self._process = self._process, None
        if sock is not None:
            # The zygote sees the end of our requests and exits; supervisors already on their way to us are
            # let go by _listen as it reads the rest.
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
    if not records.alive(ident):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(records.pid_of(ident), sig)
        return True
    return False
