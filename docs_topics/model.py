"""Typed documentation topics and their markdown rendering (compact by default, full on request)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from providers.endpoints import Endpoint
from tools.catalog import ALL
from tools.schema import JSON_SAFE_MAX
from tools.spec import Arg, ToolSpec

# (tool, provider) -> None when this server offers that tool for that provider, else what would enable it.
Availability = Callable[[str, str], str | None]
SPECS = {spec.name: spec for spec in ALL}
# A tool name in prose: a verb we name tools with, then a capital (getSession, listRoutineRuns, ...).
TOOL_WORD = re.compile(
    r"\b((?:list|get|exec|stop|invoke|store|set|update|check|send|delete|activate|pause|create|rename|write|read)"
    r"[A-Z]\w*)\b"
)

# Plain frozen dataclasses: the topics are our own constant data, checked by mypy and by tests/test_docs.py,
# so validating them at every start (pydantic) would only cost start-up time.


@dataclass(frozen=True, kw_only=True)
class Example:
    title: str
    description: str = ""
    request: dict[str, Any] | None = None
    response: Any = None


@dataclass(frozen=True, kw_only=True)
class Pattern:
    name: str
    description: str
    steps: list[str]
    example: str | None = None


@dataclass(frozen=True, kw_only=True)
class Topic:
    topic: str
    title: str
    description: str
    ai_hints: list[str] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    schemas: dict[str, Any] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    patterns: list[Pattern] = field(default_factory=list)
    related_topics: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """The first sentence of the description."""
        first = self.description.split("\n", 1)[0]
        end = first.find(". ")
        return first[: end + 1] if end != -1 else first


def from_tool(spec: ToolSpec, provider: str) -> Endpoint:
    """A tool as one provider takes it (used where there is no HTTP endpoint, e.g. the local runtime)."""
    return Endpoint(provider, "TOOL", f"{spec.name} provider={provider}", spec.name, spec.description)


def schema_of(model: type[BaseModel]) -> dict[str, str]:
    """A compact view of an output model: each field's JSON type, and what it means where that is not obvious."""
    properties = model.model_json_schema()["properties"]
    out = {}
    for name, field_info in model.model_fields.items():
        kind = describe_schema(properties[name])
        out[name] = f"{kind}: {field_info.description}" if field_info.description else kind
    return out


@cache
def json_type(annotation: Any) -> str:
    """An argument's type as an agent sends it in JSON, with its allowed values or range."""
    return describe_schema(TypeAdapter(annotation).json_schema())


def describe_schema(schema: dict[str, Any]) -> str:
    """A JSON schema in a few words: `string`, `integer 1–100`, `one of asc, desc`, `array of string`,
    `string or null`, `RunningItem` (a model of its own)."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(describe_schema(option) for option in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"array of {describe_schema(schema.get('items', {}))}"
    low, high = schema.get("minimum"), schema.get("maximum")
    if high is not None and high >= JSON_SAFE_MAX:
        high = None  # no bound worth reading
    if low is not None and high is not None:
        return f"{kind} {low}–{high}"
    return f"{kind} ≥ {low}" if low is not None else kind


def call_lines(spec: ToolSpec, provider: str) -> list[str]:
    """The tool's arguments as `provider` takes them: name, JSON type, required or not, description."""
    required, optional = spec.takes(provider)
    args: list[Arg] = [a for a in spec.args if a.name in required | optional]
    lines = [f"  - call `{spec.name}`" + (f" with provider={provider}" if len(spec.providers) > 1 else "")]
    for arg in sorted(args, key=lambda a: a.name not in required):
        need = "required" if arg.name in required else "optional"
        lines.append(f"    - `{arg.name}` ({json_type(arg.type)}, {need}): {arg.description}")
    return lines


def render(
    topic: Topic, detail: Literal["compact", "full"] = "compact", availability: Availability | None = None
) -> str:
    """A topic as markdown. Each endpoint names the tool that serves it; `availability` (this server's offer)
    marks the tools it does not offer with what would enable them. `full` adds every tool's arguments as an
    agent sends them, then the provider's wire parameters, the schemas and the examples."""
    full = detail == "full"
    told: set[str] = set()

    def prose(text: str) -> str:
        return _mark_unoffered(text, availability, told) if availability else text

    out = [f"# {topic.title}", "", prose(topic.description.strip()), ""]
    if topic.ai_hints:
        out += ["## Hints", *[f"- {prose(h)}" for h in topic.ai_hints], ""]
    if topic.endpoints:
        out.append("## Endpoints")
        for e in topic.endpoints:
            missing = availability(e.tool_name, e.provider) if availability else None
            note = f" (not offered here: {missing})" if missing else ""
            where = "" if e.method == "TOOL" else f"`{e.method} {e.path}` → "
            out.append(f"- {where}tool `{e.tool_name}`{note}: {e.description}")
            spec = SPECS.get(e.tool_name)
            if full and spec is not None and e.provider in spec.providers:
                out += call_lines(spec, e.provider)
            if full and e.method != "TOOL":
                wire = [f"`{p.name}` ({p.location})" for p in e.params]
                if wire:
                    out.append("  - on the wire: " + ", ".join(wire))
                if e.example:
                    out.append(f"  - example body: `{json.dumps(e.example)}`")
        out.append("")
    if full and topic.schemas:
        out.append("## Schemas")
        for name, fields in topic.schemas.items():
            out.append(f"- **{name}**: " + "; ".join(f"`{k}` {v}" for k, v in fields.items()))
        out.append("")
    if topic.patterns:
        out.append("## Patterns")
        for pattern in topic.patterns:
            out.append(f"### {pattern.name}")
            out.append(prose(pattern.description))
            out += [f"{i}. {prose(step)}" for i, step in enumerate(pattern.steps, 1)]
            if full and pattern.example:
                out += ["```", pattern.example.strip(), "```"]
            out.append("")
    if full and topic.examples:
        out.append("## Examples")
        for ex in topic.examples:
            out.append(f"### {ex.title}")
            if ex.description:
                out.append(ex.description)
            if ex.request is not None:
                out.append(f"Request: `{json.dumps(ex.request)}`")
            if ex.response is not None:
                out.append(f"Response: `{json.dumps(ex.response)}`")
            out.append("")
    if topic.related_topics:
        out.append("Related: " + ", ".join(f"`{t}`" for t in topic.related_topics))
    if not full:
        out += ["", f"(Compact view. getDocs topic={topic.topic} detail=full adds parameters, schemas, examples.)"]
    return "\n".join(out).strip() + "\n"


def _mark_unoffered(text: str, availability: Availability, told: set[str]) -> str:
    """The first mention in a topic of a tool this server offers for no provider, followed by what would offer
    it: a topic written for every server never suggests a tool this one lacks without saying so."""

    def mark(match: re.Match[str]) -> str:
        spec = SPECS.get(match.group(1))
        if spec is None or spec.name in told:
            return match.group(0)
        told.add(spec.name)
        missing = [availability(spec.name, provider) for provider in spec.providers]
        if not missing or None in missing:
            return match.group(0)
        return f"{match.group(0)} (not offered here: {missing[0]})"

    return TOOL_WORD.sub(mark, text)
