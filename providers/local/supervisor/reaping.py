"""Ending what a run started, and collecting what ended: the command and every orphan handed to the
supervisor, its subreaper (a daemonizing command cannot slip away)."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from .records import children, descendants, identity


def signal_all(command: int, sandboxed: bool, sig: int, wrapped: bool = False) -> None:
    """Signal everything the run started. In a sandbox, SIGTERM spares bubblewrap's two processes (its
    monitor, our child, and its init in the sandbox) and, `wrapped`, the network's relay below them: the command
    gets the chance to end cleanly, and the whole sandbox goes when it does. SIGKILL takes everything."""
    spare: set[int] = set()
    if sandboxed and sig != signal.SIGKILL:
        spare = {command, *children(command)}
        if wrapped:
            spare |= {pid for init in children(command) for pid in children(init)}
        if not set(descendants(os.getpid())) - spare:  # the command has not started: a later SIGTERM
            sig, spare = signal.SIGKILL, set()  # would find it, and nothing of it has run that could end cleanly
    if not spare:
        with contextlib.suppress(OSError):
            os.killpg(command, sig)
    for pid in descendants(os.getpid()):
        if pid not in spare:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)


def reap(command: int) -> int | None:
    """Collect every child that ended; the command's wait status if it is one of them."""
    found = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == command:
            found = status


def sweep(command: int, sandboxed: bool, grace_s: float) -> None:
    """After the command ended (and was reaped): end whatever it left running (SIGTERM, then SIGKILL after the
    grace). Each reap collects what ended of it: an orphan is handed to us, its subreaper, before its parent can
    be reaped, so what is not yet collected is in descendants()."""
    reap(command)
    if not descendants(os.getpid()):
        return
    for _ in range(10):  # what is already on its way out (bubblewrap's init follows its monitor) goes by itself
        time.sleep(0.001)
        reap(command)
        if not any(identity(pid) for pid in descendants(os.getpid())):
            reap(command)
            return
    signal_all(command, sandboxed, signal.SIGTERM)
    until = time.monotonic() + grace_s
    while descendants(os.getpid()) and time.monotonic() < until:
        time.sleep(0.02)
        reap(command)
    while descendants(os.getpid()):
        signal_all(command, sandboxed, signal.SIGKILL)
        time.sleep(0.01)
        reap(command)
