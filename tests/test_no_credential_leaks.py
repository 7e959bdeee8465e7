"""No credential ever leaves the server: every provider credential and the HTTP token are unique markers, and
none appears in a tool result, a tool error, an MCP log notification, a stderr log line (at DEBUG), or the
environment of a local child process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.types import LoggingMessageNotification

from tests.conftest import stdio_params
from tests.fakes import Reply, fake_api

MARKERS = {
    "SPRITES_TOKEN": "marker-sprites-91c2",
    "XANO_ACCESS_TOKEN": "marker-xano-4d7e",
    "ARCHASTRO_API_KEY": "marker-archastro-b803",
    "DECTHINGS_API_KEY": "marker-decthings-55fa",
    "COMPUTESDK_ACCESS_TOKEN": "marker-computesdk-token-0e19",
    "COMPUTESDK_API_KEY": "marker-computesdk-key-7a6b",
    "RUNTIMES_MCP_HTTP_TOKEN": "marker-http-token-c4d5",
}

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("execRun", {"command": "env; echo ---; cat /proc/self/environ | tr '\\0' '\\n'"}),
    ("execRun", {"command": "exit 3"}),
    ("listSessions", {"provider": "sprites", "sprite": "box"}),  # 401
    ("listSessions", {"provider": "sprites", "sprite": "gone"}),  # 404
    ("listSessions", {"provider": "xano", "project_id": "p"}),  # 500 with a body echoing headers
    ("invokeRoutine", {"provider": "archastro", "routine": "r", "message": "m"}),  # 409
    ("getLaunchers", {"provider": "decthings"}),  # HTML
    ("storeEvent", {"provider": "computesdk", "type": "t", "data": {}}),  # 401
    ("getEvents", {"provider": "computesdk", "sandbox_id": "s"}),  # timeout-free success
    ("storeEvent", {"type": "local.note", "data": {"k": "v"}}),
    ("stopSession", {"session_id": "ses_missing"}),
    ("getDocs", {"topic": "overview", "detail": "full"}),
]


@pytest.mark.filterwarnings("ignore:The logging capability is deprecated")
async def test_no_credential_appears_anywhere(tmp_path: Path) -> None:
    seen: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, LoggingMessageNotification):
            seen.append(str(message.params.data))

    with fake_api() as api:
        api.routes[("GET", "/sprites/v1/sprites/box/exec")] = Reply(401, {"error": "unauthorized", "message": "no"})
        api.routes[("GET", "/xano/project/p/run/session")] = Reply(
            500, "internal error", {"Content-Type": "text/plain"}
        )
        api.routes[("POST", "/archastro/api/v1/agent_routines/r/invoke")] = Reply(
            409, {"error": {"code": "conflict", "message": "duplicate"}}
        )
        api.routes[("POST", "/decthings/PersistentLauncher/getPersistentLaunchers")] = Reply(
            200, "<html>oops</html>", {"Content-Type": "text/html"}
        )
        api.routes[("POST", "/computesdk/events")] = Reply(401, {"success": False, "error": "bad token"})
        api.routes[("GET", "/computesdk/events/s")] = Reply(body={"success": True, "data": {"events": []}})
        env = {
            **MARKERS,
            "RUNTIMES_MCP_LOG_LEVEL": "DEBUG",
            "RUNTIMES_MCP_TOOLSETS": "all",
            "RUNTIMES_MCP_RETRIES": "1",
            "SPRITES_BASE_URL": api.url("/sprites"),
            "XANO_RUN_BASE_URL": api.url("/xano"),
            "ARCHASTRO_BASE_URL": api.url("/archastro"),
            "DECTHINGS_BASE_URL": api.url("/decthings"),
            "COMPUTESDK_GATEWAY_URL": api.url("/computesdk"),
        }
        stderr_file = tmp_path / "stderr.log"
        with stderr_file.open("w") as errlog:
            async with Client(
                stdio_client(stdio_params(env=env), errlog=errlog), mode="legacy", message_handler=on_message
            ) as client:
                await client.set_logging_level("debug")
                for tool, args in CALLS:
                    result = await client.call_tool(tool, args)
                    seen.extend(getattr(block, "text", "") for block in result.content)
                    seen.append(repr(result.structured_content))
                child_env = next(s for s in seen if "PATH=" in s)
        seen.append(stderr_file.read_text())
        assert len(api.requests) >= 7  # the remote calls really happened
    assert "---" in child_env and "HOME=" in child_env
    everything = "\n".join(seen)
    server_log = seen[-1]
    assert "HTTP Request: GET" in server_log  # stderr really logged the remote calls (INFO and below)
    for name, marker in MARKERS.items():
        assert marker not in everything, f"{name} leaked"
