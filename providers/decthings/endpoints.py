"""Decthings: every endpoint the client calls, described once (client, docs topic, tests)."""

from __future__ import annotations

from providers.endpoints import Endpoint, Param

DECTHINGS_GET_LAUNCHERS = Endpoint(
    "decthings",
    "POST",
    "/PersistentLauncher/getPersistentLaunchers",
    "getLaunchers",
    "Persistent launchers, paged and filtered. Binary-framed RPC; errors come inside HTTP 200.",
    (
        Param("offset", "integer", "Items to skip.", location="frame", default=0),
        Param("limit", "integer", "Items to return.", location="frame", default=20),
        Param("filter.ids", "string[]", "Only these launcher ids.", location="frame"),
        Param("filter.searchName", "string", "Name search.", location="frame"),
        Param("sort", "string", "Field to sort by.", location="frame", default="createdAt"),
        Param("sortDirection", "enum", "asc or desc.", location="frame"),
    ),
    read_only=True,
)

ENDPOINTS: tuple[Endpoint, ...] = tuple(v for v in globals().values() if isinstance(v, Endpoint))
