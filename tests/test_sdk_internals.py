"""What tools/sdk.py relies on of the `mcp` SDK is still there: its privates and the behaviour it does not document.
When an `mcp` upgrade moves one, the failing test names the part and what to update."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import pytest
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from pydantic import Field, ValidationError

from tests.conftest import connect, structured
from tools import sdk

BASE = "http://127.0.0.1:8000"  # a Host the SDK's transport takes


def test_mcpserver_still_wraps_a_lowlevel_server_with_handlers_and_run() -> None:
    server: MCPServer[Any] = MCPServer("probe")
    inner = getattr(server, "_lowlevel_server", None)
    assert inner is not None, "MCPServer no longer has _lowlevel_server: update tools/sdk.lowlevel"
    for name in ("add_request_handler", "run", "create_initialization_options"):
        assert callable(getattr(inner, name, None)), f"the low-level server lost {name}(): update tools/sdk.py"
    params = list(inspect.signature(inner.add_request_handler).parameters)
    assert params[:3] == ["method", "params_type", "handler"], f"add_request_handler{params}: update tools/sdk.py"


def test_tool_run_and_its_output_schema_are_as_strict_tool_expects() -> None:
    params = list(inspect.signature(Tool.run).parameters)
    assert params == ["self", "arguments", "context", "convert_result"], f"Tool.run{params}: update StrictTool"

    async def probe(ctx: Context[Any, Any]) -> dict[str, int]:
        return {}

    tool = Tool.from_function(probe, structured_output=True)
    assert sdk.generated_output_schema(tool) is not None, "fn_metadata.output_schema is gone: update tools/sdk.py"
    sdk.publish_output_schema(tool, {"type": "object", "title": "published"})
    assert tool.output_schema == {"type": "object", "title": "published"}, "Tool.output_schema no longer follows"


async def test_a_request_session_still_leads_to_its_connection() -> None:
    seen: list[object] = []
    server: MCPServer[Any] = MCPServer("probe")

    @server.tool()
    async def who(ctx: Context[Any, Any]) -> dict[str, bool]:
        if not hasattr(ctx.session, "_connection"):
            return {"has": False}
        seen.append(sdk.connection_of(ctx.session))
        return {"has": True, "distinct": sdk.connection_of(ctx.session) is not ctx.session}

    from mcp import Client

    async with Client(server, mode="legacy") as client:  # 2025-11-25: one connection for the session
        first = structured(await client.call_tool("who", {}))
        await client.call_tool("who", {})
    assert first["has"], "ServerSession has no _connection any more: update tools/sdk.connection_of"
    assert first["distinct"] and seen[0] is seen[1], (
        "two requests of one connection no longer share their _connection: update tools/sdk.connection_of "
        "(resource subscriptions are kept per connection)"
    )


async def test_a_connections_end_is_told_over_stdio_like_streams_and_http_stateful_or_not() -> None:
    """server/watchers.py forgets a connection's subscriptions (and the sessions they hold) through
    sdk.on_connection_end: it must run when a session's connection ends, and not before."""
    import httpx
    from mcp import Client

    ended: list[str] = []
    server: MCPServer[Any] = MCPServer("probe")

    @server.tool()
    def mark(name: str, ctx: Context[Any, Any]) -> str:
        sdk.on_connection_end(ctx.session, lambda: ended.append(name))
        return name

    async with Client(server, mode="legacy") as client:
        await client.call_tool("mark", {"name": "streams"})
        assert ended == [], "on_connection_end ran before its connection ended: update tools/sdk.on_connection_end"
    assert ended == ["streams"], "the connection's exit_stack is not unwound at its end: update on_connection_end"

    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    for name, stateless in (("stateful", False), ("stateless", True)):
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "mark", "arguments": {"name": name}},
        }
        app = server.streamable_http_app(stateless_http=stateless, json_response=True)
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            opened = await http.post("/mcp", json=initialize, headers=headers)
            session = {**headers, "mcp-protocol-version": "2025-06-18"}
            if not stateless:
                session["mcp-session-id"] = opened.headers["mcp-session-id"]
                await http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            assert (await http.post("/mcp", json=call, headers=session)).status_code == 200
            if not stateless:
                assert name not in ended, "on_connection_end ran while its HTTP session lives: update it"
                await http.delete("/mcp", headers=session)  # the session ends
            with anyio.fail_after(5):
                while name not in ended:
                    await anyio.sleep(0.01)


async def test_the_product_registers_its_handlers_through_the_adapter() -> None:
    async with connect(mode="legacy") as client:
        await client.subscribe_resource("events://local")
        await client.call_tool("storeEvent", {"type": "t", "data": {}, "sandbox_id": "box-7"})
        unknown = await client.complete(
            {"type": "ref/resource", "uri": "sessions://{session_id}"}, {"name": "session_id", "value": ""}
        )
        known = await client.complete(
            {"type": "ref/resource", "uri": "events://{sandbox_id}"}, {"name": "sandbox_id", "value": "box"}
        )
    assert unknown.completion.values == [] and known.completion.values == ["box-7"]


