"""The proxy for synchronous code (a session supervisor): its own event loop in a daemon thread, started and
stopped by plain calls, and the environment a sandboxed process needs to use it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Coroutine
from typing import Any

from .addresses import Lookup
from .ca import CertificateAuthority
from .http1 import Bounds
from .policy import Policy
from .proxy import EgressProxy, OnNotice

START_TIMEOUT_S = 10.0
# Each of these replaces its tool's trust store rather than adding to it; the bundle has the system's
# certificates too, so hosts the proxy only tunnels still verify.
CA_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
)


class ProxyHandle:
    """A running proxy. `denied` and `connections` may be read from any thread; `close` ends it."""

    def __init__(self, proxy: EgressProxy, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self._proxy = proxy
        self._loop = loop
        self._thread = thread
        self._stop = asyncio.Event()

    @property
    def denied(self) -> list[str]:
        """Every "host:port" refused so far, in order, each once."""
        return list(self._proxy.denied)

    @property
    def connections(self) -> int:
        return self._proxy.connections

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, cut every connection, close the listening socket and end the thread; returns within
        about `timeout` seconds even if a name lookup is still running (its thread ends when it returns)."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)

    def __enter__(self) -> ProxyHandle:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def start_proxy(
    policy: Policy,
    ca_dir: str | os.PathLike[str],
    listen_socket: socket.socket,
    extra_ca_file: str | None = None,
    *,
    bounds: Bounds | None = None,
    on_notice: OnNotice | None = None,
    lookup: Lookup | None = None,
) -> ProxyHandle:
    """Serve `policy` on `listen_socket` (bound and listening, Unix or TCP; the proxy owns it from here) from a
    daemon thread. The CA in `ca_dir` is made if there is none; the servers behind terminated TLS are verified
    with the system's trust store plus `extra_ca_file`. `on_notice(line)` is called in the proxy's thread with
    each refusal's line and what else the run should know (a placeholder sent over plain HTTP); `lookup` replaces
    DNS (tests). Raises what the start raised."""
    ca = CertificateAuthority.load_or_create(ca_dir)
    proxy = EgressProxy(policy, ca, extra_ca_file, bounds, lookup, on_notice)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        try:
            await proxy.start(listen_socket)
        except BaseException as error:
            failure.append(error)
            listen_socket.close()
            return
        finally:
            started.set()
        await handle._stop.wait()
        await proxy.aclose()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
            loop.run_until_complete(loop.shutdown_asyncgens())
            # A lookup still running in the default executor must not hold the close up.
            loop.run_until_complete(_bounded(loop.shutdown_default_executor(), 1.0))
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="egress-proxy", daemon=True)
    handle = ProxyHandle(proxy, loop, thread)
    thread.start()
    if not started.wait(START_TIMEOUT_S):
        handle.close()
        raise TimeoutError("the egress proxy did not start in time")
    if failure:
        thread.join(START_TIMEOUT_S)
        raise failure[0]
    return handle


async def _bounded(awaitable: Coroutine[Any, Any, None], seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await awaitable


def sandbox_environment(ca_bundle: str | os.PathLike[str], policy: Policy) -> dict[str, str]:
    """What a sandboxed process gets beside the proxy's address (the relay sets http_proxy and the like): the CA
    bundle for every tool that takes one, and each secret's variable holding its placeholder."""
    return dict.fromkeys(CA_VARIABLES, os.fspath(ca_bundle)) | policy.environment()
