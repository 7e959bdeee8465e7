"""What a supervisor serves outside its run's sandbox while the run runs: the egress proxy (allowlist mode)
on a Unix socket the sandbox's relay reaches, and each published port on the host's 127.0.0.1, carried to
the relay. Both live exactly as long as the run, whatever happens to the server that started it."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import threading
from typing import Any

from .relay import Relay, unix_socket

NET_DIR = "net"
# The zygote's network settings (its server's policy, with the secrets' values), inherited by every supervisor.
SETTINGS: dict[str, Any] = {}


def configure(message: dict[str, Any]) -> None:
    """Keep the server's network settings, and make the proxy's packages importable (the zygote runs without
    site-packages). With a policy to serve, the proxy is imported now, once, before supervisors are forked."""
    SETTINGS.clear()
    SETTINGS.update(message)
    for path in message.get("paths") or []:
        if path not in sys.path:
            sys.path.append(path)
    if message.get("policy"):
        from . import egress  # noqa: F401


class RunNetwork:
    """The network of one run, started before its command and closed after its end."""

    def __init__(self, spec: dict[str, Any], directory: str, stderr: str) -> None:
        self.mode = str(spec.get("mode") or "none")
        self.ports: list[int] = [int(p) for p in spec.get("ports") or []]
        self.directory = os.path.join(directory, NET_DIR)
        self.stderr = stderr
        self.published: dict[str, int] = {}  # inside port -> host port
        self.proxy: Any = None
        self.forwarder: Relay | None = None
        self.stop_w = -1
        self.thread: threading.Thread | None = None

    @property
    def denied(self) -> list[str]:
        return list(self.proxy.denied) if self.proxy is not None else []

    def start(self) -> None:
        if self.mode == "host":
            self.published = {str(port): port for port in self.ports}  # the run binds the host's own
            return
        if self.mode != "allowlist" and not self.ports:
            return
        os.mkdir(self.directory, 0o700)
        if self.mode == "allowlist":
            self._start_proxy()
        if self.ports:
            self._start_forwarder()

    def _start_proxy(self) -> None:
        from .egress import Policy, start_proxy

        listener = unix_socket(os.path.join(self.directory, "egress.sock"), listen=True)
        policy = Policy.from_data(SETTINGS.get("policy") or {})
        extra = SETTINGS.get("ca_file")
        self.proxy = start_proxy(policy, str(SETTINGS["ca_dir"]), listener, extra, on_denied=self._denied)

    def _denied(self, target: str, message: str) -> None:
        """A refusal also goes to the run's stderr: a client that only says 403 leaves the reason unread."""
        with contextlib.suppress(OSError):
            fd = os.open(self.stderr, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                os.write(fd, f"\n{message}\n".encode())
            finally:
                os.close(fd)

    def _start_forwarder(self) -> None:
        """Listen on the host's 127.0.0.1 for each port (the same number when free, else one the kernel
        picks), and carry each connection to the relay's socket for that port."""
        forwarder = Relay({})
        for port in self.ports:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            self.published[str(port)] = listener.getsockname()[1]
            forwarder.listen(listener, ("unix", os.path.join(self.directory, f"port-{port}.sock")))
        stop_r, self.stop_w = os.pipe2(os.O_CLOEXEC)
        self.forwarder = forwarder
        self.thread = threading.Thread(target=forwarder.serve, args=(stop_r,), name="ports", daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        if self.thread is not None:
            os.write(self.stop_w, b"x")
            self.thread.join(5)
            os.close(self.stop_w)
            self.thread = None
        if self.forwarder is not None:
            self.forwarder.close()
            self.forwarder = None
