"""Bench helper (not a test): an HTTPS GET through the egress proxy vs a direct GET, to a local HTTPS server.

Each GET opens a new connection (as a command in a sandbox does); the three ways are interleaved so that the
host's noise falls on all of them alike. Tunnelled = a host without a secret (CONNECT, bytes untouched);
terminated = a secret's host (TLS to the proxy with our CA, TLS again to the server, the secret added).

    python -m bench.egress [--requests N]
"""

from __future__ import annotations

import argparse
import http.client
import socket
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from providers.local.supervisor.egress.ca import write_trust_bundle
from providers.local.supervisor.egress.policy import Policy
from providers.local.supervisor.egress.service import start_proxy
from tests.egress_servers import echo_server, make_test_certificates

NAME = "bench.test"
PLAIN = "plain.test"


@dataclass(frozen=True)
class Result:
    way: str
    p50_ms: float
    p90_ms: float


def measure(requests: int = 200, warmup: int = 20) -> list[Result]:
    """p50 and p90 of an HTTPS GET (new connection each) directly, tunnelled and terminated."""
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        certificates = make_test_certificates(directory / "test-ca", [NAME, PLAIN])
        with echo_server(certificates) as server:
            policy = Policy.parse(
                allow=[f"{NAME}:{server.port}", f"{PLAIN}:{server.port}"],
                hosts={NAME: "127.0.0.1", PLAIN: "127.0.0.1"},
                secrets={"token": {"value": "bench-secret", "hosts": [f"{NAME}:{server.port}"], "header": "X-Token"}},
            )
            listening = socket.create_server(("127.0.0.1", 0))
            proxy_port = listening.getsockname()[1]
            with start_proxy(policy, directory / "ca", listening, str(certificates.ca_file)):
                bundle = write_trust_bundle(directory / "ca", directory / "bundle.pem", [str(certificates.ca_file)])
                direct_context = ssl.create_default_context(cafile=str(certificates.ca_file))
                sandbox_context = ssl.create_default_context(cafile=str(bundle))

                def direct() -> None:
                    # To 127.0.0.1, the certificate checked for NAME, as it is through the proxy.
                    raw = socket.create_connection(("127.0.0.1", server.port))
                    connection = http.client.HTTPConnection(NAME, server.port)
                    connection.sock = direct_context.wrap_socket(raw, server_hostname=NAME)
                    _get(connection)

                def through(name: str) -> Callable[[], None]:
                    def get() -> None:
                        connection = http.client.HTTPSConnection("127.0.0.1", proxy_port, context=sandbox_context)
                        connection.set_tunnel(name, server.port)
                        _get(connection)

                    return get

                ways = {"direct": direct, "tunnelled": through(PLAIN), "terminated": through(NAME)}
                timings: dict[str, list[float]] = {way: [] for way in ways}
                for round_ in range(warmup + requests):
                    for way, get in ways.items():
                        started = time.perf_counter()
                        get()
                        if round_ >= warmup:
                            timings[way].append((time.perf_counter() - started) * 1000)
    return [Result(way, statistics.median(t), statistics.quantiles(t, n=10)[-1]) for way, t in timings.items()]


def _get(connection: http.client.HTTPConnection) -> None:
    connection.request("GET", "/")
    response = connection.getresponse()
    response.read()
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET answered {response.status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    results = measure(parser.parse_args().requests)
    direct = results[0].p50_ms
    print("| way | p50 ms | p90 ms | added ms (p50) | ratio (p50) |")
    print("|---|---|---|---|---|")
    for result in results:
        added = result.p50_ms - direct
        ratio = result.p50_ms / direct
        print(f"| {result.way} | {result.p50_ms:.2f} | {result.p90_ms:.2f} | {added:+.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
