"""Fakes of the remote providers: a real HTTP server on 127.0.0.1 that records every request byte for byte
and answers from a route table the test sets, and a pub/sub TCP server for ComputeSDK."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False  # close the connection without answering

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, dict | list):
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.body).encode(), headers
        if isinstance(self.body, str):
            return self.body.encode(), headers
        return self.body, headers


class FakeAPI:
    """`routes[(METHOD, path)]` is a Reply or a list of Replies served in turn (the last one repeats); a request
    no route matches gets `fallback(request)` when set (an API that answers every path, e.g. with an echo)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.routes: dict[tuple[str, str], Reply | list[Reply]] = {}
        self.fallback: Callable[[Recorded], Reply] | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else keep-alive replies stall ~40 ms on delayed ACKs

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(
                    self.command,
                    split.path,
                    parse_qs(split.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                fake.requests.append(recorded)
                reply = fake._next(recorded)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                payload, headers = reply.encoded()
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _next(self, request: Recorded) -> Reply:
        route = self.routes.get((request.method, request.path))
        if route is None and self.fallback is not None:
            return self.fallback(request)
        if route is None:
            return Reply(404, {"error": "not_found", "message": f"no fake route {request.method} {request.path}"})
        if isinstance(route, list):
            return route.pop(0) if len(route) > 1 else route[0]
        return route

    def url(self, prefix: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{prefix}"

    def last(self) -> Recorded:
        assert self.requests, "no request reached the fake"
        return self.requests[-1]

    def start(self) -> FakeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def fake_api() -> Iterator[FakeAPI]:
    api = FakeAPI().start()
    try:
        yield api
    finally:
        api.stop()


def decthings_frame(payload: Any, blobs: tuple[bytes, ...] = ()) -> bytes:
    """A Decthings HTTP *response* body, written independently of the client's own codec:
    varint JSON length, the JSON, then (varint length, blob) pairs."""

    def varint(n: int) -> bytes:
        if n < 253:
            return bytes([n])
        if n < 1 << 16:
            return bytes([253]) + n.to_bytes(2, "big")
        if n < 1 << 32:
            return bytes([254]) + n.to_bytes(4, "big")
        return bytes([255]) + n.to_bytes(8, "big")

    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()  # bytes: JSON as given
    return varint(len(data)) + data + b"".join(varint(len(b)) + b for b in blobs)
