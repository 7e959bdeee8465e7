"""Sprites exec sessions."""

from docs_topics.model import Topic, schema_of
from providers import models as m
from providers.sprites import endpoints as e

SPRITES = Topic(
    topic="sprites",
    title="Sprites: exec sessions in a sprite",
    description=(
        "A sprite is a sandbox; each command run in it is an exec session. This server lists a sprite's "
        "sessions and kills them. Set `SPRITES_TOKEN` (and `SPRITES_BASE_URL` to point elsewhere).\n\n"
        "listSessions maps each session to `id` (the numeric id, as a string), `status` (`active` while it "
        "runs, else `completed`), `started_at` and `command`; the rest stays in `raw`."
    ),
    ai_hints=[
        "listSessions needs `sprite` (the sprite's name).",
        "stopSession needs `sprite` and `session_id`; a session that had already exited is reported calmly "
        "with stopped=false.",
        "A 404 means the sprite name is wrong; a 401 means SPRITES_TOKEN is missing or expired.",
    ],
    endpoints=[e.SPRITES_LIST_EXEC, e.SPRITES_KILL_EXEC],
    schemas={"SessionSummary": schema_of(m.SessionSummary)},
    related_topics=["overview", "errors"],
)

TOPICS = (SPRITES,)
