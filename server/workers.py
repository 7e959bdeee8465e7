"""`--workers N`: N server processes on one port (stateless HTTP), sharing the state backend.

The parent reserves the port, decides who may call (one token for all workers), prints where to connect, and
keeps N workers running: each is `runtimes-mcp` serving HTTP on its own listening socket on that port
(SO_REUSEPORT), so the kernel spreads new connections evenly among them. SIGTERM/SIGINT reach every worker,
which stops gracefully; a worker that dies is started again, after a pause that doubles while workers keep
failing soon after their start, until the parent gives up with one line saying why. Workers end with the
parent however it ends (server/parent_watch.py). Launchers run once: a launcher's lock in the data directory
lets one worker run it.

A worker runs the parent's own copy of the package, isolated (`python -I`): neither the directory it is
started in (an `mcp.py` or a `server/` there) nor PYTHON* variables can change what it imports, and it gets a
fixed environment: its settings and what the libraries it uses read, nothing else of the parent's."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from providers.registry import PROVIDERS
from server.config import Settings
from server.http import WORKER_PORT_ENV, announce, bind, check_issuer, decide_access
from server.parent_watch import PARENT_ENV, parent_spec

BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 8.0
EARLY_EXIT_S = 30.0  # a worker that ends sooner after its start failed to start; a later end is a one-off
GIVE_UP_AFTER = 5  # early exits in a row
POLL_S = 0.2
STOP_MARGIN_S = 15.0  # beyond the graceful stop's grace: closing the state, stopping local processes
# What a worker keeps of the parent's environment (besides every setting's variable): what the server and the
# libraries it uses read (locale, home and data directories, CA certificates, proxies, libpq's PG*).
KEPT_ENV = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR"}
KEPT_ENV |= {f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL", "NO")} | {"http_proxy", "https_proxy", "no_proxy"}
KEPT_PREFIXES = ("RUNTIMES_MCP_", "LC_", "XDG_", "PG")
# `python -I` leaves out the user's site-packages and PYTHONPATH: the parent says where its package is.
BOOT = (
    "import runpy, sys\n"
    "root = sys.argv.pop(1)\n"
    "if root not in sys.path:\n"
    "    sys.path.append(root)\n"
    "runpy.run_module('server.cli', run_name='__main__', alter_sys=True)\n"
)


def worker_command(argv: Sequence[str]) -> list[str]:
    """This Python, isolated, running server.cli from the directory this process imported it from."""
    import server

    root = str(Path(server.__file__).resolve().parent.parent)
    return [sys.executable, "-I", "-c", BOOT, root, *argv]


def worker_env(extra: dict[str, str]) -> dict[str, str]:
    settings = {s.env.upper() for provider in PROVIDERS.values() for s in provider.settings}
    kept = {
        name: value
        for name, value in os.environ.items()
        if name in KEPT_ENV or name.upper() in settings or name.startswith(KEPT_PREFIXES)
    }
    return {**kept, **extra}


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    pending: bytes = b""  # the start of a stderr line not yet ended
    last_line: str = ""  # the last line it wrote to stderr: the cause, if it failed


class WorkerPool:
    """N workers, their stderr passed on line by line (and its last line kept), restarted with backoff."""

    def __init__(self, command: list[str], env: dict[str, str], read_fd: int, size: int) -> None:
        self.command, self.env, self.read_fd = command, env, read_fd
        self.selector = selectors.DefaultSelector()
        self.slots: list[Worker | None] = [None] * size
        self.restart_at: list[float] = [0.0] * size
        self.early_exits = 0
        self.last_cause = ""

    def start(self, slot: int) -> Worker:
        process = subprocess.Popen(self.command, env=self.env, stderr=subprocess.PIPE, pass_fds=(self.read_fd,))
        assert process.stderr is not None
        os.set_blocking(process.stderr.fileno(), False)
        worker = Worker(process)
        self.selector.register(process.stderr, selectors.EVENT_READ, worker)
        self.slots[slot] = worker
        return worker

    def pump(self, timeout_s: float) -> None:
        for key, _ in self.selector.select(timeout_s):
            self._read(key.data)

    def _read(self, worker: Worker) -> None:
        assert worker.process.stderr is not None
        try:
            data = os.read(worker.process.stderr.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(worker.process.stderr)
            worker.process.stderr.close()
            data = b"\n" if worker.pending else b""
        sys.stderr.buffer.write(data)
        sys.stderr.flush()
        *lines, worker.pending = (worker.pending + data).split(b"\n")
        for line in lines:
            if line.strip():
                worker.last_line = line.decode(errors="replace").strip()

    def ended(self) -> list[tuple[int, Worker]]:
        """The workers that have exited, each with its stderr read to the end (what it had to say)."""
        gone = []
        for slot, worker in enumerate(self.slots):
            if worker is not None and worker.process.poll() is not None:
                if worker.process.stderr is not None and not worker.process.stderr.closed:
                    self._read(worker)  # all it wrote before exiting is in the pipe
                    if worker.process.stderr is not None and not worker.process.stderr.closed:
                        self.selector.unregister(worker.process.stderr)  # a child of its own keeps it open
                        worker.process.stderr.close()
                self.slots[slot] = None
                gone.append((slot, worker))
        return gone

    def backoff(self, slot: int, worker: Worker) -> bool:
        """Schedule the slot's restart; False when workers keep failing at start and it is time to give up."""
        code = worker.process.returncode
        cause = f"exit code {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}"
        self.last_cause = f"{cause}: {worker.last_line}" if worker.last_line else cause
        early = time.monotonic() - worker.started < EARLY_EXIT_S
        self.early_exits = self.early_exits + 1 if early else 0
        if self.early_exits >= GIVE_UP_AFTER:
            return False
        delay = min(BACKOFF_MAX_S, BACKOFF_START_S * 2 ** max(0, self.early_exits - 1)) if early else 0.0
        self.restart_at[slot] = time.monotonic() + delay
        print(
            f"runtimes-mcp: worker {worker.process.pid} exited ({self.last_cause}); starting another"
            + (f" in {delay:g} s" if delay else ""),
            file=sys.stderr,
            flush=True,
        )
        return True

    def due(self) -> list[int]:
        now = time.monotonic()
        return [slot for slot, worker in enumerate(self.slots) if worker is None and self.restart_at[slot] <= now]

    def stop(self, wait_s: float) -> None:
        """SIGTERM to every worker; wait for them (their stderr passed on meanwhile), then SIGKILL what is left."""
        live = [w for w in self.slots if w is not None and w.process.poll() is None]
        for worker in live:
            worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while any(w.process.poll() is None for w in live) and time.monotonic() < deadline:
            self.pump(POLL_S)
        for worker in live:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
        self.ended()


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
    if access.issuer is not None:
        check_issuer(settings)  # each worker reads it again at its start
    reserved = bind(host, port, listen=False)
    port = reserved.getsockname()[1]
    read_fd, write_fd = os.pipe()  # the write end stays here: workers see end-of-file when this process is gone
    extra = {WORKER_PORT_ENV: str(port), PARENT_ENV: parent_spec(read_fd, settings.shutdown_grace_s + STOP_MARGIN_S)}
    if access.token is not None:
        extra["RUNTIMES_MCP_HTTP_TOKEN"] = access.token  # a generated token is shared by every worker
    pool = WorkerPool(worker_command(argv), worker_env(extra), read_fd, workers)
    stopping = False

    def stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        started = [pool.start(slot).process.pid for slot in range(workers)]
        announce(access, host, port, sys.stderr)
        print(f"runtimes-mcp: {workers} worker processes (pids {', '.join(map(str, started))})", file=sys.stderr)
        while not stopping:
            pool.pump(POLL_S)
            for slot, worker in pool.ended():
                if not stopping and not pool.backoff(slot, worker):
                    print(
                        f"runtimes-mcp: giving up: workers failed {GIVE_UP_AFTER} times in a row within "
                        f"{EARLY_EXIT_S:g} s of their start (last: {pool.last_cause})",
                        file=sys.stderr,
                        flush=True,
                    )
                    pool.stop(settings.shutdown_grace_s + STOP_MARGIN_S)
                    return 1
            for slot in pool.due() if not stopping else []:
                pool.start(slot)
        pool.stop(settings.shutdown_grace_s + STOP_MARGIN_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reserved.close()
        os.close(write_fd)
        os.close(read_fd)
    return 0
