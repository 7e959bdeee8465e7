"""A tool is one ToolSpec: its arguments, which provider takes which, its output and its hints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Arg:
    name: str
    type: Any
    description: str


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    capability: str  # the provider method that serves it
    output: type[BaseModel] | Any
    args: tuple[Arg, ...]
    # provider -> the argument names it takes; a trailing "?" marks an optional one
    providers: dict[str, tuple[str, ...]]
    toolset: str | None = None  # None: a headline tool, always on
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    progress: bool = False  # the provider method accepts a progress callback
    runs_code: bool = False  # runs arbitrary commands: open-world even on the local provider
    examples: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    def takes(self, provider: str) -> tuple[set[str], set[str]]:
        """(required, optional) argument names of `provider`."""
        names = self.providers[provider]
        return {n for n in names if not n.endswith("?")}, {n.rstrip("?") for n in names if n.endswith("?")}

    def arg(self, name: str) -> Arg:
        return next(a for a in self.args if a.name == name)