def test_a_signature_given_to_a_function_is_what_the_sdk_builds_a_tool_from() -> None:
    async def handler(**kwargs: Any) -> Any:
        return kwargs

    number = Annotated[int, Field(description="a number")]
    parameters = [
        inspect.Parameter("n", inspect.Parameter.KEYWORD_ONLY, annotation=number),
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context),
    ]
    sdk.with_signature(handler, parameters, dict[str, int])
    tool = Tool.from_function(handler, name="probe", structured_output=True)
    assert tool.parameters["properties"] == {"n": {"description": "a number", "title": "N", "type": "integer"}}, (
        f"the SDK no longer builds a tool's schema from __signature__ ({tool.parameters}): update "
        "tools/sdk.with_signature (tools/build.py makes every tool with it)"
    )
    assert tool.context_kwarg == "ctx", "the SDK no longer finds Context in __annotations__: update with_signature"


async def test_strict_tool_still_tells_the_sdks_argument_errors_apart() -> None:
    async def probe(n: int) -> dict[str, int]:
        return {"n": n}

    tool = sdk.StrictTool.from_function(probe, structured_output=True)
    with pytest.raises(ToolError) as refused:
        await tool.run({"n": "x"}, context=None)
    assert "invalid arguments: n:" in str(refused.value), (
        f"{refused.value}: the SDK's argument error no longer comes as a ToolError caused by a ValidationError of "
        "a model named ...Arguments: update tools/sdk.StrictTool.run"
    )


async def test_the_sdks_stdio_transport_reads_a_line_as_parse_line_says() -> None:
    """server/stdio_pipes.py reads pipes itself with sdk.parse_line, and answers what the SDK's own stdio transport
    (used for a terminal or a file) hands the session for a line it cannot parse, with sdk.unparsed_line."""
    from mcp.server.stdio import stdio_server

    lines = ['{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n', "{garbage\n", '{"foo": 1}\n', '"\\ud800"\n']

    class Lines:
        def __aiter__(self) -> AsyncIterator[str]:
            return self.lines()

        async def lines(self) -> AsyncIterator[str]:
            for line in lines:
                yield line

    async with stdio_server(stdin=Lines(), stdout=Lines()) as (read, write):  # type: ignore[arg-type]
        theirs = [await read.receive() for _ in lines]
        await write.aclose()  # the transport's writer ends with it
    for line, their in zip(lines, theirs, strict=True):
        ours = sdk.parse_line(line)
        if isinstance(ours, ValidationError):
            read = [(e["type"], e.get("input")) for e in ours.errors()]
            assert (
                isinstance(their, ValidationError) and [(e["type"], e.get("input")) for e in their.errors()] == read
            ), f"the SDK's stdio transport hands {their!r} for {line!r}: update tools/sdk.parse_line and unparsed_line"
            if read[0][0] == "json_invalid":  # not JSON, or not valid text: AnsweringUnparsable reads the line
                assert sdk.unparsed_line(their) == line, f"update tools/sdk.unparsed_line for {their!r}"
        else:
            assert their.message == ours.message, f"{line!r}: update tools/sdk.parse_line"


async def test_the_sdks_http_transport_answers_an_unreadable_body_as_server_unreadable_expects() -> None:
    import httpx

    app = MCPServer("probe").streamable_http_app(stateless_http=True, json_response=True)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            answer = await client.post("/mcp", content=b'{"jsonrpc": "2.0", "id": 7, "method"', headers=headers)
    assert sdk.is_unreadable_body_answer(answer.status_code, answer.content), (
        f"the SDK answers an unreadable body with {answer.status_code} {answer.text}: update "
        "tools/sdk.is_unreadable_body_answer (server/unreadable.py mends or answers with the request's id)"
    )


async def test_subscriptions_listen_is_the_sdks_to_wrap_and_keeps_task_ids() -> None:
    from mcp.types import SubscriptionsListenRequestParams

    server: MCPServer[Any] = MCPServer("probe")
    wrapped: list[object] = []
    sdk.wrap_request_handler(server, "subscriptions/listen", lambda plain: wrapped.append(plain) or plain)
    assert callable(wrapped[0]), "update tools/sdk.wrap_request_handler (server/tasks.task_listen extends it)"
    params = SubscriptionsListenRequestParams.model_validate({"notifications": {"taskIds": ["task_1"]}})
    assert sdk.unmodelled_field(params.notifications, "taskIds") == ["task_1"], (
        "SubscriptionFilter drops fields it does not model: update tools/sdk.unmodelled_field "
        "(server/tasks.task_listen)"
    )


