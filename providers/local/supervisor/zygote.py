"""The zygote: one per server, a Python process with the supervisor's code already loaded, which forks a new
supervisor whenever its server asks ("more") and hands the server that supervisor's socket ("spare").
Forking from it costs a fraction of a millisecond; starting a Python would cost tens."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
from typing import Any

from . import network
from .channel import receive, send
from .limits import Limits
from .records import identity
from .session import Supervisor


def zygote(fd: int, data_dir: str, limits: dict[str, Any]) -> None:
    """Serve the server on socket `fd` until it goes; the supervisors live on after that."""
    server = socket.socket(fileno=fd)
    os.umask(0o077)  # session files are the server user's alone
    gc.freeze()  # what we imported is never collected: forked supervisors need not copy it to scan it
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel, not by us
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the server
    sessions = os.path.join(data_dir, "sessions")
    with contextlib.suppress(OSError):  # else the first supervisor says why it cannot make a directory
        os.makedirs(sessions, mode=0o700, exist_ok=True)
    while True:
        try:
            request, _ = receive(server)
        except OSError:
            request = None
        if request is None:
            return  # the server has gone
        if request.get("op") == "more":
            for _ in range(int(request.get("n", 1))):
                _fork_supervisor(server, sessions, limits, str(request.get("kind", "session")))
        elif request.get("op") == "network":
            network.configure(request)


def _fork_supervisor(server: socket.socket, sessions: str, limits: dict[str, Any], kind: str) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            server.close()
            theirs.close()
            Supervisor(ours, Limits(limits, kind), sessions).serve()
        except BaseException:
            code = 70
        os._exit(code)
    ours.close()
    send(server, {"op": "spare", "supervisor": identity(pid), "kind": kind}, [theirs.fileno()])
    theirs.close()
