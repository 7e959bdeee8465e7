"""The relay: the one process of ours inside a sandbox with a network policy, parent of its command.

    python3 -I -S relay.py SPEC -- /bin/sh -c COMMAND

The sandbox has a network namespace of its own with nothing but loopback. The relay listens on its
127.0.0.1 for the egress proxy (`egress`: a descriptor of the proxy's Unix socket, opened with O_PATH by the
supervisor, which the relay connects to through /proc/self/fd; the command gets http_proxy and the like
pointing here), and accepts on a listening Unix socket for each published port (`ports`: descriptors the
supervisor bound and listens on; a connection from the host, carried to the command's 127.0.0.1:PORT). Both
are descriptors it inherits (from FIRST_FD on, see `descriptors`): no file of the network is in the sandbox,
so a run can neither write there nor change what the supervisor connects to. It forwards bytes only: what
is allowed is the proxy's business. It exits with its command's status.

Standard library only, and as little of it as will do (json, contextlib and typing would add ~10 ms to every
run's start); it runs from a copy bound into the sandbox, under the sandbox's rules.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys

CHUNK = 65536
BUFFERED = 4 * CHUNK  # a side that cannot take more stops being read from
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
FIRST_FD = 3  # the descriptors the supervisor hands the relay start here, after stdin, stdout and stderr
DIRECT = ("localhost", "127.0.0.1", "::1")  # NO_PROXY: the run's own loopback, never the proxy's


def descriptors(egress: bool, ports: list[int]) -> str:
    """The relay's spec, which inherited descriptor is what (`egress=3,8080=4`): the egress proxy's socket first
    (allowlist mode), then one listening socket per published port, in the order of `ports` (the supervisor hands
    them so)."""
    names = (["egress"] if egress else []) + [str(port) for port in ports]
    return ",".join(f"{name}={FIRST_FD + i}" for i, name in enumerate(names))


def connect_fd(fd: int) -> socket.socket:
    """A Unix stream socket connected to the socket `fd` was opened on (O_PATH): by that descriptor, never by
    a path someone else could change."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(f"/proc/self/fd/{fd}")
    except OSError:
        sock.close()
        raise
    return sock


