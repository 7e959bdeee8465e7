"""What a run must not get through its network features (issue #33, the adversarial review of #30): a host
Unix socket through a published port, a secret's real value through a service of its own, disk past its cap in
the network's directory, and host ports it has no business taking. Every server here is on 127.0.0.1 or a Unix
socket in a directory this test makes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from server.config import load_settings
from tests.conftest import connect, error_text, marker, structured, wait_until_gone
from tests.test_sandbox import PYTHON, run, sandbox_works

pytestmark = pytest.mark.skipif(not sandbox_works(), reason="this machine refuses unprivileged user namespaces")
TOKEN = "ghp_real-token-value-escapes-0123456789"
HOST_ONLY = b"host-only socket answered\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def host_socket() -> Iterator[tuple[str, list[bytes]]]:
    """A Unix socket only the host can reach (in a directory of its own below /tmp, which a sandbox sees as its
    private /tmp): it answers HOST_ONLY to whoever connects, and records that someone did."""
    directory = tempfile.mkdtemp(prefix="rt-host-")
    path = os.path.join(directory, "host.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    server.settimeout(0.1)
    reached: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                reached.append(b"connected")
                with contextlib.suppress(OSError):
                    conn.sendall(HOST_ONLY)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, reached
    stop.set()
    thread.join()
    server.close()
    shutil.rmtree(directory)


async def output_until(client: Client, session_id: str, text: str, within_s: float = 60) -> dict[str, Any]:
    """The session once its stdout holds `text` (or it has ended)."""
    with anyio.fail_after(within_s):
        while True:
            session = structured(await client.call_tool("getSession", {"session_id": session_id}))
            if text in session.get("stdout", "") or session["state"] != "running":
                return session
            await anyio.sleep(0.05)


def read_all(port: int) -> bytes:
    """What 127.0.0.1:`port` says to a new connection before it closes (or goes quiet)."""
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            while chunk := conn.recv(4096):
                received += chunk
    except OSError:
        pass
    return received


# --- 1. a published port reaches only the relay in its own sandbox --------------------------------------------
async def test_a_published_port_never_reaches_a_host_socket_the_run_names(
    config_file: Any, host_socket: tuple[str, list[bytes]]
) -> None:
    """The run swaps what the host side of its published port connects to (its socket file) for a link to a
    socket only the host can reach, and for a socket of its own in the same place."""
    path, reached = host_socket
    inside = free_port()
    mark = marker()
    attack = (
        f"for d in /run/runtimes-mcp/net /run/runtimes-mcp; do "
        f"rm -f $d/port-{inside}.sock && ln -s {path} $d/port-{inside}.sock; done 2>/dev/null; "
        f"ls -la /run/runtimes-mcp 2>&1; echo ready; sleep {mark}"
    )
    settings = load_settings(config_file("[local.sandbox]\n"))
    async with connect(settings) as client:
        started = await run(client, attack, ports=[inside], wait=False)
        session = await output_until(client, started["session_id"], "ready")
        answer = await anyio.to_thread.run_sync(read_all, started["ports"][str(inside)])
        await client.call_tool("stopSession", {"session_id": started["session_id"]})
    assert session["state"] == "running", session
    assert HOST_ONLY not in answer and not reached, (answer, session["stdout"])
    assert await wait_until_gone(mark) == []


# --- 2. a secret's value reaches only a server the proxy verified ----------------------------------------------
SERVE_HEADERS = (
    "import http.server, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        print('GOT', dict(self.headers), flush=True)\n"
    "        self.send_response(200); self.send_header('content-length', '2'); self.end_headers(); "
    "self.wfile.write(b'ok')\n"
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
)


async def test_a_secret_never_reaches_a_service_the_run_publishes_on_its_hosts_port(
    config_file: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret's host is named on the host's loopback; nothing serves there (yet). The run publishes that
    port, serves HTTP behind it and sends its placeholder there through the proxy, over HTTP and HTTPS."""
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    port = free_port()
    monkeypatch.setenv("ESCAPES_TOKEN", TOKEN)
    script = tmp_path / "serve.py"
    script.write_text(SERVE_HEADERS)
    body = (
        f'[local.sandbox]\nnetwork = "allowlist"\nallow = ["svc.test:{port}"]\nreadable_paths = ["{tmp_path}"]\n'
        '[local.sandbox.hosts]\n"svc.test" = "127.0.0.1"\n'
        '[local.secrets.svc]\nvalue_env = "ESCAPES_TOKEN"\n'
        f'hosts = ["svc.test:{port}"]\nheader = "X-Auth"\nformat = "Bearer {{value}}"\n'
    )
    command = (
        f"{PYTHON} {script} {port} & server=$!; "
        f"for i in $(seq 200); do curl -s --noproxy '*' -o /dev/null http://127.0.0.1:{port}/up && break; "
        "sleep 0.05; done; "
        f'curl -sS -m 10 -H "X-Token: $ESCAPES_TOKEN" http://svc.test:{port}/plain; '
        f'curl -sS -m 10 -H "X-Token: $ESCAPES_TOKEN" https://svc.test:{port}/tls; kill $server; echo done'
    )
    settings = load_settings(config_file(body))
    async with connect(settings) as client:
        called = await client.call_tool("execRun", {"command": command, "ports": [port], "wait": False})
        if called.is_error:  # refused: also a way not to hand it the secret
            assert TOKEN not in error_text(called) and "Next:" in error_text(called)
            return
        started = structured(called)
        ended = await output_until(client, started["session_id"], "done")
    assert started["ports"][str(port)] != port, started  # never the port the proxy connects to
    assert "done" in ended["stdout"] and TOKEN not in json.dumps(ended), ended


