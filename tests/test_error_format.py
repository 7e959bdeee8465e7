"""One error format for every tool error (the `errors` topic): a table of bad calls, local and remote, each
answered as a tool error that names what is wrong and ends with a `Next:` an agent can follow, with no
validation dump, traceback or Python repr of the input."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import connect, error_text
from tests.fakes import FakeAPI, Reply

# The SDK's prefix, then an optional `provider: ` and a sentence, then what to do.
FORMAT = re.compile(r"^(?:Error executing tool \w+: )?(?:(?P<provider>[a-z]+): )?.+?\. Next: \S.+$", re.DOTALL)
NEVER = ("validation error", "input_value", "Traceback", "pydantic", "For further information", "type=")

LOCAL_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("execRun", {}, "command: required, and missing"),
    ("execRun", {"command": 5}, "command: input should be a valid string (got 5)"),
    ("execRun", {"command": "true", "timeout_s": "5"}, "timeout_s: input should be a valid number (got '5')"),
    ("execRun", {"command": "true", "wait": "false"}, "wait: input should be a valid boolean"),
    ("execRun", {"command": "true", "bogus": 1}, "unknown argument(s) bogus"),
    ("execRun", {"command": ""}, "local: invalid input: command is empty"),
    ("execRun", {"command": "true", "provider": "nope"}, "unknown provider 'nope'"),
    ("execRun", {"command": "true", "provider": "xano"}, "xano: not configured on this server"),
    ("execRun", {"provider": "xano", "project_id": "p", "doc": "x"}, "Next: set XANO_ACCESS_TOKEN"),
    ("execRun", {"command": "true", "timeout_s": 0}, "timeout_s: input should be greater than or equal to 0.001"),
    ("execRun", {"command": "a\u0000b"}, "local: invalid input"),
    ("listSessions", {"limit": 0}, "limit: input should be greater than or equal to 1"),
    ("listSessions", {"status": "bogus"}, "local: invalid input: unknown status bogus"),
    ("stopSession", {}, "session_id: required, and missing"),
    ("stopSession", {"session_id": "ses_nope"}, "local: not found"),
    ("getSession", {"session_id": "ses_nope"}, "local: not found"),
    ("invokeRoutine", {"routine": "nope", "message": "x"}, "local: not found"),
    ("storeEvent", {"type": "t", "data": "text"}, "data: input should be a valid dictionary"),
    ("storeEvent", {"type": "", "data": {}}, "local: invalid input: type is empty"),
    ("getDocs", {"topic": "nope"}, "topic: input should be 'overview'"),
    ("getDocs", {"detail": "everything"}, "detail: input should be 'compact' or 'full'"),
    ("getLaunchers", {"sort_direction": "sideways"}, "sort_direction: input should be 'asc' or 'desc'"),
    ("getEvents", {"limit": 0}, "limit: input should be greater than or equal to 1"),
    ("listFiles", {"workspace": "w"}, "it is in the `workspaces` toolset"),
    ("noSuchTool", {}, "Unknown tool noSuchTool"),
]


def assert_documented_format(text: str, expected: str) -> None:
    assert expected in text, text
    assert FORMAT.match(text), f"not `[provider: ]cause. Next: action`: {text}"
    for word in NEVER:
        assert word not in text, text


@pytest.mark.parametrize(
    ("tool", "args", "expected"), LOCAL_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(LOCAL_CASES)]
)
async def test_every_bad_local_call_answers_in_the_documented_format(
    tool: str, args: dict[str, Any], expected: str
) -> None:
    async with connect() as client:
        assert_documented_format(error_text(await client.call_tool(tool, args)), expected)


REMOTE_CASES: list[tuple[tuple[str, str], Reply, str, dict[str, Any], str]] = [
    (
        ("GET", "/sprites/v1/sprites/box/exec"),
        Reply(404, {"error": "not_found", "message": "sprite box not found"}),
        "listSessions",
        {"provider": "sprites", "sprite": "box"},
        "sprites: HTTP 404 (not_found): sprite box not found (sprite='box'). Next: Check sprite",
    ),
    (
        ("GET", "/sprites/v1/sprites/box/exec"),
        Reply(401, {"error": "unauthorized", "message": "bad token"}),
        "listSessions",
        {"provider": "sprites", "sprite": "box"},
        "SPRITES_TOKEN",
    ),
    (
        ("POST", "/archastro/api/v1/agent_routines/arn_1/invoke"),
        Reply(422, {"error": {"code": "invalid", "message": "bad", "fields": {"message": ["is too long"]}}}),
        "invokeRoutine",
        {"provider": "archastro", "routine": "arn_1", "message": "m"},
        "archastro: HTTP 422 (invalid): bad (message: is too long). Next:",
    ),
    (
        ("POST", "/xano/api:run/project/p-1/run/r-1/session/s-1/stop"),
        Reply(400, {"code": "ERROR_CODE_BAD_REQUEST", "message": "session is complete"}),
        "stopSession",
        {"provider": "xano", "project_id": "p-1", "run_id": "r-1", "session_id": "s-1"},
        "xano:",
    ),
    (
        ("GET", "/sprites/v1/sprites/box/exec"),
        Reply(200, "<html>oops</html>", {"Content-Type": "text/html"}),
        "listSessions",
        {"provider": "sprites", "sprite": "box"},
        "sprites: protocol error",
    ),
]


@pytest.mark.parametrize(
    ("route", "reply", "tool", "args", "expected"),
    REMOTE_CASES,
    ids=[c[2] + f"-{i}" for i, c in enumerate(REMOTE_CASES)],
)
async def test_every_provider_failure_answers_in_the_documented_format(
    api: FakeAPI, route: tuple[str, str], reply: Reply, tool: str, args: dict[str, Any], expected: str
) -> None:
    api.routes[route] = reply
    async with connect() as client:
        text = error_text(await client.call_tool(tool, args))
    assert_documented_format(text, expected)
    assert FORMAT.match(text) and FORMAT.match(text).group("provider") == args["provider"]  # type: ignore[union-attr]


def test_the_format_check_refuses_a_raw_validation_dump() -> None:
    dump = "1 validation error for execRunArguments\ncommand\n  Field required [type=missing, input_value={}]"
    with pytest.raises(AssertionError):
        assert_documented_format(dump, "command")
    with pytest.raises(AssertionError):
        assert_documented_format("unknown argument(s) bogus; execRun takes: command.", "bogus")
