"""A sandbox's network, end to end through the server: allowlist mode and its egress proxy (names the operator
listed, nothing else), secrets added on the way out, published ports, and the host's network. Every server
here is on 127.0.0.1; the sandboxes have no other way out."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from mcp import Client

from server.config import load_settings
from tests.conftest import appears, connect, marker, structured, wait_until_gone
from tests.egress_servers import EchoServer, ServerCertificates, echo_server, make_test_certificates
from tests.test_sandbox import PYTHON, run, sandbox_works

pytestmark = [
    pytest.mark.skipif(not sandbox_works(), reason="this machine refuses unprivileged user namespaces"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]
TOKEN = "ghp_real-token-value-0123456789abcdef"
NAMES = ["web.test", "secure.test", "other.test"]


@pytest.fixture
def certificates(tmp_path: Path) -> ServerCertificates:
    return make_test_certificates(tmp_path / "test-ca", NAMES)


@pytest.fixture
def web() -> Iterator[EchoServer]:
    with echo_server() as server:
        yield server


@pytest.fixture
def secure(certificates: ServerCertificates) -> Iterator[EchoServer]:
    with echo_server(certificates) as server:
        yield server


def allowlist_config(
    config_file: Any, web: EchoServer, secure: EchoServer, certificates: ServerCertificates, extra: str = ""
) -> Path:
    path: Path = config_file(
        "[local.sandbox]\n"
        'network = "allowlist"\n'
        f'allow = ["web.test:{web.port}", "secure.test:{secure.port}", "other.test:{web.port}"]\n'
        f'ca_file = "{certificates.ca_file}"\n'
        "[local.sandbox.hosts]\n"
        '"web.test" = "127.0.0.1"\n'
        '"secure.test" = "127.0.0.1"\n'
        '"other.test" = "127.0.0.1"\n' + extra
    )
    return path


async def test_allowlist_lets_out_only_the_listed_names_and_says_what_it_refused(
    config_file: Any, web: EchoServer, secure: EchoServer, certificates: ServerCertificates
) -> None:
    settings = load_settings(allowlist_config(config_file, web, secure, certificates))
    urllib = f"{PYTHON} -c \"import urllib.request as u; print(u.urlopen('https://secure.test:{secure.port}/py').read()[:40])\""
    async with connect(settings) as client:
        allowed = await run(
            client, f"curl -sS https://secure.test:{secure.port}/curl && curl -sS http://web.test:{web.port}/plain"
        )
        python = await run(client, urllib)
        refused = await run(
            client,
            "curl -sS https://unlisted.test/ ; curl -sS https://10.0.0.1:8443/raw ; "
            f"curl -sS --noproxy '*' http://127.0.0.1:{web.port}/direct ; "
            f"{PYTHON} -c \"import socket; socket.getaddrinfo('web.test', 80)\" ; true",
        )
    assert allowed["exit_code"] == 0, allowed
    assert '"path": "/curl"' in allowed["stdout"] and '"path": "/plain"' in allowed["stdout"]
    assert python["exit_code"] == 0 and "method" in python["stdout"], python
    denied = refused["network_denied"]
    assert "unlisted.test:443" in denied and "10.0.0.1:8443" in denied, refused
    assert "not in local.sandbox.allow" in refused["stderr"]
    assert "/direct" not in refused["stdout"]  # no route out but the proxy: the host's 127.0.0.1 is not theirs
    assert "Name or service not known" in refused["stderr"] or "Temporary failure" in refused["stderr"]


def test_a_listed_name_that_resolves_to_a_metadata_address_is_refused(
    tmp_path: Path, web: EchoServer, secure: EchoServer, certificates: ServerCertificates
) -> None:
    """DNS (here /etc/hosts, seen by this one server in a mount namespace of its own) answers 169.254.169.254
    for a listed name: the proxy, which resolves names itself, refuses the cloud metadata address."""
    if os.geteuid() != 0:
        pytest.skip("the server's own /etc/hosts needs a mount namespace (root here)")
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + "\n169.254.169.254 metadata.test\n")
    config = tmp_path / "runtimes.toml"
    config.write_text('[local.sandbox]\nnetwork = "allowlist"\nallow = ["metadata.test"]\n')
    bwrap = shutil.which("bwrap") or _bundled_bwrap()
    command = [
        bwrap,
        "--dev-bind",
        "/",
        "/",
        "--bind",
        str(hosts),
        "/etc/hosts",
        "--",
        sys.executable,
        "-m",
        "server.cli",
    ]
    arguments = json.dumps({"command": "curl -sS -m 5 http://metadata.test/latest/meta-data/; true"})
    done = subprocess.run(
        [*command, "--config", str(config), "call", "execRun", arguments], capture_output=True, text=True, timeout=120
    )
    result = json.loads(done.stdout)
    assert result.get("network_denied") == ["metadata.test:80"], (result, done.stderr[-2000:])
    assert "169.254.169.254" in result["stderr"] or "metadata.test" in result["stderr"]


def _bundled_bwrap() -> str:
    from providers.local.sandbox import bundled_bwrap

    found = bundled_bwrap()
    assert found is not None
    return found


class Recorder(http.server.BaseHTTPRequestHandler):
    """Keeps the headers of each request it gets; answers "ok" (never what it got: a server that echoes a
    secret back hands it to the sandbox, which no proxy can prevent)."""

    received: ClassVar[list[dict[str, str]]] = []
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        type(self).received.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorders(certificates: ServerCertificates) -> Iterator[tuple[int, int, list[dict[str, str]]]]:
    """An HTTPS and an HTTP server on 127.0.0.1 that record what reaches them."""
    import ssl

    received: list[dict[str, str]] = []
    handler = type("Recording", (Recorder,), {"received": received})
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.cert_file, certificates.key_file)
    servers[0].socket = context.wrap_socket(servers[0].socket, server_side=True)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    yield servers[0].server_address[1], servers[1].server_address[1], received
    for server in servers:
        server.shutdown()
        server.server_close()


async def test_a_secret_reaches_only_its_host_and_never_the_sandbox(
    config_file: Any,
    recorders: tuple[int, int, list[dict[str, str]]],
    certificates: ServerCertificates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secure_port, plain_port, received = recorders
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    body = (
        "[local.sandbox]\n"
        'network = "allowlist"\n'
        f'allow = ["secure.test:{secure_port}", "web.test:{plain_port}"]\n'
        f'ca_file = "{certificates.ca_file}"\n'
        '[local.sandbox.hosts]\n"secure.test" = "127.0.0.1"\n"web.test" = "127.0.0.1"\n'
        '[local.secrets.github]\nvalue_env = "GH_TOKEN"\n'
        f'hosts = ["secure.test:{secure_port}"]\nheader = "X-Auth"\nformat = "Bearer {{value}}"\n'
    )
    settings = load_settings(config_file(body))
    async with connect(settings) as client:
        sent = await run(client, f'curl -sS -H "X-Token: $GH_TOKEN" https://secure.test:{secure_port}/api')
        elsewhere = await run(client, f'curl -sS -H "X-Token: $GH_TOKEN" http://web.test:{plain_port}/api')
        inside = await run(
            client,
            "env; tr '\\0' '\\n' < /proc/self/environ; "
            "grep -r -l -a -F ghp_real / --exclude-dir=proc --exclude-dir=sys 2>/dev/null | head -3; true",
            timeout_s=120,
        )
    assert sent["stdout"] == "ok" and elsewhere["stdout"] == "ok", (sent, elsewhere)
    to_secure, to_other = received
    assert to_secure["x-token"] == TOKEN and to_secure["x-auth"] == f"Bearer {TOKEN}", to_secure
    assert to_other["x-token"].startswith("rtmcp_ph_") and "x-auth" not in to_other  # useless elsewhere
    assert f"GH_TOKEN={to_other['x-token']}" in inside["stdout"].splitlines()  # inside: the placeholder only
    assert TOKEN not in json.dumps([sent, elsewhere, inside])
    # never written to the data directory (where a spare supervisor may still be removing its unused directory)
    for folder, _, names in os.walk(settings.data_dir):
        for path in (Path(folder, name) for name in names):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_size < 5_000_000:
                    assert TOKEN.encode() not in path.read_bytes(), path


async def test_published_ports_reach_a_service_inside_its_sandbox(config_file: Any, tmp_path: Path) -> None:
    """The README's launcher, as written: `python3 -m http.server 8765` with ports = [8765]."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "hello.txt").write_text("served")
    mark = marker()
    body = (
        f'[local.sandbox]\nreadable_paths = ["{tmp_path / "site"}"]\n'
        f'[local.launchers.files]\ncommand = "{PYTHON} -m http.server 8765 # {mark}"\ncwd = "{tmp_path / "site"}"\n'
        "ports = [8765]\n"
    )
    settings = load_settings(config_file(body))
    async with connect(settings) as client:
        assert await appears(mark)
        listed = await wait_for_port(client)
        port = listed["ports"]["8765"]
        listing = await get_with_retries(f"http://127.0.0.1:{port}/")
        run_with_port = structured(
            await client.call_tool(
                "execRun", {"command": f"{PYTHON} -m http.server 8901 --bind 127.0.0.1", "ports": [8901], "wait": False}
            )
        )
        host_port = run_with_port["ports"]["8901"]
        answer = await get_with_retries(f"http://127.0.0.1:{host_port}/")
        followed = structured(await client.call_tool("getSession", {"session_id": run_with_port["session_id"]}))
        await client.call_tool("stopSession", {"session_id": run_with_port["session_id"]})
    assert "hello.txt" in listing and "Directory listing" in answer
    assert followed["ports"] == {"8901": host_port}
    assert await wait_until_gone(mark) == []


