"""Messages between a server and the supervisors: one JSON object per SOCK_SEQPACKET message, with
descriptors passed alongside (SCM_RIGHTS). The protocol is in CONTRIBUTING.md."""

from __future__ import annotations

import array
import json
import socket
from typing import Any

MAX_MESSAGE = 1 << 20  # a job larger than this comes in a file (records.REQUEST)
INLINE_JOB_BYTES = 32_768  # the size above which the server writes the job to that file


def receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message (None at the end of the stream) and the descriptors passed with it. Raises
    BlockingIOError on a non-blocking socket with nothing to read, OSError when the peer is gone."""
    # Close-on-exec from the moment they arrive: a descriptor a supervisor holds (a cwd, a lock) must never
    # reach the command it starts.
    flags = socket.MSG_CMSG_CLOEXEC if max_fds else 0
    data, ancillary, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(max_fds * 4) if max_fds else 0, flags)
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if not data:
        return None, list(fds)
    message = json.loads(data)
    return (message if isinstance(message, dict) else None), list(fds)


def send(sock: socket.socket | None, message: dict[str, Any], fds: list[int] | None = None) -> bool:
    """Send one message; False when the peer has gone (never an exception: the record says it all)."""
    if sock is None:
        return False
    data = json.dumps(message, separators=(",", ":")).encode()
    try:
        if fds:
            socket.send_fds(sock, [data], fds)
        else:
            sock.send(data)
    except OSError:
        return False
    return True
