"""JSON schemas as we publish them: the same meaning in fewer bytes (an agent pays for every tools/list)."""

from __future__ import annotations

import json
from typing import Any

JSON_SAFE_MAX = 2**53 - 1  # the largest integer JSON carries safely (and far inside SQLite's 64 bits)


def drop_provider(schema: Any) -> Any:
    """An output schema without the top level's `provider` (the one the call named, or the default): it tells a
    client nothing it can use. An output schema allows properties it does not list; results keep it."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict) and "provider" in properties and "required" in schema:
        properties.pop("provider")
        schema["required"] = [name for name in schema["required"] if name != "provider"]
    return schema


def compact_schema(schema: Any, result: bool = False) -> Any:
    """Shorter, equivalent-for-clients JSON schemas (every tools/list costs an agent tokens):
    - pydantic's generated `title`s go: they repeat the property names (a property *named* title stays);
    - `anyOf: [T, null]` becomes T: an optional argument is one you leave out (an explicit null is still
      accepted), and an empty field of a result is left out of it (tools/results.py);
    - `default: null` and the JSON Schema default `additionalProperties: true` are dropped, and so is a
      default that is the enum's only value (an optional argument that can take one value: that one);
    - in a `result`'s schema, every default (the server fills a result: a default tells a client nothing) and
      the free-form `raw` (a provider's own record, an open object) go too; results keep `raw`."""
    if isinstance(schema, list):
        return [compact_schema(item, result) for item in schema]
    if not isinstance(schema, dict):
        return schema
    options = schema.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        schema = {**other, **{k: v for k, v in schema.items() if k not in ("anyOf", "default")}}
    compacted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "default" and (result or value is None or schema.get("enum") == [value]):
            continue
        if key == "additionalProperties" and value is True:
            continue
        if key == "title" and isinstance(value, str):
            continue
        if key == "maximum" and value == JSON_SAFE_MAX:
            continue  # any integer JSON carries safely: saying so costs 30 bytes an argument
        if key == "type" and "enum" in schema:
            continue  # the enum's values say the type
        if key in ("properties", "$defs"):
            dropped = "raw" if result and key == "properties" else None
            compacted[key] = {name: compact_schema(sub, result) for name, sub in value.items() if name != dropped}
        elif key == "enum":
            compacted[key] = value
        else:
            compacted[key] = compact_schema(value, result)
    return compacted


def inline_single_use_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace each `$ref` to a `$defs` entry used exactly once by the entry itself (same meaning, fewer
    bytes); entries used more than once, or by themselves, stay."""
    defs = schema.get("$defs")
    if not isinstance(defs, dict):
        return schema
    text = json.dumps(schema)
    prefix = "#/$defs/"
    once = {
        name
        for name in defs
        if text.count(json.dumps(prefix + name)) == 1 and json.dumps(prefix + name) not in json.dumps(defs[name])
    }

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] in once:
                return walk({**defs[ref[len(prefix) :]], **{k: v for k, v in node.items() if k != "$ref"}})
            return {k: walk(v) for k, v in node.items() if not (k == "$defs" and node is schema)}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    result: dict[str, Any] = walk(schema)
    kept = {name: walk(value) for name, value in defs.items() if name not in once}
    if kept:
        result["$defs"] = kept
    return result
