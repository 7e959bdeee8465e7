"""Retries: only requests that are safe to repeat, only on transient failures, honouring Retry-After."""

from __future__ import annotations

import time

from tests.conftest import connect
from tests.fakes import FakeAPI, Reply

SPRITES = ("GET", "/sprites/v1/sprites/box/exec")
OK = Reply(body={"sessions": [{"id": 1, "is_active": True}]})


async def call(tool: str, args: dict[str, object]) -> tuple[bool, str]:
    async with connect() as client:
        result = await client.call_tool(tool, args)
    return bool(result.is_error), result.content[0].text  # type: ignore[union-attr]


def hits(api: FakeAPI, route: tuple[str, str]) -> int:
    return sum((r.method, r.path) == route for r in api.requests)


async def test_a_read_is_retried_after_a_5xx_and_a_dropped_connection(api: FakeAPI) -> None:
    api.routes[SPRITES] = [Reply(500, {"error": "internal", "message": "oops"}), Reply(drop=True), OK]
    failed, text = await call("listSessions", {"provider": "sprites", "sprite": "box"})
    assert not failed, text
    assert hits(api, SPRITES) == 3


async def test_retry_after_is_honoured(api: FakeAPI) -> None:
    api.routes[SPRITES] = [Reply(429, {"error": "rate_limited", "message": "slow down"}, {"Retry-After": "1"}), OK]
    started = time.monotonic()
    failed, _ = await call("listSessions", {"provider": "sprites", "sprite": "box"})
    assert not failed and time.monotonic() - started >= 1.0
    assert hits(api, SPRITES) == 2


async def test_a_long_retry_after_is_reported_not_waited(api: FakeAPI) -> None:
    api.routes[SPRITES] = Reply(429, {"error": "rate_limited", "message": "slow down"}, {"Retry-After": "120"})
    started = time.monotonic()
    failed, text = await call("listSessions", {"provider": "sprites", "sprite": "box"})
    assert failed and "retry in 120 s" in text and time.monotonic() - started < 60
    assert hits(api, SPRITES) == 1


async def test_retries_give_up_after_the_configured_attempts(api: FakeAPI) -> None:
    api.routes[SPRITES] = Reply(503, {"error": "unavailable", "message": "maintenance"})
    failed, text = await call("listSessions", {"provider": "sprites", "sprite": "box"})
    assert failed and "HTTP 503" in text and "maintenance" in text
    assert hits(api, SPRITES) == 3  # 1 + RUNTIMES_MCP_RETRIES (default 2)


async def test_an_exec_is_never_replayed(api: FakeAPI) -> None:
    route = ("POST", "/xano/api:run/project/p/run/exec")
    api.routes[route] = [Reply(503, {"message": "busy"}), Reply(body={"session_id": "s", "state": "pending"})]
    failed, text = await call("execRun", {"provider": "xano", "project_id": "p", "doc": "job a {}"})
    assert failed and "HTTP 503" in text
    assert hits(api, route) == 1


async def test_an_invoke_is_retried_only_with_an_idempotency_key(api: FakeAPI) -> None:
    route = ("POST", "/archastro/api/v1/agent_routines/arn/invoke")
    run = Reply(body={"id": "arr", "status": "pending"})
    api.routes[route] = [Reply(502, {"error": {"code": "bad_gateway", "message": "upstream"}}), run]
    failed, _ = await call("invokeRoutine", {"provider": "archastro", "routine": "arn", "message": "m"})
    assert failed and hits(api, route) == 1

    api.routes[route] = [Reply(502, {"error": {"code": "bad_gateway", "message": "upstream"}}), run]
    failed, text = await call(
        "invokeRoutine", {"provider": "archastro", "routine": "arn", "message": "m", "idempotency_key": "k"}
    )
    assert not failed, text
    assert hits(api, route) == 3
    assert [r.json()["idempotency_key"] for r in api.requests[-2:]] == ["k", "k"]