async def test_a_middleware_sees_the_wire_result_and_what_it_returns_is_sent_unsieved() -> None:
    """server/tasks_2025.py answers a 2025-11-25 `tools/call` made as a task with a CreateTaskResult, which the SDK's
    schema for that answer (CallToolResult) would drop: only a server middleware can send it, and it adds the
    `tasks` capability and `execution.taskSupport` the same way. Its interceptor reads the call's `task`."""
    from mcp.server.context import CallNext, ServerRequestContext
    from mcp.server.extension import Extension
    from mcp.types import CallToolRequestParams

    from tests.test_tasks_2025 import raw

    seen: dict[str, Any] = {}

    class Probe(Extension):
        identifier = "com.example/probe"

        async def intercept_tool_call(
            self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
        ) -> Any:
            seen["task"], seen["version"] = params.task, ctx.protocol_version
            return {"content": [], "resultType": "complete"}

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
        answer = sdk.wire_result(await call_next(ctx))
        seen.setdefault("wire", {})[ctx.method] = answer
        if ctx.method == "tools/call" and answer is not None:
            return {"task": {"taskId": "t1"}}
        if ctx.method == "tools/list" and answer is not None:
            return {**answer, "tools": [{**t, "execution": {"taskSupport": "optional"}} for t in answer["tools"]]}
        return answer

    def build(_: Any) -> MCPServer[Any]:
        server: MCPServer[Any] = MCPServer("probe", extensions=[Probe()], middleware=[middleware])

        @server.tool()
        def echo(text: str) -> str:
            return text

        return server

    async with raw(build=build) as client:
        listed = await client.result("tools/list")
        called = await client.result("tools/call", {"name": "echo", "arguments": {"text": "x"}, "task": {"ttl": 5}})
    wire = seen["wire"]
    assert isinstance(wire.get("tools/list"), dict) and isinstance(wire.get("tools/call"), dict), (
        f"a middleware no longer gets a spec method's result as its wire dict ({wire}): update tools/sdk.wire_result "
        "(server/tasks_2025.middleware)"
    )
    assert "resultType" not in wire["tools/call"], (
        "the SDK no longer sieves handler results: simplify server/tasks_2025"
    )
    assert listed["tools"][0]["execution"] == {"taskSupport": "optional"} and called == {"task": {"taskId": "t1"}}, (
        "what a middleware returns is no longer sent as it is: update tools/sdk.wire_result (the 2025-11-25 "
        "CreateTaskResult, `tasks` capability and execution.taskSupport of server/tasks_2025.py ride on it)"
    )
    assert seen["version"] == "2025-11-25" and seen["task"] is not None and seen["task"].ttl == 5, (
        f"the tools/call interceptor no longer sees the 2025-11-25 `task` ({seen}): update server/tasks.py"
    )
    shaped = sdk.shaped_for("2025-11-25", "tools/call", {"content": [], "resultType": "complete", "isError": True})
    assert shaped == {"content": [], "isError": True}, f"update tools/sdk.shaped_for: {shaped}"


async def test_a_signed_in_request_carries_its_token_to_handlers_and_binds_a_stateful_session() -> None:
    """server/sign_in.py marks a request as the SDK's authentication middleware would (sdk.sign_in); the SDK then
    hands handlers the request (sdk.access_token_of) and refuses a session to any other credential (404)."""
    import httpx
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.provider import AccessToken
    from starlette.types import Receive, Scope, Send

    seen: list[tuple[str | None, str | None]] = []

    async def who(ctx: Any, call_next: Any) -> Any:
        token, current = sdk.access_token_of(ctx), get_access_token()
        seen.append((token.client_id if token else None, current.client_id if current else None))
        return await call_next(ctx)

    server: MCPServer[Any] = MCPServer("probe", middleware=[who])
    app = server.streamable_http_app(stateless_http=False, json_response=True)

    async def signing_in(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            name = dict(scope["headers"]).get(b"x-who", b"").decode()
            sdk.sign_in(scope, AccessToken(token="", client_id=name, scopes=["s"], subject=name))
        await sdk.with_access_token_context(app)(scope, receive, send)

    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=signing_in)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            opened = await client.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
                headers={**headers, "x-who": "alice"},
            )
            session = {
                **headers,
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-06-18",
            }
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            mine = await client.post("/mcp", json=ping, headers={**session, "x-who": "alice"})
            theirs = await client.post("/mcp", json=ping, headers={**session, "x-who": "bob"})
    assert seen and seen[0] == ("alice", "alice"), f"{seen}: update tools/sdk.access_token_of or sdk.sign_in"
    assert mine.status_code == 200
    assert theirs.status_code == 404, (
        "the SDK no longer binds a stateful session to the credential that opened it (scope['user']): update "
        "tools/sdk.sign_in, and say in docs/team-sign-in.md that sessions are not bound"
    )


async def test_the_protected_resource_metadata_route_is_where_its_url_says() -> None:
    import httpx
    from starlette.applications import Starlette

    routes = sdk.protected_resource_routes("http://127.0.0.1:8000/mcp", "https://idp.example", ["a", "b"], "probe")
    url = sdk.resource_metadata_url("http://127.0.0.1:8000/mcp")
    assert url == "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp", "update tools/sdk.py"
    transport = httpx.ASGITransport(app=Starlette(routes=routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        metadata = (await client.get(url)).json()
    assert metadata["resource"] == "http://127.0.0.1:8000/mcp"
    assert metadata["authorization_servers"] == ["https://idp.example"], (
        f"{metadata}: the issuer must stay exactly as configured (no slash added): update tools/sdk._url"
    )
    assert metadata["scopes_supported"] == ["a", "b"] and metadata["resource_name"] == "probe"
