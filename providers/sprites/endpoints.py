"""Sprites: every endpoint the client calls, described once (client, docs topic, tests)."""

from __future__ import annotations

from providers.endpoints import Endpoint, body_param, path_param

SPRITE = path_param("name", "Sprite name.")
SPRITES_LIST_EXEC = Endpoint(
    "sprites",
    "GET",
    "/v1/sprites/{name}/exec",
    "listSessions",
    "Exec sessions of a sprite, active and finished.",
    (SPRITE,),
    example={
        "sessions": [{"id": 7, "command": "python server.py", "created": "2026-01-15T10:30:00Z", "is_active": True}]
    },
)
SPRITES_KILL_EXEC = Endpoint(
    "sprites",
    "POST",
    "/v1/sprites/{name}/exec/{id}/kill",
    "stopSession",
    "Signal an exec session; the answer is an NDJSON stream ending in a `complete` event. "
    "410 means it had already exited.",
    (
        SPRITE,
        path_param("id", "Exec session id.", "integer"),
        # The official Python SDK sends these as a JSON body; we send one only when a signal is chosen,
        # so the provider's own defaults apply otherwise.
        body_param("signal", "string", "Signal to send.", default="SIGTERM"),
        body_param("timeout", "integer", "Seconds to wait before a forced kill.", default=10),
    ),
)

ENDPOINTS: tuple[Endpoint, ...] = tuple(v for v in globals().values() if isinstance(v, Endpoint))
