"""The egress proxy: HTTP/1.1 on a listening socket it is given, for a sandbox whose only way out it is.

`CONNECT host:port` opens a tunnel: untouched bytes for a host without a secret; for a secret's host, TLS
terminated with a certificate from our CA so the request inside can get the secret (then sent on over TLS,
the server verified: only a server that proves it is that host ever gets a secret). `GET http://host/path`
(absolute form) is forwarded, keep-alive on both sides, and never gets a secret: it would leave the machine
unencrypted, to whatever answers at that address; a placeholder there stays a placeholder, and the run is
told so once (`on_notice`). What the policy refuses gets a 403 whose one line says what was refused and which
setting would allow it, and is recorded in `denied`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import h11

from .addresses import Lookup, LookupFailed, Resolver
from .ca import CertificateAuthority, upstream_context
from .forward import UpstreamError, discard, exchange, open_upstream, splice
from .http1 import Bounds, HttpStream, PeerGone, plain_response
from .policy import IPAddress, Policy, Refused, authority, canonical_host
from .substitute import Substitution

logger = logging.getLogger(__name__)

# Called (in the proxy's thread) with a line for the run's stderr: each refusal's, and what else it should know.
OnNotice = Callable[[str], None]
MAX_DENIED = 1000
_BUSY = b"runtimes-mcp: the egress proxy has too many connections open; retry shortly\n"


class EgressProxy:
    """One proxy on one event loop. `start` serves a listening socket (which it then owns); `aclose` stops."""

    def __init__(
        self,
        policy: Policy,
        ca: CertificateAuthority,
        extra_ca_file: str | None,
        bounds: Bounds | None = None,
        lookup: Lookup | None = None,
        on_notice: OnNotice | None = None,
    ) -> None:
        self.policy = policy
        self.ca = ca
        self.extra_ca_file = extra_ca_file
        self.bounds = bounds or Bounds()
        self.resolver = Resolver(policy, lookup, timeout=self.bounds.connect_timeout)
        self.denied: dict[str, None] = {}  # "host:port" refused, in order, each once
        self._on_notice = on_notice
        self._noticed: set[str] = set()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    def upstream_context(self) -> ssl.SSLContext:
        """What verifies a secret's host, loaded on first use (see ca.upstream_context)."""
        try:
            return upstream_context(self.extra_ca_file)
        except (OSError, ValueError) as error:  # the operator's ca_file changed or went after the start
            message = f"runtimes-mcp: the proxy could not load its trust store ({type(error).__name__}): "
            message += "the operator should check local.sandbox.ca_file"
            raise UpstreamError(502, message, "proxy_configuration_error") from None

    async def start(self, listening: socket.socket) -> None:
        self._server = await asyncio.start_server(self._accept, sock=listening, limit=64 * 1024)

    async def aclose(self) -> None:
        """Stop accepting, then end every connection (cut, not drained)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def connections(self) -> int:
        return len(self._connections)

    def record(self, refusal: Refused) -> None:
        # Kept once each and at most MAX_DENIED of them: a sandbox can make up names without end.
        if len(self.denied) < MAX_DENIED:
            self.denied.setdefault(refusal.target)
        self._tell(refusal.message)

    def notice(self, key: str, message: str) -> None:
        """Tell the run `message`, once per `key` (and at most MAX_DENIED keys)."""
        if key in self._noticed or len(self._noticed) >= MAX_DENIED:
            return
        self._noticed.add(key)
        logger.info("egress proxy: %s", message)
        self._tell(message)

    def _tell(self, message: str) -> None:
        if self._on_notice is not None:
            try:
                self._on_notice(message)
            except Exception:
                logger.exception("egress proxy: the on_notice callback failed")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = HttpStream(reader, writer, h11.SERVER, self.bounds)
        if len(self._connections) >= self.bounds.max_connections:
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BUSY), _BUSY)
            )
            await client.aclose()
            return
        connection = writer.get_extra_info("socket")
        if connection is not None and connection.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets this only on sockets made with proto=IPPROTO_TCP, which a listening socket made
            # with proto 0 does not pass on: without it, a reply relayed in two writes waits out a delayed ACK.
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        graceful = True
        try:
            await ClientConnection(self, client).serve()
        except (PeerGone, h11.ProtocolError, OSError, TimeoutError):
            pass  # the connection is over either way; nothing the sandbox sent is worth a log line
        except asyncio.CancelledError:
            # The proxy is closing. Not re-raised: this task is the connection's outermost, and asyncio's
            # streams (3.11) would report a cancelled one as an error.
            graceful = False
        except Exception as error:
            # Only the type: an exception's text may quote a request, and a request may hold a secret's value.
            logger.error("egress proxy: connection failed with %s", type(error).__name__)
        finally:
            self._connections.discard(task)
            await client.aclose(graceful)


class ClientConnection:
    """What the proxy does with one connection from the sandbox."""

    def __init__(self, proxy: EgressProxy, client: HttpStream) -> None:
        self.proxy = proxy
        self.bounds = proxy.bounds
        self.client = client
        self.upstream: HttpStream | None = None
        self.upstream_for: tuple[str, int] | None = None

    async def serve(self) -> None:
        try:
            while True:
                try:
                    event = await self.client.next_event()
                except h11.RemoteProtocolError as error:
                    await self._malformed(self.client, error)
                    return
                if not isinstance(event, h11.Request):
                    return  # the sandbox closed the connection
                if event.method == b"CONNECT":
                    # What the client sends next must reach the TLS layer for a terminated tunnel, not the
                    # stream's buffer: stop reading until it is known where those bytes go.
                    self.client.pause_reading()
                    if not await self._connect(event):
                        return
                elif not await self._forward(event) or not self.client.reusable():
                    return
        finally:
            await discard(self.upstream)

    async def _connect(self, request: h11.Request) -> bool:
        """CONNECT: refused (and the connection kept), or a tunnel that is the rest of this connection."""
        try:
            parts = urlsplit("//" + request.target.decode("ascii"))
            host, port = canonical_host(parts.hostname or ""), parts.port
            if port is None or not 0 < port < 65536 or parts.username is not None or parts.path:
                raise ValueError(request.target)
        except (ValueError, UnicodeDecodeError):
            self.client.resume_reading()
            await self._answer(400, "runtimes-mcp: CONNECT takes host:port", "http_request_error")
            return self.client.reusable()
        addresses = await self._allowed(host, port)
        if addresses is None:
            self.client.resume_reading()
            return self.client.reusable()
        secrets = self.proxy.policy.secrets_for(host, port)
        try:
            tls = self.proxy.upstream_context() if secrets else None
            up = await open_upstream(addresses, host, port, self.bounds, tls)
        except UpstreamError as error:
            self.client.resume_reading()
            await self._answer(error.status, error.message, error.proxy_error)
            return self.client.reusable()
        try:
            await self.client.send(h11.Response(status_code=200, headers=[], reason=b"Connection established"))
            early, _ = self.client.conn.trailing_data
            if secrets:
                await self._terminate(host, port, up, Substitution(secrets), early)  # start_tls resumes reading
            else:
                self.client.resume_reading()
                await splice(self.client, up, early, self.bounds.idle_timeout)
        finally:
            await discard(up)
        return False

    async def _terminate(self, host: str, port: int, up: HttpStream, substitution: Substitution, early: bytes) -> None:
        """Be the server to the sandbox (our CA's certificate for `host`) and forward each request inside to
        the real one, the secrets added."""
        if early:
            return  # bytes sent before the tunnel was open cannot be part of our TLS handshake
        try:
            context = self.proxy.ca.server_context(host)
            await self.client.writer.start_tls(context, ssl_handshake_timeout=self.bounds.handshake_timeout)
        except (OSError, TimeoutError, ssl.SSLError):
            return  # typically: the client does not trust our CA (it was not given the bundle)
        inner = HttpStream(self.client.reader, self.client.writer, h11.SERVER, self.bounds)
        host_header = _host_header(host, port, 443)
        upstream: HttpStream | None = up
        try:
            while True:
                try:
                    event = await inner.next_event()
                except h11.RemoteProtocolError as error:
                    await self._malformed(inner, error)
                    return
                if not isinstance(event, h11.Request):
                    return
                if not event.target.startswith(b"/"):
                    # Whatever the sandbox names, this tunnel leads to `host` alone (and so do its secrets).
                    message = "runtimes-mcp: inside a tunnel, send origin-form requests (GET /path)"
                    await self._answer(400, message, "http_request_error", inner)
                    return
                if upstream is not None and upstream.reader.at_eof():
                    await discard(upstream)  # the server closed it while it was idle
                    upstream = None
                if upstream is None:
                    try:
                        addresses = await self.proxy.resolver.resolve(host, port)
                        upstream = await open_upstream(
                            addresses, host, port, self.bounds, self.proxy.upstream_context()
                        )
                    except (Refused, LookupFailed, UpstreamError) as error:
                        await self._answer(502, str(error), "destination_unavailable", inner)
                        return
                if not await self._exchange(inner, event, event.target, host_header, upstream, substitution):
                    return
                if not upstream.reusable():
                    await discard(upstream)
                    upstream = None
                if not inner.reusable():
                    return
        finally:
            if upstream is not up:
                await discard(upstream)

    async def _forward(self, request: h11.Request) -> bool:
        """An absolute-form request (`GET http://host/path`): forwarded to its server; False ends the
        connection."""
        try:
            parts = urlsplit(request.target.decode("ascii"))
            if parts.scheme != "http" or parts.username is not None or not parts.hostname:
                raise ValueError(request.target)
            host, port = canonical_host(parts.hostname), 80 if parts.port is None else parts.port
            if not 0 < port < 65536:
                raise ValueError(request.target)
        except (ValueError, UnicodeDecodeError):
            await self._answer(
                400,
                "runtimes-mcp: this is the sandbox's HTTP proxy: send http://host/path (absolute form), or CONNECT "
                "host:port for anything else",
                "http_request_error",
            )
            return False
        target = (parts.path or "/").encode() + (b"?" + parts.query.encode() if parts.query else b"")
        if self.upstream is not None and (self.upstream_for != (host, port) or self.upstream.reader.at_eof()):
            await discard(self.upstream)
            self.upstream, self.upstream_for = None, None
        if self.upstream is None:
            addresses = await self._allowed(host, port)
            if addresses is None:
                return True
            try:
                self.upstream = await open_upstream(addresses, host, port, self.bounds)
            except UpstreamError as error:
                await self._answer(error.status, error.message, error.proxy_error)
                return True
            self.upstream_for = (host, port)
        host_header = _host_header(host, port, 80)
        self._plain_http(host, port, request, target)
        if not await self._exchange(self.client, request, target, host_header, self.upstream, Substitution(())):
            return False
        if not self.upstream.reusable():
            await discard(self.upstream)
            self.upstream, self.upstream_for = None, None
        return True

    def _plain_http(self, host: str, port: int, request: h11.Request, target: bytes) -> None:
        """A request over plain HTTP gets no secret, even to a secret's host: say so when it carries a
        placeholder there (in its target or headers), so the run learns to use https://."""
        secrets = self.proxy.policy.secrets_for(host, port)
        sent = [target, *(value for _, value in request.headers)]
        named = [s.name for s in secrets if any(s.placeholder.encode() in part for part in sent)]
        if named:
            where = authority(host, port)
            self.proxy.notice(
                where,
                f"runtimes-mcp: http://{where} is plain HTTP, so the proxy left the placeholder of "
                f"local.secrets.{', '.join(named)} as it is (a secret is added only to HTTPS requests, whose server "
                f"the proxy verifies); use https://{where}",
            )

    async def _exchange(
        self,
        client: HttpStream,
        request: h11.Request,
        target: bytes,
        host: bytes,
        upstream: HttpStream,
        substitution: Substitution,
    ) -> bool:
        """One request and its response; False when the client connection cannot go on."""
        try:
            await exchange(client, request, target, host, upstream, substitution, self.bounds)
        except (PeerGone, h11.ProtocolError, OSError) as error:
            if not client.can_answer():
                return False
            # Only the kind of error: its text could quote the request as sent, secrets added.
            message = f"runtimes-mcp: the server broke off ({type(error).__name__})"
            await self._answer(502, message, "http_protocol_error", client, close=True)
            return False
        return True

    async def _allowed(self, host: str, port: int) -> list[IPAddress] | None:
        """The addresses to connect to, or None once the refusal (or failure) is answered."""
        try:
            self.proxy.policy.check(host, port)
            return await self.proxy.resolver.resolve(host, port)
        except Refused as refusal:
            self.proxy.record(refusal)
            await self._answer(403, refusal.message, refusal.proxy_error)
        except LookupFailed as failure:
            await self._answer(502, str(failure), "dns_error")
        return None

    async def _answer(
        self, status: int, message: str, proxy_error: str, to: HttpStream | None = None, close: bool = False
    ) -> None:
        """Answer the current request ourselves; the connection stays open only if its request is whole."""
        stream = to or self.client
        close = close or not stream.body_done()
        await stream.send(*plain_response(status, message, proxy_error, close))

    async def _malformed(self, stream: HttpStream, error: h11.RemoteProtocolError) -> None:
        if not stream.can_answer():
            return
        if error.error_status_hint == 431:
            message = f"runtimes-mcp: the request's head is over {self.bounds.max_head_bytes} bytes"
        else:
            message = "runtimes-mcp: malformed HTTP/1.1 request"
        with contextlib.suppress(h11.ProtocolError):
            await stream.send(*plain_response(error.error_status_hint, message, "http_request_error", True))


def _host_header(host: str, port: int, default_port: int) -> bytes:
    name = f"[{host}]" if ":" in host else host
    return (name if port == default_port else f"{name}:{port}").encode()
