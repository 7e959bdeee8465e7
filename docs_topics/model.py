"""Typed documentation topics and their markdown rendering (compact by default, full on request)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from providers.endpoints import Endpoint
from tools.spec import ToolSpec

# Plain frozen dataclasses: the topics are our own constant data, checked by mypy and by tests/test_docs.py,
# so validating them at every start (pydantic) would only cost start-up time.


@dataclass(frozen=True, kw_only=True)
class ParamDoc:
    name: str
    type: str
    required: bool = False
    in_: str = "path"
    default: Any = None
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class EndpointDoc:
    method: str
    path: str
    tool_name: str
    description: str
    parameters: list[ParamDoc] = field(default_factory=list)
    request_body: dict[str, Any] | None = None
    example: dict[str, Any] | None = None


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
    endpoints: list[EndpointDoc] = field(default_factory=list)
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


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and getattr(annotation, "__metadata__", None) is not None:  # Annotated
        return _type_name(origin)
    if name and not getattr(annotation, "__args__", None):
        return str(name)
    return str(annotation).replace("typing.", "")


def from_endpoint(endpoint: Endpoint) -> EndpointDoc:
    """A remote endpoint, as the client calls it (providers/endpoints.py is the single source)."""
    body = {
        p.name: {"type": p.type, "required": p.required, "description": p.description} for p in endpoint.body_params
    }
    return EndpointDoc(
        method=endpoint.method,
        path=endpoint.path,
        tool_name=endpoint.tool_name,
        description=endpoint.description,
        parameters=[
            ParamDoc(
                name=p.name,
                type=p.type,
                required=p.required,
                in_=p.location,
                default=p.default,
                description=p.description,
            )
            for p in endpoint.params
            if p.location != "body"
        ],
        request_body={"type": "application/json", "properties": body} if body else None,
        example=endpoint.example,
    )


def from_tool(spec: ToolSpec, provider: str) -> EndpointDoc:
    """A tool as one provider takes it (used where there is no HTTP endpoint, e.g. the local runtime)."""
    required, optional = spec.takes(provider)
    params = [
        ParamDoc(
            name=a.name,
            type=_type_name(a.type),
            required=a.name in required,
            in_="arguments",
            description=a.description,
        )
        for a in spec.args
        if a.name in required | optional
    ]
    example = next((e for e in spec.examples if e.get("provider", provider) == provider), None)
    return EndpointDoc(
        method="TOOL",
        path=f"{spec.name} provider={provider}",
        tool_name=spec.name,
        description=spec.description,
        parameters=params,
        example=example,
    )


def schema_of(model: type[BaseModel]) -> dict[str, str]:
    """A compact field -> description view of an output model."""
    return {name: (f.description or _type_name(f.annotation)) for name, f in model.model_fields.items()}


def render(topic: Topic, detail: Literal["compact", "full"] = "compact") -> str:
    full = detail == "full"
    out = [f"# {topic.title}", "", topic.description.strip(), ""]
    if topic.ai_hints:
        out += ["## Hints", *[f"- {h}" for h in topic.ai_hints], ""]
    if topic.endpoints:
        out.append("## Endpoints")
        for e in topic.endpoints:
            out.append(f"- `{e.method} {e.path}` → tool `{e.tool_name}`: {e.description}")
            if full:
                for p in e.parameters:
                    req = "required" if p.required else "optional"
                    default = f", default {p.default}" if p.default not in (None, {}) else ""
                    out.append(f"  - `{p.name}` ({p.type}, {p.in_}, {req}{default}): {p.description}")
                if e.request_body:
                    for name, prop in e.request_body["properties"].items():
                        req = "required" if prop["required"] else "optional"
                        out.append(f"  - body `{name}` ({prop['type']}, {req}): {prop['description']}")
                if e.example:
                    out.append(f"  - example: `{json.dumps(e.example)}`")
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
            out.append(pattern.description)
            out += [f"{i}. {step}" for i, step in enumerate(pattern.steps, 1)]
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
