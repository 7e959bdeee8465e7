"""Browsable documentation: typed topics, served by the getDocs tool and as docs:// resources."""

from __future__ import annotations

from docs_topics.archastro import ROUTINES as ARCHASTRO_ROUTINES
from docs_topics.archastro import SESSIONS as ARCHASTRO_SESSIONS
from docs_topics.computesdk import COMPUTESDK
from docs_topics.decthings import DECTHINGS
from docs_topics.local import LOCAL
from docs_topics.model import Topic, render
from docs_topics.overview import OVERVIEW
from docs_topics.sprites import SPRITES
from docs_topics.workflows import ERRORS, IDEMPOTENT_ROUTINES, RUN_AND_WATCH
from docs_topics.xano import XANO

TOPICS: dict[str, Topic] = {
    t.topic: t
    for t in (
        OVERVIEW,
        LOCAL,
        SPRITES,
        XANO,
        ARCHASTRO_ROUTINES,
        ARCHASTRO_SESSIONS,
        DECTHINGS,
        COMPUTESDK,
        RUN_AND_WATCH,
        IDEMPOTENT_ROUTINES,
        ERRORS,
    )
}

__all__ = ["TOPICS", "Topic", "render"]
