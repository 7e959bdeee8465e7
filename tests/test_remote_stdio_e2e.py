"""The issue's bar, end to end: a real `runtimes-mcp` over stdio with every base URL on a fake drives each
row of the remote tool table; each request is what the provider documents; errors are tool errors; and no
token appears in any result, error or line of the server's stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import stdio_client

from providers.decthings.client import decode_response
from tests.conftest import TOKENS, stdio_params
from tests.fakes import Reply, decthings_frame, fake_api

ROWS: list[tuple[str, dict[str, Any], tuple[str, str], Any, dict[str, Any] | None]] = [
    # tool, arguments, (method, fake path), reply body, expected JSON body (None: no body / not JSON)
    (
        "listSessions",
        {"provider": "sprites", "sprite": "box"},
        ("GET", "/sprites/v1/sprites/box/exec"),
        {"sessions": []},
        None,
    ),
    (
        "listSessions",
        {"provider": "xano", "project_id": "p", "page": 2},
        ("GET", "/xano/project/p/run/session"),
        {"items": []},
        None,
    ),
    (
        "listSessions",
        {"provider": "archastro", "status": "running"},
        ("GET", "/archastro/api/v1/agent_sessions"),
        {"data": []},
        None,
    ),
    (
        "execRun",
        {"provider": "xano", "project_id": "p", "doc": "job a {}"},
        ("POST", "/xano/project/p/run/exec"),
        {"session_id": "s", "state": "pending"},
        {"doc": "job a {}"},
    ),
    (
        "execRun",
        {"provider": "xano", "project_id": "p", "run_id": "r", "args": {"x": 1}},
        ("POST", "/xano/project/p/run/r/exec"),
        {"session_id": "s", "state": "pending"},
        {"args": {"x": 1}},
    ),
    (
        "execRun",
        {"provider": "xano", "session_id": "s", "doc": "job b {}"},
        ("POST", "/xano/session/s/exec"),
        {"session_id": "s", "state": "running"},
        {"doc": "job b {}"},
    ),
    (
        "stopSession",
        {"provider": "xano", "project_id": "p", "run_id": "r", "session_id": "s"},
        ("POST", "/xano/project/p/run/r/session/s/stop"),
        {},
        None,
    ),
    (
        "stopSession",
        {"provider": "archastro", "session_id": "ase"},
        ("POST", "/archastro/api/v1/agent_sessions/ase/cancel"),
        {"id": "ase", "status": "cancelled"},
        None,
    ),
    (
        "stopSession",
        {"provider": "sprites", "sprite": "box", "session_id": "3"},
        ("POST", "/sprites/v1/sprites/box/exec/3/kill"),
        '{"type":"complete","exit_code":0}\n',
        None,
    ),
    (
        "invokeRoutine",
        {
            "provider": "archastro",
            "routine": "arn",
            "message": "hi",
            "idempotency_key": "k",
            "metadata": {"m": 1},
            "session_key": "sk",
            "thread_id": "thr",
            "user": "u",
        },
        ("POST", "/archastro/api/v1/agent_routines/arn/invoke"),
        {"id": "arr", "status": "pending"},
        {
            "message": "hi",
            "idempotency_key": "k",
            "metadata": {"m": 1},
            "session_key": "sk",
            "thread_id": "thr",
            "user": "u",
        },
    ),
    (
        "storeEvent",
        {"provider": "computesdk", "type": "t", "data": {"a": 1}},
        ("POST", "/computesdk/events"),
        {"success": True, "data": {"eventId": "e", "sandboxId": "sb", "type": "t", "timestamp": 1}},
        {"type": "t", "data": {"a": 1}},
    ),
]

AUTH = {
    "sprites": ("authorization", f"Bearer {TOKENS['SPRITES_TOKEN']}"),
    "xano": ("authorization", f"Bearer {TOKENS['XANO_ACCESS_TOKEN']}"),
    "archastro": ("x-archastro-api-key", TOKENS["ARCHASTRO_API_KEY"]),
    "decthings": ("authorization", f"Bearer {TOKENS['DECTHINGS_API_KEY']}"),
    "computesdk": ("authorization", f"Bearer {TOKENS['COMPUTESDK_ACCESS_TOKEN']}"),
}


async def test_every_table_row_over_stdio_with_exact_requests_and_no_leaked_token(tmp_path: Path) -> None:
    outputs: list[str] = []
    with fake_api() as api:
        env = {
            **TOKENS,
            "SPRITES_BASE_URL": api.url("/sprites"),
            "XANO_RUN_BASE_URL": api.url("/xano"),
            "ARCHASTRO_BASE_URL": api.url("/archastro"),
            "DECTHINGS_BASE_URL": api.url("/decthings"),
            "COMPUTESDK_GATEWAY_URL": api.url("/computesdk"),
        }
        for _, _, route, body, _ in ROWS:
            api.routes[route] = Reply(body=body)
        api.routes[("POST", "/decthings/PersistentLauncher/getPersistentLaunchers")] = Reply(
            body=decthings_frame({"result": {"persistentLaunchers": [], "total": 0, "offset": 5, "limit": 2}}),
            headers={"Content-Type": "application/octet-stream"},
        )
        api.routes[("GET", "/sprites/v1/sprites/nope/exec")] = Reply(
            401, {"error": "unauthorized", "message": "bad token"}
        )
        stderr_path = tmp_path / "server-stderr.log"
        with stderr_path.open("w") as errlog:
            async with Client(stdio_client(stdio_params(env=env), errlog=errlog)) as client:
                for tool, args, route, _, expected_body in ROWS:
                    before = len(api.requests)
                    result = await client.call_tool(tool, args)
                    outputs.append(result.content[0].text)  # type: ignore[union-attr]
                    assert not result.is_error, (tool, args, result.content[0].text)  # type: ignore[union-attr]
                    assert len(api.requests) == before + 1
                    rec = api.last()
                    assert (rec.method, rec.path) == route
                    header, value = AUTH[args["provider"]]
                    assert rec.headers[header] == value
                    if expected_body is not None:
                        assert rec.json() == expected_body
                    elif rec.method == "GET" or tool == "stopSession":
                        assert rec.body == b""
                assert api.requests[1].query == {"page": ["2"]}

                launchers = await client.call_tool("getLaunchers", {"provider": "decthings", "offset": 5, "limit": 2})
                outputs.append(launchers.content[0].text)  # type: ignore[union-attr]
                assert not launchers.is_error
                framed = api.last().body
                assert framed[0] == 0 and decode_response(framed[1:]) == {"offset": 5, "limit": 2}
                assert api.last().headers["content-type"] == "application/octet-stream"

                denied = await client.call_tool("listSessions", {"provider": "sprites", "sprite": "nope"})
                outputs.append(denied.content[0].text)  # type: ignore[union-attr]
                assert denied.is_error and "SPRITES_TOKEN" in denied.content[0].text  # type: ignore[union-attr]
        server_stderr = stderr_path.read_text()
    everything = "\n".join([*outputs, server_stderr])
    for secret in TOKENS.values():
        assert secret not in everything, secret