# --- 3. the network's files are not the run's to write ---------------------------------------------------------
async def test_writes_in_the_network_directory_are_refused_or_bounded(config_file: Any) -> None:
    """15 x 2 MB, with a 4 MiB cap, where the relay's sockets are (and beside them)."""
    settings = load_settings(config_file("[local]\nmax_data_mb = 4\n"))
    writer = (
        "n=0; for d in /run/runtimes-mcp/net /run/runtimes-mcp; do for i in $(seq 15); do "
        "head -c 2000000 /dev/zero > $d/f$i && n=$((n+1)); done; done 2>/dev/null; echo wrote $n"
    )
    async with connect(settings) as client:
        result = await run(client, writer, ports=[free_port()], timeout_s=60)
    session_dir = settings.data_dir / "sessions" / result["session_id"]
    kept = sum(p.stat().st_size for p in session_dir.rglob("*") if p.is_file() and not p.is_symlink())
    assert kept < 4 * 1024 * 1024, (kept, result)
    if result["state"] == "completed":
        assert int(result["stdout"].split()[-1]) * 2 <= 4 + 512, result  # the private /run: tmp_mb, not the disk


# --- 4. published ports: few, distinct, unprivileged, not the server's ----------------------------------------
async def test_published_ports_are_bounded_in_number_and_never_privileged(config_file: Any) -> None:
    settings = load_settings(config_file("[local.sandbox]\n"))
    mark = marker()
    async with connect(settings) as client:
        many = await client.call_tool("execRun", {"command": "true", "ports": list(range(21000, 25000))})
        privileged = await run(client, f"sleep {mark}", ports=[1, 80, 80], wait=False)
        await client.call_tool("stopSession", {"session_id": privileged["session_id"]})
    text = error_text(many)
    assert "16" in text and "ports" in text and "Next:" in text and "too large" not in text, text
    published = privileged["ports"]
    assert set(published) == {"1", "80"}, published
    assert all(1024 <= port for port in published.values()), published
    assert await wait_until_gone(mark) == []


def test_the_host_side_of_a_port_connects_to_the_socket_it_bound_whatever_its_path_becomes(
    tmp_path: Path, host_socket: tuple[str, list[bytes]]
) -> None:
    """Even with the sandbox's view of it gone, the supervisor connects by descriptor: a link put in place of
    a port's socket file leads nowhere. And the host port is never a privileged or a reserved one."""
    from providers.local.supervisor.network import RunNetwork

    host_path, reached = host_socket
    inside = free_port()
    network = RunNetwork({"mode": "none", "ports": [inside, 80], "reserved": [inside]}, str(tmp_path), "/dev/null")
    network.start()
    try:
        relay_ends = [socket.socket(fileno=fd) for fd in network.hand_over()]  # what the relay would inherit
        path = tmp_path / "net" / f"port-{inside}.sock"
        path.unlink()
        path.symlink_to(host_path)
        host_port = network.published[str(inside)]
        with socket.create_connection(("127.0.0.1", host_port), timeout=5) as client:
            client.sendall(b"to the relay")
            relay_ends[0].settimeout(5)
            accepted, _ = relay_ends[0].accept()
            with accepted:
                assert accepted.recv(100) == b"to the relay"
        assert host_port != inside and network.published["80"] >= 1024, network.published
        assert not reached
        for end in relay_ends:
            end.close()
    finally:
        network.close()


def test_ports_the_proxy_may_connect_to_on_the_hosts_loopback_are_reserved() -> None:
    from providers.local.network import loopback_targets
    from providers.local.supervisor.egress.policy import Policy

    named = Policy.parse(allow=["svc.test:5432", "pypi.org", "10.0.0.7:8080"], hosts={"svc.test": "127.0.0.1"})
    assert loopback_targets(named) == {5432, 80, 443, 8080}  # a listed name may lead to loopback through DNS
    assert loopback_targets(Policy.parse(allow=["[::1]:9000", "pypi.org:8443"])) == {9000, 8443}
    assert loopback_targets(Policy.parse(allow=["pypi.org", "b.test:8080"], hosts={"b.test": "10.0.0.7"})) == set()


async def test_a_run_never_publishes_on_the_servers_own_port(config_file: Any) -> None:
    """What the HTTP server tells the runtime it listens on (here a port nothing holds, so that only the
    reservation keeps the run off it)."""
    from server.state import AppState

    port = free_port()
    settings = load_settings(config_file("[local.sandbox]\n"))
    mark = marker()
    async with AppState.open(settings, listening=(port,)) as state:
        runtime = state.opened["local"]
        started = await runtime.exec_run(f"sleep {mark}", ports=[port], wait=False)
        await runtime.stop_session(started.session_id)
    assert started.ports is not None and started.ports[str(port)] != port, started
    assert await wait_until_gone(mark) == []


def test_a_launchers_ports_are_distinct_and_few(config_file: Any) -> None:
    from server.config import ConfigError

    for ports, words in (("[8080, 8080]", "8080 more than once"), (str(list(range(9000, 9017))), "16")):
        with pytest.raises(ConfigError) as raised:
            load_settings(config_file(f'[local.launchers.web]\ncommand = "true"\nports = {ports}\n'))
        assert "ports" in str(raised.value) and words in str(raised.value), raised.value
