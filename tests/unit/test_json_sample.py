"""The simulated model's structured answers: deterministic values that fit their schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from backend.utils.json_sample import sample

WORDS = ["tide", "pool", "starfish", "kelp", "urchin"]


def word(n: int) -> str:
    return WORDS[n % len(WORDS)]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
        {
            "type": "object",
            "properties": {
                "score": {"type": "integer", "minimum": 3, "maximum": 4},
                "ratio": {"type": "number", "exclusiveMinimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "ok": {"type": "boolean"},
                "kind": {"enum": ["a", "b"]},
                "fixed": {"const": 7},
                "note": {"type": ["string", "null"], "maxLength": 4},
                "code": {"type": "string", "minLength": 30},
                "nested": {"$ref": "#/$defs/point"},
                "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            },
            "required": ["score", "tags", "nested"],
            "$defs": {
                "point": {
                    "type": "object",
                    "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                    "required": ["x", "y"],
                }
            },
        },
    ],
)
def test_samples_validate_and_repeat(schema: dict[str, Any]) -> None:
    value = sample(schema, word)
    jsonschema.validate(value, schema)
    assert sample(schema, word) == value


def test_what_it_cannot_build_is_null() -> None:
    assert sample({"type": "object", "properties": {"x": {"not": {}}}}, word) == {"x": None}
