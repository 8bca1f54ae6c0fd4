"""A deterministic JSON value that fits a JSON Schema: what the simulated model answers when a
task asks for structured output.

Written by hand because the libraries that build instances from a schema (hypothesis-jsonschema,
jsf) draw them at random, and the simulated model must give the same answer to the same prompt
on every machine. It covers what task output schemas use (objects, arrays, strings with
`enum`/`const`/lengths, numbers and integers with bounds, booleans, null, `anyOf`/`oneOf`/`allOf`
by their first branch, local `$ref`s); anything else gets `null`, which validation then refuses,
as it would refuse a real model's miss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_DEPTH = 12


def sample(schema: Any, word: Callable[[int], str], root: Any = None, depth: int = 0) -> Any:
    """A value valid for `schema` (as far as the cases above go); `word(n)` gives the n-th word
    of the answer, so strings vary with the prompt yet stay reproducible."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return sample(target, word, root, depth + 1)
    for combinator in ("allOf", "anyOf", "oneOf"):
        branches = schema.get(combinator)
        if isinstance(branches, list) and branches:
            merged = {k: v for k, v in schema.items() if k != combinator}
            return sample({**branches[0], **merged}, word, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            name: sample(sub, word, root, depth + 1)
            for name, sub in properties.items()
            if isinstance(sub, dict)
        }
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        return [sample(schema.get("items") or {}, word, root, depth + 1) for _ in range(count)]
    if kind == "string":
        text = " ".join(word(i) for i in range(3))
        longest = schema.get("maxLength")
        text = text.ljust(int(schema.get("minLength", 0)), "x")
        return text[: int(longest)] if longest is not None else text
    if kind in ("integer", "number"):
        least = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = int(least or 0) + (1 if "exclusiveMinimum" in schema else 0) + len(word(0)) % 5
        maximum = schema.get("maximum")
        if maximum is not None and value > maximum:
            value = int(maximum)
        return value if kind == "integer" else float(value)
    if kind == "boolean":
        return len(word(1)) % 2 == 0
    return None
