"""Every part of the `mcp` SDK this server relies on that the SDK does not document: private attributes, and
behaviour (how it reads a function's signature, a line of stdio, an HTTP body it cannot parse), in one place.

MCPServer 2.3 has no public hook for these. pyproject.toml pins the SDK's minor version, and
tests/test_sdk_internals.py fails with a message naming the part when an upgrade moves one.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.message import SessionMessage
from mcp_types.methods import serialize_server_result
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.authentication import AuthCredentials
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Scope


def lowlevel(server: MCPServer[Any]) -> Server[Any]:
    """The low-level server under an MCPServer (private attribute `_lowlevel_server`)."""
    inner: Server[Any] = server._lowlevel_server
    return inner


def add_request_handler(
    server: MCPServer[Any], method: str, params_type: type[BaseModel], handler: Callable[..., Awaitable[Any]]
) -> None:
    """Serve `method` with `handler(ctx, params)`, replacing the SDK's own handler if it has one."""
    lowlevel(server).add_request_handler(method, params_type, handler)


def wrap_request_handler(
    server: MCPServer[Any], method: str, wrap: Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]
) -> None:
    """Serve `method` with `wrap(the SDK's own handler)`, its params validated as the SDK's are."""
    entry = lowlevel(server).get_request_handler(method)
    if entry is None:
        raise RuntimeError(f"the SDK no longer serves {method}: update tools/sdk.py (tests/test_sdk_internals.py)")
    lowlevel(server).add_request_handler(method, entry.params_type, wrap(entry.handler))


def wire_result(result: Any) -> dict[str, Any] | None:
    """A request's result as a server middleware sees it after `call_next`. MCPServer 2.3 hands middleware a spec
    method's result already shaped for the connection's protocol version (a dict, sieved by that version's schema),
    and sends what the middleware returns as it is, unsieved: so only a middleware can add what the version's
    schema would drop from a handler's result (a 2025-11-25 CreateTaskResult in answer to tools/call). None when
    the result is not such a dict (another middleware answered otherwise)."""
    return result if isinstance(result, dict) else None


def shaped_for(version: str, method: str, result: dict[str, Any]) -> dict[str, Any]:
    """`result` as the SDK would send it in answer to `method` on a `version` connection (validated, and what that
    version's schema does not know dropped): `mcp_types.methods.serialize_server_result`, what the runner applies to
    a handler's result."""
    shaped: dict[str, Any] = serialize_server_result(method, version, result)
    return shaped


def unmodelled_field(model: BaseModel, name: str) -> Any:
    """A field the SDK's model does not declare (SubscriptionFilter keeps such fields, e.g. SEP-2663's taskIds)."""
    return (model.model_extra or {}).get(name)


async def run_on_streams(server: MCPServer[Any], read_stream: Any, write_stream: Any) -> None:
    """Serve one connection on the given streams (what run_stdio_async does on the process's stdio)."""
    inner = lowlevel(server)
    await inner.run(read_stream, write_stream, inner.create_initialization_options())


def connection_of(session: Any) -> object:
    """The connection behind a request's session. mcp 2.3 builds a ServerSession per request; the connection
    (private attribute `_connection`) is what a subscription belongs to. Notifications sent through any of its
    sessions without a request id go out on the connection's standalone channel."""
    connection: object = session._connection
    return connection


def on_connection_end(session: Any, callback: Callable[[], None]) -> None:
    """Run `callback` when the connection behind a request's session ends: the SDK unwinds the connection's
    `exit_stack` then (a stateful HTTP session deleted or expired, a stdio client gone, a stateless request done)."""
    session._connection.exit_stack.callback(callback)


def with_signature(fn: Callable[..., Any], parameters: list[inspect.Parameter], returns: Any) -> None:
    """Give `fn` (which takes **kwargs) the signature the SDK builds a tool's or resource's schema from: the SDK
    reads it with inspect.signature, which honours `__signature__`, and its types from `__annotations__`."""
    fn.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}


def parse_line(line: str) -> SessionMessage | Exception:
    """A line of stdio as the SDK's stdio transport reads it: the message, or the error it hands the session in
    its place (a pydantic ValidationError that keeps the line as its input; see unparsed_line)."""
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValidationError as exc:
        return exc


def unparsed_line(error: Exception) -> str | None:
    """The line a stdio transport could not parse, from the error it handed the session in its place."""
    if not isinstance(error, ValidationError):
        return None
    given = error.errors(include_url=False)[0].get("input")
    return given if isinstance(given, str) else None


def is_unreadable_body_answer(status: int, body: bytes) -> bool:
    """The SDK's HTTP transport answers a body it cannot parse as JSON with 400 and a JSON-RPC parse error
    (-32700) with id null: this is such an answer."""
    try:
        answer = json.loads(body) if status == 400 else None
    except ValueError:
        return False
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), dict):
        return False
    return answer.get("id") is None and answer["error"].get("code") == mcp_types.PARSE_ERROR


