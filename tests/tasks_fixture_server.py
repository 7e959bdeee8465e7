"""Test-only MCP server: the conformance suite's Tasks fixture tools on the product's Tasks extension
(and its 2025-11-25 form: tests/test_tasks_2025.py runs it in-process).

`python -m tests.tasks_fixture_server PORT` serves Streamable HTTP at http://127.0.0.1:PORT/mcp. The tools
are the ones the `tasks-*` scenarios of @modelcontextprotocol/conformance call; the Tasks code (server/tasks.py
and the routing-header check) is exactly the product's.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskGroup
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import InputRequiredResult
from mcp_types import INTERNAL_ERROR

from server import tasks_2025
from server.tasks import TasksExtension, task_routing_headers
from tools.tasks import TASK_CALL

SUPPORT: dict[str, Any] = {
    "slow_compute": "optional",
    "failing_job": "required",
    "protocol_error_job": "optional",
    "confirm_delete": "optional",
    "multi_input": "optional",
    "test_tool_with_task": "required",
}


@dataclass
class Background:
    background: TaskGroup


def elicitation(message: str, field: str) -> dict[str, Any]:
    return {
        "method": "elicitation/create",
        "params": {
            "mode": "form",
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": {field: {"type": "boolean" if field == "confirm" else "string"}},
            },
        },
    }


async def ask(request: dict[str, Any]) -> Any:
    call = TASK_CALL.get()
    if call is None or call.ask is None:
        raise ToolError("this fixture needs to run as a task (declare io.modelcontextprotocol/tasks)")
    return await call.ask(request)


def build(task_group: TaskGroup) -> MCPServer[Background]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[Background]) -> AsyncIterator[Background]:
        yield Background(task_group)

    extension = TasksExtension(SUPPORT)
    server: MCPServer[Background] = MCPServer(
        "tasks-fixtures",
        lifespan=lifespan,
        extensions=[extension],
        middleware=[tasks_2025.middleware(extension.support)],  # the 2025-11-25 form too (tests/test_tasks_2025.py)
    )

    @server.tool()
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    @server.tool()
    async def slow_compute(seconds: float, label: str = "") -> str:
        await anyio.sleep(seconds)
        return f"computed {label} in {seconds:g}s"

    @server.tool()
    async def failing_job() -> str:
        await anyio.sleep(1)
        raise ToolError("the job failed, as this fixture always does")

    @server.tool()
    async def protocol_error_job() -> str:
        await anyio.sleep(0.2)
        raise MCPError(code=INTERNAL_ERROR, message="the job broke at the protocol level")

    @server.tool()
    async def confirm_delete(filename: str) -> str:
        answer = await ask(elicitation(f"Delete {filename}?", "confirm"))
        confirmed = answer.get("action") == "accept" and (answer.get("content") or {}).get("confirm")
        return f"deleted {filename}" if confirmed else f"kept {filename}"

    @server.tool()
    async def multi_input() -> str:
        answers: list[Any] = []

        async def one(field: str) -> None:
            answers.append(await ask(elicitation(f"Give {field}", field)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "name")
            tg.start_soon(one, "confirm")
        return f"got {len(answers)} answers"

    @server.tool()
    async def test_tool_with_task(ctx: Context[Background]) -> Any:
        responses = ctx.input_responses
        if not responses:
            return InputRequiredResult(input_requests={"user_name": elicitation("Your name?", "name")})  # type: ignore[dict-item]
        answer = next(iter(responses.values()))
        name = (getattr(answer, "content", None) or {}).get("name", "stranger")
        await anyio.sleep(0.3)
        return f"Hello, {name}!"

    return server


async def serve(port: int) -> None:
    async with anyio.create_task_group() as tg:
        server = build(tg)
        app = server.streamable_http_app(
            streamable_http_path="/mcp",
            host="127.0.0.1",
            transport_security=TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*"],
            ),
        )
        config = uvicorn.Config(task_routing_headers(app, 1 << 20), host="127.0.0.1", port=port, log_level="warning")
        await uvicorn.Server(config).serve()
        tg.cancel_scope.cancel()


if __name__ == "__main__":
    anyio.run(serve, int(sys.argv[1]))
