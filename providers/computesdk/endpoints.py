"""ComputeSDK events: every endpoint the client calls, described once (client, docs topic, tests)."""

from __future__ import annotations

from providers.endpoints import Endpoint, body_param, path_param, query_param

COMPUTESDK_STORE_EVENT = Endpoint(
    "computesdk",
    "POST",
    "/events",
    "storeEvent",
    "Store an event for the sandbox named by the access token.",
    (
        body_param("type", "string", "Event type, e.g. execution.completed.", required=True),
        body_param("data", "object", "Event payload.", required=True),
    ),
    example={"type": "execution.completed", "data": {"exitCode": 0}},
)
COMPUTESDK_GET_EVENTS = Endpoint(
    "computesdk",
    "GET",
    "/events/{sandbox_id}",
    "getEvents",
    "Stored events of a sandbox (needs the API key).",
    (
        path_param("sandbox_id", "Sandbox id."),
        query_param("type", "string", "Event type filter."),
        query_param("since", "integer", "Only events after this unix time in ms."),
        query_param("limit", "integer", "1 to 1000.", 100),
    ),
)

ENDPOINTS: tuple[Endpoint, ...] = tuple(v for v in globals().values() if isinstance(v, Endpoint))
