"""The MCP server: tools from the catalog, docs, resources, subscriptions, and the lifespan that owns state."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus

from docs_topics import offered
from docs_topics.model import Availability
from providers.registry import PROVIDERS
from server.callers import serve_as_caller
from server.config import Settings
from server.docs_tool import ServerFacts, docs_tool, register_docs_resource
from server.resources import register_resources
from server.state import AppState, available_capabilities, configured_providers
from server.tasks import TasksExtension, task_listen
from tools import build, sdk
from tools.catalog import ALL
from tools.tasks import CallTaskRecords, LocalRunTasks

INSTRUCTIONS = (
    "Run code and manage runtimes. Every tool takes `provider` (default: local, this machine). "
    "Call getDocs for guides per provider and workflow."
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("runtimes-mcp")
    except PackageNotFoundError:
        return "0.0.0+source"


def freeze_startup_objects() -> None:
    """End of start-up for the garbage collector (the CLI disables it while importing and building).

    Start-up builds ~90k objects (modules, models, schemas) that live as long as the process; a full
    collection over them takes 30-50 ms. Collecting while importing finds nothing to free (it ran once,
    mid-import, costing ~30 ms of each cold start), and frozen they are out of every later collection's way."""
    gc.freeze()
    gc.enable()


def create_server(
    settings: Settings, state: AppState | None = None, *, local_code: bool = True, services: bool = True
) -> MCPServer[AppState]:
    """Build the server. With `state`, it is shared (HTTP: one state for all sessions); else the
    server opens its own for the connection's lifetime (stdio, in-process clients). Without
    `local_code`, tools that would run commands on this machine are not offered for `local`; without
    `services`, the local launchers are not started (one-shot commands)."""
    bus = InMemorySubscriptionBus()
    facts = ServerFacts()

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        opened: AbstractAsyncContextManager[AppState] = (
            nullcontext(state) if state is not None else AppState.open(settings, services=services)
        )
        async with opened as own:
            own.watchers.add_bus(bus)
            facts.state = own
            yield own

    # Validation messages reach agents; pydantic's documentation links only cost them tokens.
    os.environ.setdefault("PYDANTIC_ERRORS_INCLUDE_URL", "0")
    offers = build.plan_offers(
        ALL,
        available=available_capabilities(settings),
        toolsets=settings.toolsets,
        read_only=settings.read_only,
        default_provider=settings.default_provider,
        local_code=local_code,
    )
    tasks = tasks_extension(offers)
    topics = offered(configured_providers(settings))
    docs_availability = availability(settings, offers)
    server: MCPServer[AppState] = MCPServer(
        "runtimes-mcp",
        title="Runtimes MCP",
        version=version(),
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        subscriptions=bus,
        log_level=settings.log_level,
        tools=[*build.tools_for(offers), docs_tool(docs_availability, topics)],
        extensions=[tasks],
        middleware=[serve_as_caller, *tasks.middleware(), explain_unknown_tools(settings, offers)],
    )
    for topic in topics.values():
        register_docs_resource(server, topic, facts, docs_availability)
    sdk.wrap_request_handler(server, "subscriptions/listen", lambda plain: task_listen(tasks, bus, plain))
    register_resources(server, settings)
    return server


def why_not_offered(name: str, settings: Settings, offered: list[str]) -> str:
    """Why this server has no tool `name` (it offers `offered`), and what to do about it."""
    spec = next((s for s in ALL if s.name == name), None)
    if spec is None:
        return f"Unknown tool {name}. Next: call one of {', '.join(offered)}."
    if spec.toolset is not None and spec.toolset not in settings.toolsets:
        return (
            f"Unknown tool {name}: it is in the `{spec.toolset}` toolset, which this server does not offer. "
            f"Next: start the server with RUNTIMES_MCP_TOOLSETS={spec.toolset} (or all)."
        )
    if settings.read_only and not spec.read_only:
        return (
            f"Unknown tool {name}: it changes things, and this server is read-only. Next: unset RUNTIMES_MCP_READ_ONLY."
        )
    available = configured_providers(settings)
    if spec.runs_code and any(PROVIDERS[p].runs_commands for p in spec.providers if p in available):  # build's rule
        return (
            f"Unknown tool {name}: this HTTP server runs without authentication (--insecure-no-auth), so it runs "
            "no command on this machine. Next: serve with a token or sign-in (drop --insecure-no-auth), or add "
            "--unauthenticated-local-exec if something in front of it authenticates every caller."
        )
    needs = " or ".join(sorted({PROVIDERS[p].credential_env for p in spec.providers if p != "local"}))
    return f"Unknown tool {name}: no provider that serves it is configured here. Next: set {needs} and restart."


def availability(settings: Settings, offers: list[build.Offer]) -> Availability:
    """For the docs: None when this server offers `tool` for `provider`, else what would offer it."""
    offered = {(o.spec.name, p) for o in offers for p in o.providers}
    specs = {spec.name: spec for spec in ALL}
    available_providers = configured_providers(settings)

    def missing(tool: str, provider: str) -> str | None:
        if (tool, provider) in offered or tool not in specs:
            return None
        spec = specs[tool]  # short: a topic may name many tools this server does not offer
        if spec.toolset is not None and spec.toolset not in settings.toolsets:
            return f"enable the `{spec.toolset}` toolset, RUNTIMES_MCP_TOOLSETS={spec.toolset}"
        if settings.read_only and not spec.read_only:
            return "this server is read-only (RUNTIMES_MCP_READ_ONLY)"
        if provider in PROVIDERS and provider != "local" and provider not in available_providers:
            return f"set {PROVIDERS[provider].credential_env}"
        return "this server does not run commands on this machine"

    return missing


def explain_unknown_tools(settings: Settings, offers: list[build.Offer]) -> Any:
    """Server middleware: the error a call of a tool this server does not offer gets says why (a toolset that is
    off, read-only mode, a provider without credentials) and what to do, instead of the bare name."""
    offered = [o.spec.name for o in offers] + ["getDocs"]

    async def middleware(ctx: Any, call_next: Any) -> Any:
        result = await call_next(ctx)
        name = ctx.params.get("name") if ctx.method == "tools/call" and isinstance(ctx.params, Mapping) else None
        if not isinstance(name, str) or name in offered or not isinstance(result, dict) or not result.get("isError"):
            return result
        return {**result, "content": [{"type": "text", "text": why_not_offered(name, settings, offered)}]}

    return middleware


def tasks_extension(offers: list[build.Offer]) -> TasksExtension:
    """The Tasks extension for the offered tools that may run long; on local they become durable tasks."""
    specs = {o.spec.name: o.spec for o in offers if o.spec.task}
    return TasksExtension(
        {name: "optional" for name in specs},
        durable=LocalRunTasks(specs, {o.spec.name: o.default for o in offers}),
        shared=lambda state: CallTaskRecords(state.task_storage.call_tasks),  # every worker and replica knows them
    )
