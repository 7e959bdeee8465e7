"""Every provider failure becomes a tool error that says what happened and what to do, and never a token."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.conftest import TOKENS, connect
from tests.fakes import FakeAPI, Reply, decthings_frame

DECTHINGS = ("POST", "/decthings/v0/PersistentLauncher/getPersistentLaunchers")


@pytest.fixture(autouse=True)
def single_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failure here is seen on its first answer; retries have their own tests."""
    monkeypatch.setenv("RUNTIMES_MCP_RETRIES", "0")


async def failure(tool: str, args: dict[str, Any]) -> str:
    async with connect() as client:
        result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    text = "\n".join(block.text for block in result.content)  # type: ignore[union-attr]
    for secret in TOKENS.values():
        assert secret not in text
    assert "Traceback" not in text
    return text


SPRITES_LIST = ("listSessions", {"provider": "sprites", "sprite": "box"})


async def test_401_names_the_variable_to_set(api: FakeAPI) -> None:
    api.routes[("GET", "/sprites/v1/sprites/box/exec")] = Reply(
        401, {"error": "unauthorized", "message": "invalid token"}
    )
    text = await failure(*SPRITES_LIST)
    assert "sprites: HTTP 401 (unauthorized): invalid token" in text and "Set a valid SPRITES_TOKEN" in text

    api.routes[("POST", "/archastro/api/v1/agent_routines/arn_1/invoke")] = Reply(
        401, {"error": {"code": "unauthenticated", "message": "bad key"}}
    )
    text = await failure("invokeRoutine", {"provider": "archastro", "routine": "arn_1", "message": "m"})
    assert "ARCHASTRO_API_KEY" in text and "bad key" in text


async def test_404_names_the_id(api: FakeAPI) -> None:
    api.routes[("GET", "/sprites/v1/sprites/ghost/exec")] = Reply(
        404, {"error": "not_found", "message": "sprite not found"}
    )
    text = await failure("listSessions", {"provider": "sprites", "sprite": "ghost"})
    assert "HTTP 404" in text and "sprite='ghost'" in text and "Next: Check sprite: list the resources first" in text


async def test_archastro_409_duplicate_is_reported_once_and_not_retried(api: FakeAPI) -> None:
    route = ("POST", "/archastro/api/v1/agent_routines/arn_1/invoke")
    api.routes[route] = Reply(409, {"error": {"code": "conflict", "message": "completed run exists for key"}})
    text = await failure(
        "invokeRoutine", {"provider": "archastro", "routine": "arn_1", "message": "m", "idempotency_key": "k"}
    )
    assert "HTTP 409 (conflict)" in text and "getRoutineRun" in text
    assert len([r for r in api.requests if (r.method, r.path) == route]) == 1


async def test_422_carries_the_providers_field_errors(api: FakeAPI) -> None:
    api.routes[("POST", "/archastro/api/v1/agent_routines/arn_1/invoke")] = Reply(
        422,
        {
            "error": {
                "code": "validation_failed",
                "message": "invalid params",
                "fields": {"session_key": ["is required"]},
            }
        },
    )
    text = await failure("invokeRoutine", {"provider": "archastro", "routine": "arn_1", "message": "m"})
    assert "invalid params (session_key: is required)" in text and "Fix the named argument" in text

    api.routes[("POST", "/xano/api:run/project/p-1/run/r-1/session/s-1/stop")] = Reply(
        400, {"code": "ERROR_CODE_BAD_REQUEST", "message": "Session is complete"}
    )
    text = await failure("stopSession", {"provider": "xano", "project_id": "p-1", "run_id": "r-1", "session_id": "s-1"})
    assert "Session is complete" in text and "cannot be stopped" in text


