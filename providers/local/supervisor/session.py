"""A supervisor: the process that owns one session at a time, independent of any server.

It makes its next session directory while it waits, takes a job from its server, starts the command, enforces
the timeout and the caps, records the run in the session's `job.json` (the job before the command starts, its
pid once it runs, how it ended when it ends), tells the server if it is still there, reaps every process the
run left behind (it is a child subreaper, so a daemonizing command cannot slip away), and takes the next job.
It is in a session of its own (setsid): a server that exits or crashes leaves it running, and any server on
the data directory reads its record and stops it (SIGTERM after writing `stop` with a reason). Once its
server has gone it finishes the run it has and leaves.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time
from typing import Any

from .channel import receive, send
from .limits import Limits, cgroup_name
from .monitor import Monitor, cut_output, output_size
from .network import RunNetwork
from .reaping import reap, signal_all, sweep
from .records import (
    DISK_FULL,
    INPUT_CLOSED,
    PR_SET_CHILD_SUBREAPER,
    RECORD,
    REQUEST,
    STDIN,
    STDIN_FIFO,
    STOP,
    STREAMS,
    WORKDIR,
    disk_full,
    identity,
    make_session_dir,
    nobody_serving,
    prctl,
    read_json,
    remove_unused,
    write_json,
)
from .spawn import spawn, spawn_sandbox

MAX_JOBS = 200
SERVING_CHECK_S = 1.0  # how often an orphaned launcher's run looks for a serving server


class Supervisor:
    def __init__(self, channel: socket.socket, limits: Limits, sessions: str) -> None:
        self.channel: socket.socket | None = channel
        self.limits = limits
        self.sessions = sessions
        self.identity = ""
        self.jobs = 0
        self.spare: str | None = None  # the directory made for the next job
        self.reset()

    def reset(self) -> None:
        self.session_id = ""
        self.dir = ""
        self.job: dict[str, Any] = {}
        self.record: dict[str, Any] = {}
        self.pid = 0  # the command's
        self.status: int | None = None  # the command's wait status
        self.reason: str | None = None  # why we are ending it; None while it runs on its own
        self.detail: str | None = None
        self.kill_at: float | None = None
        self.monitor: Monitor | None = None
        self.input: int | None = None  # the writing end of an interactive run's stdin
        self.serving_check_at: float | None = None  # an orphaned launcher's run: when to look for servers
        self.network: RunNetwork | None = None
        self.fds: dict[str, int] = {}  # descriptors that came with the job, by what they are for

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def serve(self) -> None:
        os.setsid()
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        # Handled, not ignored: an exec resets handled signals, so the command starts with default ones.
        # SIGXCPU too: the supervisor takes the run's CPU limit for the instant of a spawn.
        signals = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGXCPU)
        for sig in signals:
            signal.signal(sig, lambda *_: None)  # the wakeup fd is what we listen to
        self.identity = identity(os.getpid()) or f"pid:{os.getpid()}"
        self.limits.apply(cgroup_name(self.identity))
        try:
            while self.channel is not None and self.jobs < MAX_JOBS and self.offer():
                self.limits.begin()  # the counters as the next run finds them, read while we wait for it
                job = self.wait_for_job()
                if not job:
                    return
                self.jobs += 1
                self.run(job)
                for fd in self.fds.values():
                    os.close(fd)
                self.close_input()
                self.reset()
        finally:
            if self.spare is not None:
                remove_unused(os.path.join(self.sessions, self.spare))
            self.limits.close()

    def offer(self) -> bool:
        """Make the next session's directory and tell the server this supervisor is ready for it."""
        try:
            self.spare = make_session_dir(self.sessions, self.identity, self.limits.limits.get("run_as"))
        except OSError as exc:
            reason = f"cannot create the session's files in {self.sessions}: {exc.strerror or exc}"
            send(self.channel, {"op": "ready", "error": reason})
            return False
        return send(self.channel, {"op": "ready", "id": self.spare})

    def wait_for_job(self) -> dict[str, Any]:
        assert self.channel is not None
        try:
            job, fds = receive(self.channel, max_fds=4)
        except OSError:
            job, fds = None, []
        if job is None:
            for fd in fds:
                os.close(fd)
            return {}
        if job.get("file") == REQUEST:  # too large for one message
            request = os.path.join(self.sessions, str(job["id"]), REQUEST)
            job = read_json(request) or job
            with contextlib.suppress(OSError):
                os.unlink(request)
        self.fds = dict(zip(job.get("fds", []), fds, strict=False))
        return job

    # --- start --------------------------------------------------------------------------------------------
    def run(self, job: dict[str, Any]) -> None:
        self.job, self.session_id = job, str(job["id"])
        self.dir = os.path.join(self.sessions, self.session_id)
        if self.session_id == self.spare:
            self.spare = None
        try:
            self.start()
        except OSError as exc:
            self.close_network()
            send(self.channel, {"op": "failed", "errno": exc.errno, "error": exc.strerror or str(exc)})
            remove_unused(self.dir)
            return
        self.watch()
        self.finish()

    def start(self) -> None:
        job = self.job
        self.record = {
            **job.get("record", {}),
            "session_id": self.session_id,
            "supervisor": self.identity,
            "started_at": time.time(),
        }
        if self.limits.cgroup is not None:
            self.record["cgroup"] = sorted(set(self.limits.cgroup.dirs.values()))
        if job.get("network"):
            self.network = RunNetwork(job["network"], self.dir, self.path("stderr"))
            self.network.start()
            self.record["ports"] = self.network.published
        write_json(self.path(RECORD), self.record)  # before the process exists: no crash leaves it unrecorded
        self.started = time.monotonic()
        self.streams = [self.path(s) for s in STREAMS]
        stdin = self.path(STDIN) if job.get("stdin") else os.devnull
        fds = [self.open_input() if job.get("interactive") else os.open(stdin, os.O_RDONLY | os.O_CLOEXEC)]
        try:
            fds += [os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC) for path in self.streams]
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        if self.network is not None:
            fds += self.network.hand_over()  # the relay's, from relay.FIRST_FD on
        cgroup, user = self.limits.cgroup, self.limits.limits.get("run_as")
        cwd = self.fds.get("cwd")
        if job.get("sandboxed"):
            self.pid = spawn_sandbox(job["bwrap"], job["argv"], fds, cgroup, user, self.limits.for_runs)
        else:
            try:
                if cwd is not None:
                    os.fchdir(cwd)
                else:
                    os.chdir(self.path(WORKDIR))
                self.pid = spawn(job["argv"], job.get("env") or {}, fds, cgroup, user, self.limits.for_runs)
            finally:
                os.chdir("/")
        if not job.get("quiet_start_s"):
            self.announce()

    def open_input(self) -> int:
        """An interactive run's stdin: a FIFO any server on this machine writes to (sendInput). The supervisor
        holds a writing end, so the command sees the end of its input only once that is closed (an eof asked
        for, or the run's end), not whenever no server happens to be writing. What came with the job is written
        first."""
        fifo = self.path(STDIN_FIFO)
        os.mkfifo(fifo, 0o600)
        reading = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(reading, True)
        self.input = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        if self.job.get("stdin"):
            with open(self.path(STDIN), "rb") as first:
                data = memoryview(first.read())
            with contextlib.suppress(BlockingIOError):  # the server sent at most what a pipe holds
                while data:
                    data = data[os.write(self.input, data) :]
        return reading

    def close_network(self) -> None:
        if self.network is not None:
            self.network.close()
            self.network = None

    def close_input(self) -> None:
        if self.input is not None:
            os.close(self.input)
            self.input = None

    def announce(self) -> None:
        """Record the command's pid and tell the server it runs. A server waiting for a short run hears only
        how it ended, and the record gets the pid with the result: no write on the way of a quick command."""
        if "pid" not in self.record:
            self.record["pid"] = self.pid
            with contextlib.suppress(OSError):
                write_json(self.path(RECORD), self.record)
            started = {"op": "started", "pid": self.pid, "ports": self.record.get("ports")}
            if not send(self.channel, started):
                self.server_gone()

    # --- watch --------------------------------------------------------------------------------------------
    def watch(self) -> None:
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        if self.channel is not None:
            poller.register(self.channel, select.POLLIN)
        timeout_s = self.job.get("timeout_s")
        deadline = self.started + timeout_s if timeout_s else None
        announce_at = self.started + float(self.job.get("quiet_start_s") or 0)
        monitor = self.monitor = Monitor(self.job, self.limits, self.streams, self.started)
        while True:
            now = time.monotonic()
            # Once ending, only the kill time counts.
            due = [self.kill_at] if self.reason is not None else [deadline, monitor.next_at(), self.serving_check_at]
            if "pid" not in self.record:
                due.append(announce_at)
            waits = [t - now for t in due if t is not None]
            timeout_ms = max(0, int(min(waits) * 1000) + 1) if waits else -1
            for fd, _ in poller.poll(timeout_ms):
                if fd == self.wake_r:
                    signals = self.drain_wakeups()
                    if signal.SIGTERM in signals:
                        stop = read_json(self.path(STOP))  # none: a late signal meant for an earlier session
                        if stop is not None:
                            self.end(str(stop.get("reason") or "stop"))
                    if signal.SIGUSR1 in signals and os.path.exists(self.path(INPUT_CLOSED)):
                        self.close_input()
                elif self.channel is not None:
                    self.on_message(poller)
            self.status = reap(self.pid)
            if self.status is not None:
                return
            now = time.monotonic()
            if "pid" not in self.record and now >= announce_at:
                self.announce()
            if deadline is not None and now >= deadline:
                self.end("timeout", f"ended after timeout_s={timeout_s:g}")
            if self.kill_at is not None and now >= self.kill_at:
                self.signal_all(signal.SIGKILL)
            if self.reason is None:
                hit = monitor.check(now)
                if hit is not None:
                    self.end(*hit)
                self.check_serving(now)

    def drain_wakeups(self) -> set[int]:
        signals: set[int] = set()
        with contextlib.suppress(OSError):
            while data := os.read(self.wake_r, 512):
                signals.update(data)
        return signals

    def on_message(self, poller: select.poll) -> None:
        assert self.channel is not None
        try:
            message, _ = receive(self.channel)
        except OSError:
            message = None
        if message is None:
            poller.unregister(self.channel)
            self.server_gone()
            return
        if message.get("op") == "stop":
            self.end(str(message.get("reason") or "stop"))

    def server_gone(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.job.get("on_server_exit") == "stop" and self.status is None:
            if self.job.get("serving"):  # a launcher's run: it lives while any serving server does
                self.serving_check_at = time.monotonic()
            else:
                self.end("server_shutdown")

    def check_serving(self, now: float) -> None:
        """An orphaned launcher's run: end it once no serving server is left (none holds serving.lock)."""
        if self.serving_check_at is None or now < self.serving_check_at:
            return
        self.serving_check_at = now + SERVING_CHECK_S
        if nobody_serving(str(self.job["serving"])):
            self.end("server_shutdown")

    def end(self, reason: str, detail: str | None = None) -> None:
        """Ask the whole run to stop (SIGTERM), and SIGKILL what is left after the grace period. A run that
        fills its disk gets no grace: it would go on writing."""
        if self.reason is not None:
            return
        self.reason, self.detail = reason, detail
        grace = 0.0 if reason == "disk_limit" else float(self.job.get("grace_s", 2.0))
        self.signal_all(signal.SIGTERM if grace else signal.SIGKILL)
        self.kill_at = time.monotonic() + grace

    def signal_all(self, sig: int) -> None:
        relayed = (self.job.get("network") or {}).get("mode", "host") != "host"  # see local/network.py for_run
        signal_all(self.pid, bool(self.job.get("sandboxed")), sig, wrapped=relayed)

    def sweep(self) -> None:
        sweep(self.pid, bool(self.job.get("sandboxed")), float(self.job.get("grace_s", 2.0)))

    # --- finish -------------------------------------------------------------------------------------------
    def finish(self) -> None:
        assert self.status is not None
        # In a sandbox, the kernel is already killing whatever was left when bubblewrap's monitor exits (the
        # PID namespace goes with its init): the end is reported first, and its last processes reaped after.
        # Unconfined, what the command left is ended before the run counts as over.
        sandboxed = bool(self.job.get("sandboxed"))
        if not sandboxed:
            self.sweep()
        cap = int(self.job.get("max_output_bytes") or 0)
        code = os.waitstatus_to_exitcode(self.status)
        passed = self.monitor.final(disk=self.reason is None) if self.monitor is not None else None
        if self.reason is None:
            hit = self.limits.after_exit(code, self.path("stderr")) or passed
            if hit is not None:
                self.reason, self.detail = hit
            elif code != 0 and disk_full(self.dir):
                self.detail = DISK_FULL
        if sandboxed and 128 < code < 128 + 65 and self.reason is not None:
            code = 128 - code  # bubblewrap says 128+N for a command killed by signal N, as a shell does
        result: dict[str, Any] = {
            "exit_code": code,
            "reason": self.reason or "exit",
            "detail": self.detail,
            "ended_at": time.time(),
        }
        if self.network is not None:
            if denied := self.network.denied:
                result["network_denied"] = denied
            self.close_network()  # the command has ended: nothing more goes out or comes in
        for stream, path in zip(STREAMS, self.streams, strict=True):
            cut = self.monitor is not None and stream in self.monitor.cut and cap
            result[f"{stream}_bytes"] = cut_output(path, cap) if cut else output_size(path)
        retiring = self.jobs >= MAX_JOBS  # then the server must not hand this supervisor another job
        self.record["pid"] = self.pid
        self.record["result"] = result
        with contextlib.suppress(OSError):  # e.g. the disk is full: the server hears it all the same
            write_json(self.path(RECORD), self.record)  # first: a server told of the end reads it there
        if not send(self.channel, {"op": "ended", "pid": self.pid, "retiring": retiring, **result}):
            self.channel = None
        if sandboxed:
            self.sweep()
