"""What goes through the proxy: the connection to a server; then either a tunnel's bytes, untouched, or one
request (its secrets added) out and the response back, streamed both ways at once (a server may answer before
the body is sent, or ask for it with 100 Continue)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

import h11

from .http1 import READ_SIZE, Bounds, HttpStream, PeerGone, end_to_end, has_body, header, replace_header
from .policy import IPAddress, authority
from .substitute import BodyRewriter, Substitution


class UpstreamError(Exception):
    """The server could not be reached or verified: what the client is answered (never a secret)."""

    def __init__(self, status: int, message: str, proxy_error: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.proxy_error = proxy_error


async def open_upstream(
    addresses: Sequence[IPAddress],
    host: str,
    port: int,
    bounds: Bounds,
    tls: ssl.SSLContext | None = None,
) -> HttpStream:
    """A connection to `host` at the first of `addresses` that answers (TLS-verified for `host` when `tls` is
    given), all within the connect timeout. Only these addresses: nothing is looked up again."""
    target = authority(host, port)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bounds.connect_timeout
    failure = "timed out"
    for address in addresses:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation (and leak what it opened).
            async with asyncio.timeout_at(deadline):
                reader, writer = await asyncio.open_connection(
                    str(address),
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                    ssl_handshake_timeout=remaining if tls is not None else None,
                    limit=READ_SIZE,
                )
            return HttpStream(reader, writer, h11.CLIENT, bounds)
        except ssl.SSLCertVerificationError as error:
            raise UpstreamError(
                502,
                f"runtimes-mcp: {target} presented a certificate the proxy does not trust ({error.verify_message})",
                "tls_certificate_error",
            ) from None
        except TimeoutError:
            failure = "timed out"
        except OSError as error:
            failure = error.strerror or str(error) or type(error).__name__
    status, kind = (504, "connection_timeout") if failure == "timed out" else (502, "connection_refused")
    raise UpstreamError(status, f"runtimes-mcp: could not connect to {target}: {failure}", kind)


async def exchange(
    client: HttpStream,
    request: h11.Request,
    target: bytes,
    host: bytes,
    upstream: HttpStream,
    substitution: Substitution,
    bounds: Bounds,
) -> None:
    """Forward `request` (its head read from `client`) to `upstream` as `target` with Host `host`, and the
    response back. Raises PeerGone or h11.ProtocolError when either side breaks; whether each connection can
    carry another exchange is theirs to say afterwards (HttpStream.reusable)."""
    headers = replace_header(end_to_end(request.headers), b"host", host)
    rewriter = substitution.body() if has_body(headers) and header(headers, b"content-encoding") is None else None
    buffered: bytes | None = None
    if rewriter is not None:
        length = header(headers, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) <= bounds.max_rewritten_body:
            # Small enough to hold: the server gets the length it would have had with the value in it.
            if header(headers, b"expect") is not None and client.conn.they_are_waiting_for_100_continue:
                await client.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
            buffered = b"".join([part async for part in _body(client, rewriter)]) + rewriter.finish()
            headers = replace_header(
                replace_header(headers, b"expect", None), b"content-length", str(len(buffered)).encode()
            )
        else:
            headers = replace_header(replace_header(headers, b"content-length", None), b"transfer-encoding", b"chunked")
    if substitution:
        headers = substitution.headers(headers)
        target = substitution.text(target)
    await upstream.send(h11.Request(method=request.method, target=target, headers=headers))
    if buffered is not None:
        await upstream.send(*([h11.Data(data=buffered)] if buffered else []), h11.EndOfMessage())
        await _relay_response(client, upstream)
        return
    sending = asyncio.create_task(_send_body(client, upstream, rewriter))
    relaying = asyncio.create_task(_relay_response(client, upstream))
    try:
        done, _ = await asyncio.wait({sending, relaying}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # raises what it raised
        # The response is whole while the body is not (the server answered early): neither connection is
        # reusable now, which they say by their states; the rest of the body is not waited for.
        if sending in done:
            await relaying
    finally:
        for task in (sending, relaying):
            task.cancel()
        await asyncio.gather(sending, relaying, return_exceptions=True)


async def _body(client: HttpStream, rewriter: BodyRewriter | None) -> AsyncIterator[bytes]:
    """The request body as it arrives, rewritten; what the rewriter holds back at the end is its finish()."""
    while True:
        event = await client.next_event()
        if isinstance(event, h11.Data):
            yield rewriter.feed(event.data) if rewriter is not None else event.data
        elif isinstance(event, h11.EndOfMessage):
            return
        else:
            raise PeerGone("the client closed during its request body")


async def _send_body(client: HttpStream, upstream: HttpStream, rewriter: BodyRewriter | None) -> None:
    if client.conn.their_state is not h11.DONE:
        async for data in _body(client, rewriter):
            if data:
                await upstream.send(h11.Data(data=data))
    tail = rewriter.finish() if rewriter is not None else b""
    await upstream.send(*([h11.Data(data=tail)] if tail else []), h11.EndOfMessage())


async def _relay_response(client: HttpStream, upstream: HttpStream) -> None:
    while True:
        event: Any = await upstream.next_event()
        if isinstance(event, h11.InformationalResponse):
            if event.status_code != 101:  # nothing asked to switch protocols: Upgrade does not pass the proxy
                await client.send(
                    h11.InformationalResponse(
                        status_code=event.status_code, headers=end_to_end(event.headers), reason=event.reason
                    )
                )
        elif isinstance(event, h11.Response):
            headers = end_to_end(event.headers)
            await client.send(h11.Response(status_code=event.status_code, headers=headers, reason=event.reason))
        elif isinstance(event, h11.Data):
            await client.send(h11.Data(data=event.data))
        elif isinstance(event, h11.EndOfMessage):
            await client.send(h11.EndOfMessage())
            return
        else:
            raise PeerGone("the server closed during its response")


async def discard(stream: HttpStream | None) -> None:
    if stream is not None:
        with contextlib.suppress(OSError):
            await stream.aclose()


async def splice(client: HttpStream, upstream: HttpStream, early: bytes, idle_timeout: float) -> None:
    """Copy bytes both ways until both ends are done or neither has sent anything for `idle_timeout`."""
    loop = asyncio.get_running_loop()
    last = [loop.time()]

    async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(idle_timeout):
                    data = await source.read(READ_SIZE)
            except TimeoutError:
                if loop.time() - last[0] >= idle_timeout:
                    raise PeerGone("idle tunnel") from None
                continue
            if not data:
                if sink.can_write_eof():
                    sink.write_eof()
                return
            last[0] = loop.time()
            sink.write(data)
            async with asyncio.timeout(idle_timeout):
                await sink.drain()

    if early:
        upstream.writer.write(early)
    tasks = [
        asyncio.create_task(copy(client.reader, upstream.writer)),
        asyncio.create_task(copy(upstream.reader, client.writer)),
    ]
    try:
        for task in asyncio.as_completed(tasks):
            await task  # the first failure ends both directions
    except (PeerGone, OSError, TimeoutError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
