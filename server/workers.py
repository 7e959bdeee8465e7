"""`--workers N`: N server processes on one port (stateless HTTP), sharing the state backend.

The parent reserves the port, decides who may call (one token for all workers), prints where to connect, and
keeps N workers running: each is `runtimes-mcp` serving HTTP on its own listening socket on that port
(SO_REUSEPORT), so the kernel spreads new connections evenly among them. SIGTERM/SIGINT reach every worker,
which stops gracefully; a worker that dies is started again. Launchers run once: a launcher's lock in the
data directory lets one worker run it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from server.config import ConfigError, Settings
from server.http import WORKER_PORT_ENV, announce, decide_access

RESTART_DELAY_S = 1.0


def bind(host: str, port: int, *, listen: bool, shared: bool = True) -> socket.socket:
    """A socket on host:port; `shared`: other processes of this user can bind it too (SO_REUSEPORT, for
    --workers). The parent's is not listening: it only holds the port (a listening one would get its share of
    the connections). A port in use is a ConfigError naming it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off only for sockets that say they are TCP (else 40 ms stalls)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port, or stop what uses it"
        ) from None
    return sock


def serve_workers(
    settings: Settings,
    argv: Sequence[str],
    *,
    workers: int,
    host: str,
    port: int,
    insecure_no_auth: bool,
    unauthenticated_exec: bool,
) -> int:
    """Run `workers` copies of this command (`argv` without --workers) on one socket until a signal."""
    access = decide_access(settings, insecure_no_auth, unauthenticated_exec)
    reserved = bind(host, port, listen=False)
    port = reserved.getsockname()[1]
    env = dict(os.environ, **{WORKER_PORT_ENV: str(port)})
    if access.token is not None:
        env["RUNTIMES_MCP_HTTP_TOKEN"] = access.token  # a generated token is shared by every worker
    command = [sys.executable, "-m", "server.cli", *argv]
    stopping = False

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=env)

    def stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    children = [start() for _ in range(workers)]
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    announce(access, host, port, sys.stderr)
    print(f"runtimes-mcp: {workers} worker processes (pids {', '.join(str(c.pid) for c in children)})", file=sys.stderr)
    try:
        while not stopping:
            time.sleep(0.2)
            for i, child in enumerate(children):
                if child.poll() is not None and not stopping:
                    print(
                        f"runtimes-mcp: worker {child.pid} exited ({child.returncode}); starting another",
                        file=sys.stderr,
                    )
                    time.sleep(RESTART_DELAY_S)
                    children[i] = start()
        for child in children:
            try:
                child.wait(settings.shutdown_grace_s + 15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reserved.close()
    return 0
