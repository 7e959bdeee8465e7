"""Tool arguments are taken as the schema types them: no string-to-number or string-to-boolean coercion, and a
wrong one is answered with the argument, what it needs, what came, and what to do."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import connect, error_text, structured


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"command": "true", "timeout_s": "5"}, "timeout_s: input should be a valid number (got '5')"),
        ({"command": "true", "wait": "false"}, "wait: input should be a valid boolean (got 'false')"),
        ({"command": "true", "timeout_s": True}, "timeout_s: input should be a valid number (got True)"),
        ({"command": 42}, "command: input should be a valid string (got 42)"),
        ({"command": "true", "env": ["A=1"]}, "env: input should be a valid dictionary (got list)"),
        ({}, "command: required, and missing"),
    ],
)
async def test_a_wrong_type_is_invalid_input_with_what_to_send(arguments: dict[str, Any], named: str) -> None:
    async with connect() as client:
        text = error_text(await client.call_tool("execRun", arguments))
    assert f"invalid arguments: {named}" in text and "Next: send them with the types and bounds" in text
    assert "validation error for" not in text and "pydantic" not in text


async def test_json_numbers_and_booleans_are_taken_as_they_are() -> None:
    async with connect() as client:
        result = structured(await client.call_tool("execRun", {"command": "true", "timeout_s": 5, "wait": True}))
    assert result["state"] == "completed"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"command": "echo a\x00b"}, "command contains a NUL character"),
        ({"command": "true", "cwd": "/tmp\x00x"}, "cwd contains a NUL character"),
        ({"command": "true", "env": {"A": "x\x00y"}}, "env value 'A' contains a NUL character"),
        ({"command": "true", "env": {"A=B": "1"}}, "env name 'A=B' cannot be a variable name"),
        ({"command": "true", "env": {"": "1"}}, "env name '' cannot be a variable name"),
    ],
)
async def test_what_no_process_can_take_is_invalid_input_not_a_lost_run(arguments: dict[str, Any], named: str) -> None:
    async with connect() as client:
        text = error_text(await client.call_tool("execRun", arguments))
        listed = structured(await client.call_tool("listSessions", {}))
    assert f"local: invalid input: {named}" in text and "Next:" in text
    assert listed["sessions"] == []  # nothing was started, so nothing was lost