def generated_output_schema(tool: Tool) -> dict[str, Any] | None:
    """The output schema the SDK generated (`fn_metadata.output_schema`; reading Tool.output_schema would cache
    it on the tool)."""
    return tool.fn_metadata.output_schema


def publish_output_schema(tool: Tool, schema: dict[str, Any]) -> None:
    """Publish `schema` as the tool's output schema (results are still validated against the output model).
    Tool.output_schema is a cached property over `fn_metadata.output_schema`: set the source, drop the cache."""
    tool.fn_metadata.output_schema = schema
    tool.__dict__.pop("output_schema", None)


def invalid_arguments(error: ValidationError) -> str:
    """Pydantic's argument errors as one line an agent can act on: which argument, what it needs, what came."""
    problems = []
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"]) or "arguments"
        if item["type"] == "missing":
            problems.append(f"{name}: required, and missing")
            continue
        given = item.get("input")
        shown = repr(given) if not isinstance(given, dict | list) else type(given).__name__
        problems.append(f"{name}: {item['msg'].lower()} (got {shown[:60]})")
    return (
        "invalid arguments: "
        + "; ".join(problems)
        + ". Next: send them with the types and bounds the tool's schema gives."
    )


class StrictTool(Tool):
    """A Tool that names the arguments it does not know, instead of silently dropping them (pydantic's
    default), and lists the ones it takes. Overrides Tool.run(arguments, context, convert_result).
    `explain_unknown`, given the arguments, may say better why some are unknown (they belong to a provider
    this server has not configured, say)."""

    explain_unknown: Callable[[dict[str, Any]], str | None] | None = Field(default=None, exclude=True)
    unlisted: frozenset[str] = Field(default=frozenset(), exclude=True)  # taken, though not in the schema

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        known = self.parameters.get("properties", {})
        unknown = sorted(set(arguments) - set(known) - self.unlisted)
        explained = self.explain_unknown(arguments) if unknown and self.explain_unknown else None
        if explained:
            raise ToolError(f"Error executing tool {self.name}: {explained}")
        if unknown:
            raise ToolError(
                f"Error executing tool {self.name}: unknown argument(s) {', '.join(unknown)}. "
                f"Next: call again with only what {self.name} takes: {', '.join(known) or 'no arguments'}."
            )
        try:
            return await super().run(arguments, context, convert_result)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError) and cause.title.endswith("Arguments"):
                raise ToolError(f"Error executing tool {self.name}: {invalid_arguments(cause)}") from None
            raise


# --- signing in over HTTP (server/sign_in.py) ------------------------------------------------------------
def sign_in(scope: Scope, token: AccessToken) -> None:
    """Mark an HTTP request as made with `token`, as the SDK's own authentication middleware does (`user`, `auth`
    in the ASGI scope): its transport then binds a stateful MCP session to the credential that opened it (another
    credential's request for that session gets 404), and `get_access_token()` finds it."""
    scope["user"] = AuthenticatedUser(token)
    scope["auth"] = AuthCredentials(list(token.scopes))


def with_access_token_context(app: ASGIApp) -> ASGIApp:
    """`app` with the SDK's AuthContextMiddleware: `get_access_token()` works inside it."""
    return AuthContextMiddleware(app)


def access_token_of(ctx: Any) -> AccessToken | None:
    """The access token an HTTP request was made with (see sign_in), from a request's context: the SDK hands a
    handler or middleware the transport's request (`ctx.request`, a Starlette Request; None on stdio)."""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    return user.access_token if isinstance(user, AuthenticatedUser) else None


def protected_resource_routes(resource: str, issuer: str, scopes: list[str], name: str) -> list[BaseRoute]:
    """The SDK's RFC 9728 protected-resource metadata route for `resource` (at its well-known URL, the resource's
    path inserted), naming `issuer` as its authorization server."""
    routes = create_protected_resource_routes(
        resource_url=_url(resource),
        authorization_servers=[_url(issuer)],
        scopes_supported=scopes,
        resource_name=name,
    )
    return list(routes)


def resource_metadata_url(resource: str) -> str:
    """Where protected_resource_routes serves the metadata of `resource` (RFC 9728 section 3.1)."""
    return str(build_resource_metadata_url(_url(resource)))


# An issuer or resource is compared as a string (RFC 8414, RFC 9728): "https://idp.example" must not become
# "https://idp.example/", as a plain AnyHttpUrl makes it. (The SDK's metadata models keep empty paths too.)
_URL = TypeAdapter(AnyHttpUrl, config=ConfigDict(url_preserve_empty_path=True))


def _url(value: str) -> AnyHttpUrl:
    return _URL.validate_python(value)
