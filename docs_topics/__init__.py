"""Browsable documentation: typed topics, served by the getDocs tool and as docs:// resources.

Each registered provider documents itself in `docs_topics/<provider name>.py`, which exports TOPICS
(tests/test_docs.py checks that every provider has one and that it covers the provider's endpoints)."""

from __future__ import annotations

import importlib

from docs_topics import overview, workflows
from docs_topics.model import Topic, render
from providers.registry import PROVIDERS


def _provider_topics() -> list[Topic]:
    return [topic for name in PROVIDERS for topic in importlib.import_module(f"docs_topics.{name}").TOPICS]


TOPICS: dict[str, Topic] = {t.topic: t for t in (overview.OVERVIEW, *_provider_topics(), *workflows.TOPICS)}


def offered(configured: set[str]) -> dict[str, Topic]:
    """The topics a server offers: all but those of optional-extra providers it has not configured (they are for
    operators, in docs/<name>.md; to an agent they would describe tools it cannot call, in every tools/list)."""
    hidden = {name for name, p in PROVIDERS.items() if p.extra is not None and name not in configured}
    return {key: t for key, t in TOPICS.items() if key.split("-")[0] not in hidden}


__all__ = ["TOPICS", "Topic", "offered", "render"]
