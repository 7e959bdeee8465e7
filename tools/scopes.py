"""Which scope a request needs (providers.services: READ, RUN, ADMIN). A tool that only reads needs READ, one that
changes anything needs RUN (ADMIN widens what a caller sees, not what it may call). Reading resources, tasks and
completions needs READ; updating or cancelling a task needs RUN. The rest (initialize, ping, tools/list, ...)
needs a valid token only: tools/list shows each caller the tools its scopes allow."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from providers.services import READ, RUN
from tools.catalog import ALL

DOCS_TOOL = "getDocs"
TOOL_SCOPES = {spec.name: READ if spec.read_only else RUN for spec in ALL} | {DOCS_TOOL: READ}
METHOD_SCOPES = {
    "resources/list": READ,
    "resources/templates/list": READ,
    "resources/read": READ,
    "resources/subscribe": READ,
    "resources/unsubscribe": READ,
    "subscriptions/listen": READ,
    "completion/complete": READ,
    "tasks/get": READ,
    "tasks/list": READ,
    "tasks/result": READ,
    "tasks/update": RUN,
    "tasks/cancel": RUN,
}


def needed(method: Any, params: Any) -> str | None:
    """The scope a JSON-RPC request needs, or None when any valid token may make it (an unknown tool included:
    the server answers that it has none)."""
    if method == "tools/call":
        name = params.get("name") if isinstance(params, Mapping) else None
        return TOOL_SCOPES.get(name) if isinstance(name, str) else None
    return METHOD_SCOPES.get(method) if isinstance(method, str) else None


def needed_by_body(body: Any) -> list[str]:
    """The scopes a request body (one JSON-RPC message, or a batch of them) needs, in the order of SCOPES."""
    messages = body if isinstance(body, list) else [body]
    wanted = {needed(m.get("method"), m.get("params")) for m in messages if isinstance(m, Mapping)}
    return [scope for scope in (READ, RUN) if scope in wanted]


def allowed(tool: str, scopes: Iterable[str]) -> bool:
    """May a caller with these scopes call (and see) this tool?"""
    scope = TOOL_SCOPES.get(tool)
    return scope is None or scope in set(scopes)
