"""Mechanical mirrors between the Pydantic schemas and GraphQL.

Inputs: a GraphQL input type is generated from each create/update schema, field for field, so a
field and its constraints are declared once (in the schema). Every optional input field defaults
to UNSET, which lets an update tell "not sent" (leave unchanged) from `null` (clear it).
Outputs: response schemas become Strawberry types through `strawberry.experimental.pydantic`;
`to_type` fills them without re-validating what the service already returns.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import strawberry
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from strawberry.scalars import JSON
from strawberry.utils.str_converters import to_camel_case

from backend.core.errors import FieldProblem, ValidationFailed

SchemaT = TypeVar("SchemaT", bound=BaseModel)
GqlT = TypeVar("GqlT")


_NESTED_INPUTS: dict[type[BaseModel], type] = {}


def _graphql_annotation(annotation: Any) -> Any:
    """Maps a Pydantic field annotation to the GraphQL-facing Python type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _graphql_annotation(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = _graphql_annotation(args[0])
        return inner | None
    if origin is list:
        return list[_graphql_annotation(typing.get_args(annotation)[0])]  # type: ignore[misc]
    if origin is dict:
        return JSON
    if annotation is uuid.UUID:
        return strawberry.ID
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        nested = _NESTED_INPUTS.get(annotation)
        if nested is None:
            nested = input_type(
                annotation, partial=False, description=(annotation.__doc__ or "").strip() or None
            )
            _NESTED_INPUTS[annotation] = nested
        return nested
    if annotation in (str, int, float, bool, datetime) or (
        isinstance(annotation, type) and issubclass(annotation, Enum)
    ):
        return annotation
    raise TypeError(f"no GraphQL mapping for {annotation!r}")


def input_type(model: type[BaseModel], *, partial: bool, description: str | None) -> type:
    """Builds `@strawberry.input class <model name>Input` mirroring `model`'s fields
    (camelCased): `AgentCreate` becomes `AgentCreateInput`. `partial`: every field optional (an
    update's input)."""
    name = model.__name__ + "Input"
    namespace: dict[str, Any] = {"__annotations__": {}, "__module__": __name__}
    for field_name, info in model.model_fields.items():
        annotation = _graphql_annotation(info.annotation)
        if partial or not info.is_required():
            annotation = annotation | None
            namespace[field_name] = strawberry.field(
                default=strawberry.UNSET, description=info.description
            )
        else:
            namespace[field_name] = strawberry.field(description=info.description)
        namespace["__annotations__"][field_name] = annotation
    cls = type(name, (), namespace)
    return strawberry.input(cls, description=description)


def _camel_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(to_camel_case(part) if isinstance(part, str) else str(part) for part in loc)


def _accepts_none(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _accepts_none(typing.get_args(annotation)[0])
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The schema a (list of, optional) nested input field validates with, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _raw(value: Any, model: type[BaseModel] | None) -> Any:
    """A generated input object (possibly nested) as plain data for `model`.

    UNSET fields are left out. So is an explicit null for a field that has a default but
    cannot hold null (e.g. `backstory: null` on create): the schema shows such fields as
    nullable, and null there means "use the default".
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = model.model_fields if model is not None else {}
        raw: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            info = fields.get(f.name)
            if item is strawberry.UNSET:
                continue
            defaulted = info is not None and not info.is_required()
            if item is None and defaulted and not _accepts_none(info.annotation):  # type: ignore[union-attr]
                continue
            raw[f.name] = _raw(item, _model_of(info.annotation) if info is not None else None)
        return raw
    if isinstance(value, list):
        return [_raw(v, model) for v in value]
    return value


def to_schema(model: type[SchemaT], value: object) -> SchemaT:
    """Validates a GraphQL input object with its schema; problems name camelCase input paths."""
    try:
        return model.model_validate(_raw(value, model))
    except PydanticValidationError as exc:
        raise ValidationFailed(
            [
                FieldProblem(
                    _camel_path(err["loc"]) or "input", err["msg"].removeprefix("Value error, ")
                )
                for err in exc.errors()
            ]
        ) from None


def camel_problems(error: ValidationFailed) -> list[FieldProblem]:
    """Service-side problems name schema fields in snake_case; clients see input names."""
    return [FieldProblem(to_camel_case(p.field), p.message) for p in error.problems]


def to_type(
    gql_type: type[GqlT], schema: type[BaseModel], *, partial: bool = False
) -> Callable[[BaseModel], GqlT]:
    """The one converter from a response schema instance to its Strawberry type: every field of
    the schema, UUIDs as ID strings, nothing validated (the service built the values from stored
    rows).

    It is compiled into one function with the field names written out, because it runs once per
    object on the read path (600 objects on a page of 100 crews): `python -m bench converter`
    measures it against the same mapping written as loops over field lists (docs/performance.md
    has the figures). The generated code holds nothing but the schema's field names, each
    checked to be an identifier.

    `partial`: for objects read with only the fields the operation selects (ids always); a field
    that was not read is None, and is never resolved, since the operation did not select it."""
    arguments = []
    for name, info in schema.model_fields.items():
        if not name.isidentifier():
            raise TypeError(f"field {name!r} of {schema.__name__}")
        if partial and name != "id" and not name.endswith(("_id", "_ids")):
            arguments.append(f"{name}=d.get({name!r})")
        elif info.annotation is uuid.UUID:
            arguments.append(f"{name}=str(d[{name!r}])")
        elif info.annotation == list[uuid.UUID]:
            arguments.append(f"{name}=[str(v) for v in d[{name!r}]]")
        else:
            arguments.append(f"{name}=d[{name!r}]")
    body = ", ".join(arguments)
    source = f"def convert(instance):\n    d = instance.__dict__\n    return gql({body})\n"
    namespace: dict[str, Any] = {"gql": gql_type}
    exec(source, namespace)  # built above from the schema's field names only
    convert: Callable[[BaseModel], GqlT] = namespace["convert"]
    return convert
