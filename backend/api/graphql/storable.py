"""The one check every argument passes before a resolver runs: nothing the databases cannot store.

A field extension on every root field (Query, Mutation, Subscription: a handful per request,
never per list item) walks the field's coerced arguments, nested inputs and JSON values
included, and refuses:
- text with NUL (U+0000; PostgreSQL's text and jsonb cannot hold it) or an unpaired surrogate
  (U+D800-U+DFFF; not encodable as UTF-8, so neither driver can send it);
- text longer than CREWQL_MAX_STRING_CHARS, or, inside a `filter` argument, than
  CREWQL_MAX_FILTER_CHARS (SQLite refuses LIKE patterns over 50,000 bytes; nobody filters with
  a paragraph);
- a date-time outside what both databases store (years 1-9999 once converted to UTC; a
  `9999-12-31T23:59:59-23:59` overflowed in the driver);
- JSON nested deeper than MAX_JSON_DEPTH.
A mutation whose result can be a ValidationError gets one naming the field (camelCase path);
any other field gets a BAD_USER_INPUT error naming it. Either way nothing reaches a service, so
no execution can fail later on input that was accepted.
Written by hand: this is the schema's own policy over Strawberry's coerced values; no library
knows which characters our two databases refuse.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry.types.union import StrawberryUnion
from strawberry.utils.str_converters import to_camel_case

from backend.api.graphql.errors import BAD_USER_INPUT, ClientError, error_result
from backend.api.graphql.types.errors import ValidationError
from backend.config.settings import Settings
from backend.core.errors import FieldProblem, ValidationFailed

MAX_JSON_DEPTH = 32
FILTER_ARGUMENT = "filter"
SURROGATES = range(0xD800, 0xE000)


@dataclasses.dataclass(frozen=True)
class TextLimits:
    max_chars: int
    max_filter_chars: int


def text_problem(text: str, limit: int, setting: str) -> str | None:
    if "\x00" in text:
        return "must not contain the NUL character (U+0000)"
    if len(text) > limit:
        return f"is longer than {limit:,} characters ({setting})"
    if any(ord(char) in SURROGATES for char in text):
        return "must not contain unpaired surrogates (U+D800-U+DFFF)"
    return None


def _items(value: Any) -> Iterator[tuple[str, Any]] | None:
    """The named parts of an input object or JSON object, or None for anything else."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            (to_camel_case(f.name), getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not strawberry.UNSET
        )
    if isinstance(value, dict):
        return ((str(key), item) for key, item in value.items())
    return None


def first_problem(name: str, value: Any, limits: TextLimits) -> FieldProblem | None:
    """The first part of one argument that cannot be stored, with its path (`input.agents.0.name`);
    iterative, so a deeply nested JSON value cannot exhaust the stack."""
    in_filter = name == FILTER_ARGUMENT
    limit, setting = (
        (limits.max_filter_chars, "CREWQL_MAX_FILTER_CHARS")
        if in_filter
        else (limits.max_chars, "CREWQL_MAX_STRING_CHARS")
    )
    stack: list[tuple[str, Any, int]] = [(to_camel_case(name), value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item, limit, setting)
            if problem is not None:
                return FieldProblem(path, problem)
        elif isinstance(item, datetime):
            if item.tzinfo is not None:
                try:
                    item.astimezone(UTC)
                except OverflowError:
                    return FieldProblem(path, "is outside the years 1 to 9999 in UTC")
        elif depth > MAX_JSON_DEPTH:
            return FieldProblem(path, f"nests deeper than {MAX_JSON_DEPTH} levels")
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}.{i}", part, depth + 1) for i, part in enumerate(item))
        elif (parts := _items(item)) is not None:
            for key, part in parts:
                if isinstance(item, dict):
                    problem = text_problem(key, limit, setting)
                    if problem is not None:
                        return FieldProblem(f"{path}.{key!r}", f"key {problem}")
                stack.append((f"{path}.{key}", part, depth + 1))
    return None


class StorableArguments(FieldExtension):
    def __init__(self, limits: TextLimits, *, typed: bool) -> None:
        self.limits = limits
        self.typed = typed  # the field's result union has ValidationError

    def _refusal(self, kwargs: dict[str, Any]) -> Any:
        for name, value in kwargs.items():
            problem = first_problem(name, value, self.limits)
            if problem is None:
                continue
            message = f"`{problem.field}` {problem.message}."
            if self.typed:
                # Paths in a ValidationError start inside the input, as the schema's own do.
                inner = FieldProblem(problem.field.removeprefix("input."), problem.message)
                return error_result(ValidationFailed([inner], message))
            raise ClientError(message, BAD_USER_INPUT, field=problem.field)
        return None

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: Info[Any, Any], **kwargs: Any
    ) -> Any:
        refusal = self._refusal(kwargs)
        return refusal if refusal is not None else next_(source, info, **kwargs)

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: Info[Any, Any],
        **kwargs: Any,
    ) -> Any:
        refusal = self._refusal(kwargs)
        if refusal is not None:
            return refusal
        result = next_(source, info, **kwargs)
        # A subscription's resolver returns its async generator, not an awaitable.
        return await result if inspect.isawaitable(result) else result


def _has_validation_error(field_type: Any) -> bool:
    members: tuple[object, ...] = (
        tuple(field_type.types) if isinstance(field_type, StrawberryUnion) else ()
    )
    return ValidationError in members


def check_arguments(settings: Settings, *root_types: type) -> None:
    """Adds StorableArguments to every field (with arguments) of the given root types, once."""
    limits = TextLimits(settings.max_string_chars, settings.max_filter_chars)
    for root in root_types:
        definition = root.__strawberry_definition__  # type: ignore[attr-defined]
        for field in definition.fields:
            if not field.arguments:
                continue
            field.extensions[:] = [
                e for e in field.extensions if not isinstance(e, StorableArguments)
            ]
            field.extensions.insert(
                0, StorableArguments(limits, typed=_has_validation_error(field.type))
            )
