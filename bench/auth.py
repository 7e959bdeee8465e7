"""Bench helper (not a test): a tool call over HTTP signed in with a JWT vs the same call with the static token,
p50 and what signing in adds.

In process: httpx.ASGITransport on the real HTTP app (stateless JSON), one `listSessions` call at a time, the ways
interleaved in rounds so that the host's noise falls on all of them alike. The identity provider's keys come
through httpx.MockTransport and are warm (fetched before timing); nothing leaves the process.
- static: RUNTIMES_MCP_HTTP_TOKEN, OAuth off (a constant-time compare);
- jwt: the same RS256 access token on each call, as a client sends it (checked once, then remembered);
- jwt, new each call: a token never seen before on each call (its signature verified every time).

    python -m bench.auth [--calls N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://idp.bench.example"
RESOURCE = "http://127.0.0.1:8000/mcp"
STATIC = "bench-static-token"
BODY = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "listSessions", "arguments": {"limit": 1}},
}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@dataclass(frozen=True)
class Result:
    way: str
    p50_ms: float
    p90_ms: float


def measure(calls: int = 1000, warmup: int = 100) -> list[Result]:
    """p50 and p90 of a tool call each way (see the module's docstring)."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ.update(
            RUNTIMES_MCP_DATA_DIR=data_dir,
            RUNTIMES_MCP_PUBLIC_URL=RESOURCE,
            RUNTIMES_MCP_OAUTH_ISSUER=ISSUER,
            RUNTIMES_MCP_HTTP_TOKEN=STATIC,
            RUNTIMES_MCP_ON_EXIT="stop",
        )
        try:
            return anyio.run(_measure, calls, warmup)
        finally:  # the settings were this bench's only
            os.environ.clear()
            os.environ.update(saved)


async def _measure(calls: int, warmup: int) -> list[Result]:
    from server.app import create_server
    from server.config import load_settings
    from server.http import build_http_app
    from server.sign_in import Verifier
    from server.state import AppState
    from server.tokens import Keys, TokenChecker

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = {"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "use": "sig"}]}
    issuer = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=jwks)))
    checker = TokenChecker(ISSUER, RESOURCE, Keys(f"{ISSUER}/keys", issuer), issuer)
    counter = iter(range(10**9))

    def token() -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "alice",
            "aud": RESOURCE,
            "iat": now,
            "exp": now + 3600,
            "jti": str(next(counter)),
        }
        return jwt.encode({**claims, "scope": "runtimes:read runtimes:run"}, key, "RS256", headers={"kid": "k1"})

    settings = load_settings()
    same = token()
    async with AppState.open(settings) as state:
        options: dict[str, Any] = {"host": "127.0.0.1", "stateless": True, "json_response": True, "token": STATIC}
        static_app = build_http_app(create_server(settings, state), settings, **options)
        oauth_app = build_http_app(
            create_server(settings, state), settings, **options, verifier=Verifier(checker, STATIC)
        )
        async with running(static_app), running(oauth_app):
            clients = {
                name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000")
                for name, app in (("static", static_app), ("oauth", oauth_app))
            }
            fresh = [token() for _ in range(calls + warmup)]  # made before timing: signing is the client's cost
            ways: dict[str, tuple[str, Callable[[int], str]]] = {
                "static token": ("static", lambda _: STATIC),
                "JWT (the same token each call)": ("oauth", lambda _: same),
                "JWT (a new token each call)": ("oauth", lambda n: fresh[n]),
            }
            times: dict[str, list[float]] = {way: [] for way in ways}
            for n in range(calls + warmup):
                for way, (client, bearer) in ways.items():
                    started = time.perf_counter()
                    await post(clients[client], bearer(n))
                    elapsed = (time.perf_counter() - started) * 1000
                    if n >= warmup:
                        times[way].append(elapsed)
            for client in clients.values():
                await client.aclose()
    await issuer.aclose()
    return [Result(way, statistics.median(t), sorted(t)[int(len(t) * 0.9)]) for way, t in times.items()]


async def post(client: httpx.AsyncClient, bearer: str) -> None:
    answer = await client.post("/mcp", json=BODY, headers={**HEADERS, "Authorization": f"Bearer {bearer}"})
    if answer.status_code != 200 or '"isError":false' not in answer.text:
        raise RuntimeError(f"the call failed: {answer.status_code} {answer.text[:300]}")


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    """Run an ASGI app's lifespan (startup before, shutdown after), as a server would."""
    started, stop = anyio.Event(), anyio.Event()
    queued = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        if queued:
            return queued.pop()
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
        await started.wait()
        try:
            yield
        finally:
            stop.set()


def report(results: list[Result]) -> str:
    base = results[0].p50_ms
    lines = [
        f"{r.way}: p50 {r.p50_ms:.3f} ms, p90 {r.p90_ms:.3f} ms, added p50 {r.p50_ms - base:+.3f} ms" for r in results
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="timed calls each way (default 1000)")
    args = parser.parse_args()
    print(report(measure(args.calls)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
