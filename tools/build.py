"""Turns ToolSpecs into MCP tools: flat described arguments, per-provider checks, errors for agents."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, cast, get_args, get_origin

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field, ValidationError

from providers.answers import NonFinite, valid_input, valid_text
from providers.capabilities import Capability
from providers.errors import ProtocolError, ProviderError
from providers.registry import PROVIDERS
from tools.results import as_tool_result
from tools.schema import compact_schema, drop_provider, inline_single_use_defs
from tools.sdk import StrictTool, generated_output_schema, publish_output_schema, with_signature
from tools.spec import ToolSpec
from tools.tasks import LOCAL, TASK_CALL

logger = logging.getLogger(__name__)


class ProviderSource(Protocol):
    """What a tool needs from the server: a ready client for a provider name."""

    async def provider(self, name: str) -> Any: ...

    def call_slot(self, provider: str) -> AbstractAsyncContextManager[None]: ...


@dataclass(frozen=True)
class Offer:
    """A spec as this server offers it: the providers configured for it, and the default one."""

    spec: ToolSpec
    providers: tuple[str, ...]
    default: str


def plan_offers(
    specs: Iterable[ToolSpec],
    *,
    available: dict[str, set[Capability[Any, Any]]],
    toolsets: Iterable[str],
    read_only: bool,
    default_provider: str,
    local_code: bool = True,
) -> list[Offer]:
    """Which tools to register. `available` maps provider -> capabilities configured on this server."""
    enabled = set(toolsets)
    offers = []
    for spec in specs:
        if spec.toolset is not None and spec.toolset not in enabled:
            continue
        if read_only and not spec.read_only:
            continue
        providers = tuple(
            p
            for p in spec.providers
            if spec.capability in available.get(p, set())
            and (local_code or not PROVIDERS[p].runs_commands or not spec.runs_code)
        )
        if not providers:
            continue
        default = default_provider if default_provider in providers else providers[0]
        offers.append(Offer(spec, providers, default))
    return offers


def select_arguments(spec: ToolSpec, provider: str, given: dict[str, Any]) -> dict[str, Any]:
    """The arguments `provider` takes, checked: missing ones and ones it does not use are named."""
    required, optional = spec.takes(provider)
    present = {k: v for k, v in given.items() if v is not None}
    missing = sorted(required - present.keys())
    extra = sorted(present.keys() - required - optional)
    takes = ", ".join(n.rstrip("?") for n in spec.providers[provider]) or "no arguments"
    if missing:
        raise ToolError(
            f"{spec.name} with provider '{provider}' needs {', '.join(missing)}. "
            f"Next: call again with them (it takes: {takes})."
        )
    if extra:
        raise ToolError(
            f"{spec.name} with provider '{provider}' does not use {', '.join(extra)}. "
            f"Next: remove them, or choose the provider they belong to (it takes: {takes})."
        )
    return present


def valid_arguments(given: dict[str, Any]) -> dict[str, Any]:
    """The arguments with their text valid (a lone surrogate becomes U+FFFD); a NaN or infinite number is
    refused, naming where it is."""
    try:
        return {name: valid_input(value, name) for name, value in given.items()}
    except NonFinite as exc:
        raise ToolError(
            f"invalid arguments: {exc.where} is NaN or infinite, which JSON cannot carry. "
            f"Next: send {exc.where} as a finite number, or as a string if it is text."
        ) from None


def provider_problem(offer: Offer, provider: str) -> str | None:
    """Why this tool cannot be served by `provider` here, and what to pass instead (None: it can)."""
    if provider in offer.providers:
        return None
    name, offered = offer.spec.name, ", ".join(offer.providers)
    info = PROVIDERS.get(provider)
    if info is None:
        return f"unknown provider {provider!r}. Next: pass one of {offered}."
    if provider in offer.spec.providers:
        return (
            f"{provider}: not configured on this server. Next: set {info.credential_env} and restart the server, "
            f"or pass one of {offered}."
        )
    return f"provider {provider!r} does not support {name}. Next: pass one of {offered}."


def _parameters(offer: Offer) -> list[inspect.Parameter]:
    """The tool function's parameters: flat, described, and strict (JSON types as the schema says: "5" is not a
    number and "false" not a boolean)."""
    spec = offer.spec
    params = [
        inspect.Parameter(
            "provider",
            inspect.Parameter.KEYWORD_ONLY,
            default=offer.default,
            annotation=Annotated[
                str,
                Field(description="Which runtime serves the call.", json_schema_extra={"enum": list(offer.providers)}),
            ],
        )
    ]
    for arg in spec.args:
        users = [p for p in offer.providers if arg.name in {n.rstrip("?") for n in spec.providers[p]}]
        if not users:
            continue
        optional = not all(arg.name in spec.takes(p)[0] for p in offer.providers)
        description = arg.description
        if len(users) < len(offer.providers):
            description += f" ({', '.join(users)})"
        field = Field(description=description, strict=_scalar(arg.type))
        annotation: Any = Annotated[arg.type | None, field] if optional else Annotated[arg.type, field]
        default = None if optional else inspect.Parameter.empty
        params.append(
            inspect.Parameter(arg.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    return params


def _scalar(annotation: Any) -> bool | None:
    """True for number, boolean and string arguments: those are taken strictly (None leaves the default)."""
    base = get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation
    return True if base in (int, float, bool, str) else None


@functools.cache
def _accepts(client_type: type[object], capability: Capability[Any, Any], parameter: str) -> bool:
    """Does this client class's implementation of the capability take `parameter` (beyond the capability's own)?"""
    return parameter in inspect.signature(capability.bind(client_type)).parameters


def make_handler(offer: Offer) -> Any:
    spec = offer.spec

    async def handler(**kwargs: Any) -> Any:
        ctx: Context = kwargs.pop("ctx")
        provider = valid_text(kwargs.pop("provider"))
        if problem := provider_problem(offer, provider):
            raise ToolError(problem)
        arguments = select_arguments(spec, provider, valid_arguments(kwargs))
        source = cast(ProviderSource, ctx.request_context.lifespan_context)
        try:
            async with source.call_slot(provider):
                client = await source.provider(provider)
                method = spec.capability.bind(client)
                task = TASK_CALL.get()
                follow = spec.task_follow if task is not None and task.durable else None
                if follow is not None:
                    arguments.update(spec.task_start)  # start the run and answer; the task follows it
                elif task is None and spec.progress and _accepts(client.__class__, spec.capability, "progress"):
                    arguments["progress"] = ctx.report_progress  # tasks carry no progress notifications
                result = await method(**arguments)
            if task is not None and follow is not None and getattr(result, "session_id", None):
                capability, ref = follow
                task.started = (capability, getattr(result, ref), result.session_id)
            return as_tool_result(result)
        except (ProviderError, ToolError) as exc:
            raise ToolError(valid_text(str(exc))) from None
        except ValidationError as exc:
            if provider == LOCAL:
                raise _unexpected(spec.name, provider, exc) from None
            # A remote answer whose fields do not fit our result: the provider's doing, as a ProtocolError is.
            logger.warning("%s with provider %s: its answer does not fit %s", spec.name, provider, spec.output.__name__)
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or spec.output.__name__
            raise ToolError(str(ProtocolError(provider, f"its answer's {where} is not what it documents"))) from None
        except Exception as exc:
            raise _unexpected(spec.name, provider, exc) from None

    handler.__name__ = spec.name
    # the output schema comes from spec.output
    with_signature(handler, _parameters(offer), Annotated[CallToolResult, spec.output])
    return handler


def _unexpected(tool: str, provider: str, exc: Exception) -> ToolError:
    logger.error("%s with provider %s failed unexpectedly", tool, provider, exc_info=exc)
    return ToolError(
        f"{provider}: {tool} failed inside the server ({type(exc).__name__}), a bug in runtimes-mcp, "
        "not in your call. Next: do not retry the same call; report it with the server's log."
    )


def annotations_for(offer: Offer) -> ToolAnnotations:
    """Truthful hints, each stated only where it differs from the spec's default (readOnly false, destructive
    true, idempotent false): an absent hint means that default, and every byte of tools/list is paid for. A
    command that is run may delete what it can write, so it is never called non-destructive. openWorld is left
    at its default ("may" reach the outside), which is true of every tool a remote provider or a run serves,
    and of the rest not worth its bytes: no client we know acts on it."""
    spec = offer.spec
    return ToolAnnotations(
        read_only_hint=True if spec.read_only else None,
        destructive_hint=False if not spec.read_only and not spec.destructive and not spec.runs_code else None,
        idempotent_hint=True if spec.idempotent and not spec.read_only else None,  # the spec: meaningless then
    )


def strict_tool(
    fn: Any,
    *,
    name: str,
    description: str,
    annotations: ToolAnnotations,
    explain_unknown: Callable[[dict[str, Any]], str | None] | None = None,
    single_provider: bool = False,
) -> Tool:
    tool = cast(
        StrictTool,
        StrictTool.from_function(
            fn, name=name, description=description, annotations=annotations, structured_output=True
        ),
    )
    tool.explain_unknown = explain_unknown
    tool.parameters = compact_schema(tool.parameters)
    tool.parameters["additionalProperties"] = False
    if single_provider:  # nothing to choose: left out of tools/list, still taken (an agent may name it)
        del tool.parameters["properties"]["provider"]
        tool.unlisted = frozenset({"provider"})
    generated = generated_output_schema(tool)
    if generated is not None:
        compact = compact_schema(generated, result=True)
        publish_output_schema(tool, inline_single_use_defs(drop_provider(compact)))
    return tool


def tools_for(offers: Iterable[Offer]) -> list[Tool]:
    return [
        strict_tool(
            make_handler(o),
            name=o.spec.name,
            description=o.spec.described_for(o.providers),
            annotations=annotations_for(o),
            explain_unknown=functools.partial(_unconfigured_provider, o),
            single_provider=len(o.providers) == 1,
        )
        for o in offers
    ]


def _unconfigured_provider(offer: Offer, arguments: dict[str, Any]) -> str | None:
    """Arguments unknown here because they belong to a provider this server has not configured: say that,
    and what to set, rather than "unknown argument"."""
    provider = arguments.get("provider")
    return provider_problem(offer, provider) if isinstance(provider, str) and provider in offer.spec.providers else None
