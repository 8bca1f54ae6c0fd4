"""Helpers for authentication tests: keys, audit-line capture, and every operation of the schema.

`schema_operations()` reads schema.graphql (the exported, committed schema) and builds one
minimal, valid document per root field of Query, Mutation and Subscription, so a sweep over
"every operation" cannot forget one added later.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    build_schema,
    get_named_type,
)
from loguru import logger

from backend.core.identity import Role
from backend.schemas import ApiKeyCreate
from backend.services.bundle import Services

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
Kind = str  # "query" | "mutation" | "subscription"


async def make_key(
    services: Services, workspace_id: uuid.UUID, role: Role, name: str | None = None
) -> str:
    created = await services.auth.create_key(
        workspace_id, ApiKeyCreate(name=name or f"test-{role}", role=role)
    )
    return created.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def audit_lines() -> Iterator[list[str]]:
    """Every audit line logged inside the block (and only those)."""
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message).rstrip("\n")),
        filter=lambda record: bool(record["extra"].get("audit")),
        format="{message}",
        level="INFO",
    )
    try:
        yield lines
    finally:
        logger.remove(sink)


@dataclass(frozen=True)
class Operation:
    kind: Kind
    field: str
    document: str
    # ID arguments by name, e.g. {"id"} or {"executionId"}: where an object's id goes.
    id_arguments: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.kind}:{self.field}"


def _literal(type_: GraphQLInputType, ids: dict[str, str], name: str) -> str:
    if isinstance(type_, GraphQLNonNull):
        return _literal(type_.of_type, ids, name)
    if isinstance(type_, GraphQLList):
        return "[]"
    if isinstance(type_, GraphQLEnumType):
        return str(next(iter(type_.values)))
    if isinstance(type_, GraphQLInputObjectType):
        parts = [
            f"{field_name}: {_literal(field.type, ids, field_name)}"
            for field_name, field in type_.fields.items()
            if isinstance(field.type, GraphQLNonNull)
        ]
        return "{" + ", ".join(parts) + "}"
    assert isinstance(type_, GraphQLScalarType)
    if type_.name == "ID":
        return f'"{ids.get(name, ids["*"])}"'
    if type_.name == "Int":
        return "1"
    if type_.name == "Float":
        return "0.5"
    if type_.name == "Boolean":
        return "false"
    return f'"x-{name}"'


def _selection(field: GraphQLField) -> str:
    named = get_named_type(field.type)
    return "" if isinstance(named, GraphQLScalarType | GraphQLEnumType) else " { __typename }"


def build_document(kind: Kind, name: str, field: GraphQLField, ids: dict[str, str]) -> str:
    arguments = [
        f"{arg_name}: {_literal(arg.type, ids, arg_name)}"
        for arg_name, arg in field.args.items()
        if isinstance(arg.type, GraphQLNonNull)
    ]
    args = f"({', '.join(arguments)})" if arguments else ""
    return f"{kind} Op {{ {name}{args}{_selection(field)} }}"


def schema_operations(ids: dict[str, str] | None = None) -> list[Operation]:
    """One operation per root field; ID arguments get `ids[name]`, else `ids["*"]` (default: a
    random id that exists nowhere)."""
    values = {"*": str(uuid.uuid4()), **(ids or {})}
    schema = build_schema(SCHEMA_FILE.read_text())
    found: list[Operation] = []
    roots: list[tuple[Kind, GraphQLObjectType | None]] = [
        ("query", schema.query_type),
        ("mutation", schema.mutation_type),
        ("subscription", schema.subscription_type),
    ]
    for kind, root in roots:
        assert root is not None, kind
        for name, field in root.fields.items():
            id_args = tuple(
                arg_name
                for arg_name, arg in field.args.items()
                if get_named_type(arg.type).name == "ID"
            )
            found.append(Operation(kind, name, build_document(kind, name, field, values), id_args))
    return found


def roles() -> list[Role]:
    return [Role.VIEWER, Role.EDITOR, Role.ADMIN]


def first_error_code(payload: dict[str, Any]) -> str | None:
    errors = payload.get("errors") or []
    return errors[0].get("extensions", {}).get("code") if errors else None