async def test_402_and_429_say_what_to_do(api: FakeAPI) -> None:
    route = ("POST", "/archastro/api/v1/agent_routines/arn_1/invoke")
    api.routes[route] = Reply(402, {"error": {"code": "payment_required", "message": "upgrade"}})
    text = await failure("invokeRoutine", {"provider": "archastro", "routine": "arn_1", "message": "m"})
    assert "HTTP 402" in text and "plan" in text
    api.routes[("GET", "/sprites/v1/sprites/box/exec")] = Reply(
        429, {"error": "rate_limited", "message": "slow"}, headers={"Retry-After": "7"}
    )
    text = await failure(*SPRITES_LIST)
    assert "HTTP 429" in text and "retry in 7 s" in text


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            {"code": "invalid_parameter", "parameterName": "limit", "reason": "must be positive"},
            "parameter limit: must be positive",
        ),
        ({"code": "bad_credentials"}, "DECTHINGS_API_KEY"),
        ({"code": "too_many_requests"}, "rate limited"),
        ({"code": "payment_required"}, "not entitled"),
        ({"code": "unknown"}, "provider unavailable"),
    ],
)
async def test_decthings_errors_inside_http_200(api: FakeAPI, error: dict[str, Any], expected: str) -> None:
    api.routes[DECTHINGS] = Reply(
        body=decthings_frame({"error": error}), headers={"Content-Type": "application/octet-stream"}
    )
    text = await failure("getLaunchers", {"provider": "decthings"})
    assert expected in text


async def test_decthings_wrong_content_type_is_a_protocol_error(api: FakeAPI) -> None:
    api.routes[DECTHINGS] = Reply(body={"result": {}})
    text = await failure("getLaunchers", {"provider": "decthings"})
    assert "protocol error" in text and "application/octet-stream" in text


async def test_computesdk_auth_errors_name_the_right_credential(api: FakeAPI, monkeypatch) -> None:
    api.routes[("GET", "/computesdk/events/sbx")] = Reply(401, {"success": False, "error": "Invalid API key"})
    text = await failure("getEvents", {"provider": "computesdk", "sandbox_id": "sbx"})
    assert "Invalid API key" in text and "COMPUTESDK_API_KEY" in text
    api.routes[("POST", "/computesdk/events")] = Reply(401, {"success": False, "error": "Invalid token"})
    text = await failure("storeEvent", {"provider": "computesdk", "type": "t", "data": {}})
    assert "COMPUTESDK_ACCESS_TOKEN" in text


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(200, "<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"}), "not JSON (text/html"),
        (Reply(200, '{"sessions": [', {"Content-Type": "application/json"}), "not JSON"),
        (Reply(502, "<html>upstream down</html>", {"Content-Type": "text/html"}), "HTTP 502"),
        (Reply(200, {"sessions": "nope"}), "neither {sessions: [...]} nor a list"),
    ],
)
async def test_malformed_bodies_are_protocol_errors(api: FakeAPI, reply: Reply, expected: str) -> None:
    api.routes[("GET", "/sprites/v1/sprites/box/exec")] = reply
    text = await failure(*SPRITES_LIST)
    assert expected in text
    assert "<html>" not in text


async def test_slow_answer_times_out(api: FakeAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIMES_MCP_HTTP_TIMEOUT", "0.3")
    api.routes[("GET", "/sprites/v1/sprites/box/exec")] = Reply(body={"sessions": []}, delay_s=1.0)
    text = await failure(*SPRITES_LIST)
    assert "sprites: timeout" in text and "0.3 s" in text


async def test_unreachable_provider_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SPRITES_TOKEN", TOKENS["SPRITES_TOKEN"])
    monkeypatch.setenv("SPRITES_BASE_URL", f"http://127.0.0.1:{port}")
    text = await failure(*SPRITES_LIST)
    assert "could not reach http://127.0.0.1" in text and "ConnectError" in text


async def test_dropped_connection_is_unavailable(api: FakeAPI) -> None:
    api.routes[("GET", "/sprites/v1/sprites/box/exec")] = Reply(drop=True)
    text = await failure(*SPRITES_LIST)
    assert "provider unavailable" in text
