"""Decthings persistent launchers."""

from docs_topics.model import Topic, schema_of
from providers import models as m
from providers.decthings import endpoints as e

DECTHINGS = Topic(
    topic="decthings",
    title="Decthings: persistent launchers",
    description=(
        "A persistent launcher is a machine Decthings keeps ready to run terminals, training and evaluation. "
        "getLaunchers pages and filters them (offset, limit default 20, ids, search_name, sort default "
        "createdAt, sort_direction). Each has a state: creating, active, deleting, or recreating with the "
        "reason of its previous end (exit or unknown), and the list of what runs on it. Set "
        "`DECTHINGS_API_KEY`.\n\n"
        "The API is an RPC over HTTP with a binary frame, and reports its own errors inside a 200 answer; "
        "this server decodes both and turns errors into tool errors."
    ),
    ai_hints=[
        "A launcher missing from a result with `ids` does not exist, or your key cannot see it.",
        "An invalid_parameter error names the parameter and the reason; fix that argument.",
        "getLauncher (launchers toolset) returns one launcher in full, spec included.",
    ],
    endpoints=[e.DECTHINGS_GET_LAUNCHERS],
    schemas={"Launcher": schema_of(m.Launcher), "RunningItem": schema_of(m.RunningItem)},
    related_topics=["overview", "errors"],
)

TOPICS = (DECTHINGS,)