def unix_socket(path: str) -> socket.socket:
    """A Unix stream socket bound and listening at `path`, however deep its directory is (a test's temporary
    directory is deep; an address holds 108 bytes): bound through a descriptor of the directory."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    directory = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.bind(f"/proc/self/fd/{directory}/{os.path.basename(path)}")
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    finally:
        os.close(directory)
    return sock


class Pipe:
    """One connection carried both ways: bytes read from one end wait in a bounded buffer for the other."""

    def __init__(self, relay: Relay, a: socket.socket, b: socket.socket) -> None:
        self.relay, self.ends = relay, (a, b)
        self.buffers = {a: bytearray(), b: bytearray()}  # bytes waiting to be written to that end
        self.closed: set[socket.socket] = set()  # ends that said EOF
        for end in self.ends:
            end.setblocking(False)
            relay.selector.register(end, selectors.EVENT_READ, self)

    def other(self, end: socket.socket) -> socket.socket:
        return self.ends[1] if end is self.ends[0] else self.ends[0]

    def ready(self, end: socket.socket, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            self.flush(end)
        if events & selectors.EVENT_READ and end not in self.closed:
            try:
                data = end.recv(CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.closed.add(end)
                if not self.buffers[self.other(end)]:
                    self.shut(self.other(end))
            else:
                self.buffers[self.other(end)] += data
                self.flush(self.other(end))
        if len(self.closed) == 2 and not any(self.buffers.values()):
            self.close()
            return
        self.rearm()

    def flush(self, end: socket.socket) -> None:
        buffer = self.buffers[end]
        try:
            while buffer:
                del buffer[: end.send(buffer)]
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if self.other(end) in self.closed:
            self.shut(end)

    def shut(self, end: socket.socket) -> None:
        try:
            end.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def rearm(self) -> None:
        for end in self.ends:
            if end.fileno() < 0:
                return
            events = 0
            if end not in self.closed and len(self.buffers[self.other(end)]) < BUFFERED:
                events |= selectors.EVENT_READ
            if self.buffers[end]:
                events |= selectors.EVENT_WRITE
            self.relay.selector.modify(end, events or selectors.EVENT_READ, self)

    def close(self) -> None:
        for end in self.ends:
            if end.fileno() >= 0:
                self.relay.selector.unregister(end)
                end.close()


class Relay:
    def __init__(self, spec: str = "") -> None:
        self.selector = selectors.DefaultSelector()
        self.listeners: dict[socket.socket, tuple[str, int]] = {}
        self.environment: dict[str, str] = {}
        given = dict(item.split("=") for item in spec.split(",") if item)
        egress = given.pop("egress", None)
        if egress is not None:
            os.set_inheritable(int(egress), False)
            listener = socket.create_server(("127.0.0.1", 0))
            self.listen(listener, ("fd", int(egress)))
            url = f"http://127.0.0.1:{listener.getsockname()[1]}"
            for name in PROXY_VARIABLES:
                self.environment[name] = self.environment[name.upper()] = url
            self.environment["no_proxy"] = self.environment["NO_PROXY"] = ",".join(DIRECT)
        for port, fd in given.items():
            os.set_inheritable(int(fd), False)  # the command gets none of them
            self.listen(socket.socket(fileno=int(fd)), ("tcp", int(port)))

    def listen(self, listener: socket.socket, target: tuple[str, int]) -> None:
        listener.setblocking(False)
        self.listeners[listener] = target
        self.selector.register(listener, selectors.EVENT_READ, None)

    def accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        kind, where = self.listeners[listener]
        try:
            if kind == "fd":
                server = connect_fd(where)
            else:
                server = socket.create_connection(("127.0.0.1", where), timeout=5)
                server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if client.family != socket.AF_UNIX:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            client.close()  # nothing listens there (yet): the caller sees the connection close
            return
        Pipe(self, client, server)

    def serve(self, stop: int) -> None:
        """Carry connections until `stop` (a descriptor) is readable (the supervisor's use: ports only)."""
        self.selector.register(stop, selectors.EVENT_READ, "wake")
        self._loop(None)

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            if isinstance(key.fileobj, socket.socket):
                key.fileobj.close()
        self.selector.close()

    def _loop(self, child: int | None) -> int:
        """Accept and carry connections until the wake descriptor is readable and, given a `child`, that child
        has ended: its exit status then (0 without one)."""
        while True:
            for key, events in self.selector.select():
                if key.data == "wake":
                    try:
                        while os.read(key.fd, 512):
                            pass
                    except OSError:
                        pass
                    if child is None:
                        return 0
                    status = _reaped(child)
                    if status is not None:
                        return status
                elif key.data is None:
                    self.accept(key.fileobj)  # type: ignore[arg-type]
                else:
                    key.data.ready(key.fileobj, events)

    def run(self, command: list[str]) -> int:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        # Handled, not ignored: the command starts with default dispositions. A stop reaches the command from
        # the supervisor; the relay carries on until the command has gone.
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)
        child = os.fork()
        if child == 0:
            try:
                for listener in self.listeners:
                    listener.close()
                os.execvpe(command[0], command, {**os.environ, **self.environment})
            except OSError as exc:
                os.write(2, f"runtimes-mcp relay: {command[0]}: {exc.strerror}\n".encode())
            os._exit(127)
        self.selector.register(wake_r, selectors.EVENT_READ, "wake")
        return self._loop(child)


def _reaped(child: int) -> int | None:
    """The command's exit status as a shell gives it, once it has ended (every other child is reaped too)."""
    status = None
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except OSError:  # ChildProcessError: none left (EINTR never reaches us: Python retries it)
            return status
        if pid == 0:
            return status
        if pid == child:
            exit_code = os.waitstatus_to_exitcode(code)
            status = exit_code if exit_code >= 0 else 128 - exit_code


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: relay.py SPEC -- COMMAND...\n")
        return 2
    return Relay(argv[1]).run(argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
