"""A tool is one ToolSpec: its arguments, which provider takes which, its output and its hints."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from providers.capabilities import Capability
from providers.registry import PROVIDERS


@dataclass(frozen=True)
class Arg:
    name: str
    type: Any
    description: str


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    capability: Capability[Any, Any]  # what a provider implements to serve it
    args: tuple[Arg, ...]
    toolset: str | None = None  # None: a headline tool, always on
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    progress: bool = False  # the provider method accepts a progress callback
    runs_code: bool = False  # runs arbitrary commands: open-world even on the local provider
    # May answer a task-declaring client with a task (MCP Tasks extension, server/tasks.py).
    task: bool = False
    # On local: called as a task, the tool starts its run with these arguments and answers at once; the task
    # then follows the run with (provider capability, result field holding the id it takes).
    task_start: dict[str, Any] = field(default_factory=dict, compare=False)
    task_follow: tuple[Capability[Any, Any], str] | None = None
    # provider -> a sentence added to the description when that provider is offered
    notes: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def output(self) -> type[BaseModel]:
        return self.capability.result

    @cached_property
    def providers(self) -> dict[str, tuple[str, ...]]:
        """provider -> the argument names it takes (a trailing "?" marks an optional one), in registry order:
        each provider declares them with its capabilities (providers/<name>/__init__.py)."""
        return {
            p.name: p.capabilities[self.capability].arguments for p in PROVIDERS.values() if p.supports(self.capability)
        }

    def described_for(self, providers: tuple[str, ...]) -> str:
        """The description, with the notes of the providers this server offers (and no others)."""
        return " ".join([self.description, *(self.notes[p] for p in providers if p in self.notes)])

    def takes(self, provider: str) -> tuple[set[str], set[str]]:
        """(required, optional) argument names of `provider`."""
        names = self.providers[provider]
        return {n for n in names if not n.endswith("?")}, {n.rstrip("?") for n in names if n.endswith("?")}
