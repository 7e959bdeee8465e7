"""Sprites: every endpoint the client calls, described once (client, docs topic, tests)."""

from __future__ import annotations

from providers.endpoints import Endpoint, path_param, query_param

SPRITE = path_param("sprite", "Sprite name.")
SPRITES_LIST_EXEC = Endpoint(
    "sprites",
    "GET",
    "/v1/sprites/{sprite}/exec",
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
    "/v1/sprites/{sprite}/exec/{session_id}/kill",
    "stopSession",
    "Signal an exec session and wait for it to exit; the answer is an NDJSON stream ending in a `complete` "
    "event. 410 means it had already exited.",
    (
        SPRITE,
        path_param("session_id", "Exec session id, as listSessions gives it."),
        # Query parameters, as the Sprites API reference gives them; sent only when chosen, so that the
        # provider's own defaults apply otherwise.
        query_param("signal", "string", "Signal to send.", default="SIGTERM"),
        query_param("timeout", "duration", "How long to wait for the exit, e.g. 10s.", default="10s"),
    ),
)

ENDPOINTS: tuple[Endpoint, ...] = tuple(v for v in globals().values() if isinstance(v, Endpoint))
