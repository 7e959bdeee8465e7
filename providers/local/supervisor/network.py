"""What a supervisor serves outside its run's sandbox while the run runs: the egress proxy (allowlist mode)
on a Unix socket the sandbox's relay reaches, and each published port on the host's 127.0.0.1, carried to
the relay. Both live exactly as long as the run, whatever happens to the server that started it."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import sys
import threading
from typing import Any

from .relay import Relay, unix_socket

NET_DIR = "net"
PRIVILEGED = 1024  # a port below this is published on one the kernel picks
PICKS = 20
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
    """The network of one run, started before its command and closed after its end.

    Its sockets are in the session's `net/` directory, which the sandbox does not show: the relay gets them as
    descriptors (`passed`, handed over once when the command starts, see relay.descriptors), and the host side
    of each published port connects to the relay's listening socket through a descriptor opened on it right
    after it was bound (O_PATH, checked to be a socket), never by its path."""

    def __init__(self, spec: dict[str, Any], directory: str, stderr: str) -> None:
        self.mode = str(spec.get("mode") or "none")
        self.ports: list[int] = [int(p) for p in spec.get("ports") or []]
        self.reserved = {int(p) for p in spec.get("reserved") or []}  # host ports never to publish on
        self.directory = os.path.join(directory, NET_DIR)
        self.stderr = stderr
        self.published: dict[str, int] = {}  # inside port -> host port
        self.proxy: Any = None
        self.forwarder: Relay | None = None
        self.passed: list[int] = []  # for the relay: the proxy's socket (O_PATH), then each port's listener
        self.held: list[int] = []  # O_PATH descriptors the forwarder connects through
        self.stop_r = self.stop_w = -1
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

    def hand_over(self) -> list[int]:
        """The descriptors the relay inherits, given up: whoever starts the command closes them."""
        passed, self.passed = self.passed, []
        return passed

    def _start_proxy(self) -> None:
        from .egress.policy import Policy
        from .egress.service import start_proxy

        path = os.path.join(self.directory, "egress.sock")
        listener = unix_socket(path)
        try:
            # connect() needs write permission on the socket: the run's user may be another (run_as); the
            # directory, the supervisor's alone, keeps everyone else away from it.
            os.chmod(path, 0o666)
            self.passed.append(_opened_socket(path))
        except OSError:
            listener.close()
            raise
        policy = Policy.from_data(SETTINGS.get("policy") or {})
        extra = SETTINGS.get("ca_file")
        # A refusal also goes to the run's stderr: a client that only says 403 leaves the reason unread.
        self.proxy = start_proxy(policy, str(SETTINGS["ca_dir"]), listener, extra, on_notice=self._say)

    def _say(self, message: str) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.stderr, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                os.write(fd, f"\n{message}\n".encode())
            finally:
                os.close(fd)

    def _start_forwarder(self) -> None:
        """For each port: a listening Unix socket the relay inherits, and a listener on the host's 127.0.0.1
        (the same number when it is free and neither privileged nor reserved, else one the kernel picks) whose
        connections are carried to it."""
        forwarder = Relay()
        self.forwarder = forwarder  # closed with the rest, whatever fails below
        for port in self.ports:
            path = os.path.join(self.directory, f"port-{port}.sock")
            inside = unix_socket(path)
            self.passed.append(inside.detach())
            opened = _opened_socket(path)
            self.held.append(opened)
            listener = self._host_listener(port)
            self.published[str(port)] = listener.getsockname()[1]
            forwarder.listen(listener, ("fd", opened))
        self.stop_r, self.stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)  # the loop drains it: reads never block
        self.thread = threading.Thread(target=forwarder.serve, args=(self.stop_r,), name="ports", daemon=True)
        self.thread.start()

    def _host_listener(self, port: int) -> socket.socket:
        wanted = port if port >= PRIVILEGED and port not in self.reserved else 0
        for _ in range(PICKS):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", wanted))
            except OSError as exc:
                listener.close()
                if exc.errno != errno.EADDRINUSE or wanted == 0:
                    raise
                wanted = 0
                continue
            if listener.getsockname()[1] in self.reserved:  # picked: one this host's own services need
                listener.close()
                continue
            listener.listen(128)
            return listener
        raise OSError(errno.EADDRINUSE, "no free port on 127.0.0.1 to publish on")

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        if self.thread is not None:
            os.write(self.stop_w, b"x")
            self.thread.join(5)
            os.close(self.stop_w)
            if not self.thread.is_alive():  # else its loop may still hold it
                os.close(self.stop_r)
            self.thread = None
        if self.forwarder is not None:
            self.forwarder.close()
            self.forwarder = None
        for fd in self.hand_over() + self.held:
            os.close(fd)
        self.held = []


def _opened_socket(path: str) -> int:
    """An O_PATH descriptor of the socket just bound at `path` (no link followed), to connect through."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path} is not a socket")
    return fd
