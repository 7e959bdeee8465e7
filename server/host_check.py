"""Host and Origin headers checked exactly, before the SDK's own check (which takes any Host that *starts with*
an allowed `name:`, so `localhost:18100@evil.com` passed for `localhost:*`).

An allowed host is `name` (that Host exactly, no port), `name:port`, or `name:*` (the name with any port);
an allowed origin is `scheme://name`, `scheme://name:port` or `scheme://name:*`. Names compare without regard
to case; a port is 1 to 5 digits, at most 65535. Anything else in the header is refused."""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

_NAME = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)"
_HOST = re.compile(_NAME + r"(?::([0-9]{1,5}))?")
_ORIGIN = re.compile(r"([a-z][a-z0-9+.-]*)://" + _NAME + r"(?::([0-9]{1,5}))?")


def _port_ok(port: str | None) -> bool:
    return port is None or 0 < int(port) <= 65535


def _matches(name: str, port: str | None, pattern: str) -> bool:
    has_port = ":" in pattern.rsplit("]", 1)[-1]  # `:port` or `:*` (an IPv6 literal's colons are inside its brackets)
    allowed_name, _, allowed_port = pattern.rpartition(":") if has_port else (pattern, "", "")
    if name.lower() != allowed_name.lower():
        return False
    if allowed_port == "*":
        return port is not None
    return port == (allowed_port or None)


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    found = _HOST.fullmatch(host)
    if found is None or not _port_ok(found.group(2)):
        return False
    return any(_matches(found.group(1), found.group(2), pattern) for pattern in allowed)


def origin_allowed(origin: str, allowed: Sequence[str]) -> bool:
    found = _ORIGIN.fullmatch(origin)
    if found is None or not _port_ok(found.group(3)):
        return False
    scheme, name, port = found.groups()
    for pattern in allowed:
        allowed_scheme, sep, rest = pattern.partition("://")
        if sep and allowed_scheme.lower() == scheme.lower() and _matches(name, port, rest):
            return True
    return False


def exact_host_check(app: ASGIApp, path: str, hosts: Sequence[str], origins: Sequence[str]) -> ASGIApp:
    """ASGI middleware for the MCP endpoint: a Host that is not exactly an allowed host[:port] gets 421, an
    Origin (when sent) that is not exactly an allowed one gets 403, as the SDK answers them."""

    async def checked(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(path):
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin")
        if not host_allowed(host, hosts):
            await Response("Invalid Host header", status_code=421)(scope, receive, send)
        elif origin is not None and not origin_allowed(origin.decode("latin-1"), origins):
            await Response("Invalid Origin header", status_code=403)(scope, receive, send)
        else:
            await app(scope, receive, send)

    return checked