async def wait_for_port(client: Client) -> dict[str, Any]:
    import anyio

    for _ in range(500):
        launchers = structured(await client.call_tool("getLaunchers", {}))["launchers"]
        if launchers and launchers[0].get("ports"):
            return dict(launchers[0])
        await anyio.sleep(0.02)
    raise AssertionError(f"no ports: {launchers}")


async def get_with_retries(url: str) -> str:
    """The service may still be starting inside: its relay closes a connection nothing takes yet."""
    import anyio

    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(300):
            try:
                response = await http.get(url)
                return response.text
            except httpx.HTTPError:
                await anyio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


def tiny_wheel() -> tuple[str, bytes]:
    """A minimal pure-Python wheel: its file name and bytes."""
    name = "tinypkg-1.0-py3-none-any.whl"
    files = {
        "tinypkg/__init__.py": b"ANSWER = 42\n",
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append("tinypkg-1.0.dist-info/RECORD,,")
        archive.writestr("tinypkg-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return name, buffer.getvalue()


@pytest.fixture
def package_index() -> Iterator[int]:
    """A PEP 503 index on 127.0.0.1 serving one wheel."""
    wheel_name, wheel = tiny_wheel()
    pages = {
        "/simple/": b'<a href="/simple/tinypkg/">tinypkg</a>',
        "/simple/tinypkg/": f'<a href="/files/{wheel_name}">{wheel_name}</a>'.encode(),
        f"/files/{wheel_name}": wheel,
    }

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            kind = "application/octet-stream" if self.path.endswith(".whl") else "text/html"
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_pip_installs_from_a_listed_index_into_a_workspace_venv(config_file: Any, package_index: int) -> None:
    body = (
        f'[local.sandbox]\nnetwork = "allowlist"\nallow = ["pypi.test:{package_index}"]\n'
        '[local.sandbox.hosts]\n"pypi.test" = "127.0.0.1"\n'
    )
    settings = load_settings(config_file(body))
    index = f"http://pypi.test:{package_index}/simple/"
    async with connect(settings) as client:
        venv = await run(client, f"{PYTHON} -m venv .venv", workspace="w", timeout_s=120)
        install = await run(
            client,
            f".venv/bin/pip install --disable-pip-version-check --no-cache-dir --index-url {index} "
            f"--trusted-host pypi.test tinypkg && .venv/bin/python -c 'import tinypkg; print(tinypkg.ANSWER)'",
            workspace="w",
            timeout_s=120,
        )
    assert venv["exit_code"] == 0, venv
    assert install["exit_code"] == 0 and install["stdout"].strip().endswith("42"), install["stderr"] + install["stdout"]


async def test_host_mode_and_the_old_true_keep_working(config_file: Any, web: EchoServer) -> None:
    for value in ("true", '"host"'):
        settings = load_settings(config_file(f"[local.sandbox]\nnetwork = {value}\n"))
        async with connect(settings) as client:
            result = await run(client, f"curl -sS http://127.0.0.1:{web.port}/host")
        assert '"path": "/host"' in result["stdout"], result


def test_overly_broad_or_unknown_entries_stop_the_start_with_the_key_named(config_file: Any) -> None:
    from server.config import ConfigError

    for allow in ('["*.com"]', '["*"]', '["@everything"]'):
        with pytest.raises(ConfigError) as caught:
            load_settings(config_file(f'[local.sandbox]\nnetwork = "allowlist"\nallow = {allow}\n'))
        assert "allow" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file('[local.sandbox]\nnetwork = "yes"\n'))
    assert "network" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file('[local.sandbox]\nnetwork = "allowlist"\nallow = ["https://pypi.org/simple"]\n'))
    assert "is a URL" in str(caught.value) and "give the host alone" in str(caught.value)
    for loopback in ("127.0.0.1:8000", "localhost:8000", "[::1]"):  # the run's own: clients never ask the proxy
        with pytest.raises(ConfigError) as caught:
            load_settings(config_file(f'[local.sandbox]\nnetwork = "allowlist"\nallow = ["{loopback}"]\n'))
        assert "the run's own" in str(caught.value) and '"host.internal" = "127.0.0.1"' in str(caught.value)
    with pytest.raises(ConfigError) as caught:  # an allow-list no run uses is a mistake, not silence
        load_settings(config_file('[local.sandbox]\nallow = ["pypi.org"]\n'))
    assert 'sandbox.allow: no run has network = "allowlist"' in str(caught.value)
    routine = '[local.routines.fetch]\ncommand = "true"\nnetwork = "allowlist"\n'
    load_settings(config_file('[local.sandbox]\nallow = ["pypi.org"]\n' + routine))  # a routine of it: no error


def test_a_secret_without_its_value_stops_the_start(config_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    body = (
        '[local.sandbox]\nnetwork = "allowlist"\nallow = ["api.test"]\n'
        '[local.secrets.x]\nvalue_env = "NOT_SET_TOKEN"\nhosts = ["api.test"]\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "--config", str(config_file(body)), "call", "listSessions", "{}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "NOT_SET_TOKEN" in done.stderr and "local.secrets.x" in done.stderr


def test_a_runs_published_ports_stop_at_once_when_it_ends(tmp_path: Path) -> None:
    # The forwarder's loop drains its stop pipe: one byte must end it, not the pipe's closing later (that read
    # blocked, and every stop of a run with ports waited out a 5 s join).
    from providers.local.supervisor.network import RunNetwork

    network = RunNetwork({"mode": "none", "ports": [8080], "reserved": []}, str(tmp_path), str(tmp_path / "stderr"))
    network.start()
    try:
        assert network.thread is not None and network.published["8080"] > 0
        os.write(network.stop_w, b"x")
        network.thread.join(30)  # the event: the loop returns; 30 s only bounds a failure
        assert not network.thread.is_alive()
    finally:
        network.close()
