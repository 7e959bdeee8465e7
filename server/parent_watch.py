"""A `--workers` worker ends with its parent (server/workers.py), however the parent ends: a pipe whose only
writer is the parent reads end-of-file once the parent is gone, whenever that was (before the worker started
watching included). That starts the worker's graceful stop; if that has not ended the worker `stop_s` later,
it exits at once.

Imported first thing by the CLI, before anything heavy: no imports beyond the standard library."""

from __future__ import annotations

import os
import signal
import threading
import time

PARENT_ENV = "RUNTIMES_MCP_WORKER_PARENT"  # "<pipe fd>:<seconds a graceful stop may take>"


def parent_spec(read_fd: int, stop_s: float) -> str:
    return f"{read_fd}:{stop_s:g}"


def follow_parent() -> None:
    """In a worker (PARENT_ENV set): end when the parent does. Elsewhere: nothing."""
    spec = os.environ.pop(PARENT_ENV, None)
    if not spec:
        return
    fd, stop_s = spec.split(":")
    os.set_inheritable(int(fd), False)  # the worker's own children must not keep the parent's pipe open
    threading.Thread(target=_watch, args=(int(fd), float(stop_s)), name="parent-watch", daemon=True).start()


def _watch(fd: int, stop_s: float) -> None:
    try:
        while os.read(fd, 1):  # the parent never writes: this returns b"" once its end is closed
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(stop_s)
    os._exit(1)  # the graceful stop did not end the process in time
