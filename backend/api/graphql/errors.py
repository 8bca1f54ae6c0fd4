"""GraphQL errors with a stable `extensions.code`, and domain errors as typed results."""

from __future__ import annotations

from typing import Any

import strawberry
from cross_web import HTTPException
from graphql import GraphQLError
from strawberry.utils.str_converters import to_camel_case

from backend.api.graphql.mirror import camel_problems
from backend.api.graphql.types.errors import (
    ConflictError,
    FieldError,
    InUseError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)
from backend.core.errors import (
    Conflict,
    DomainError,
    InUse,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from backend.schemas import ExecutionStatus

BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL = "INTERNAL"
# What a caller sees instead of a bug's message (the bug itself goes to the log).
UNEXPECTED_ERROR = "Unexpected error."


class CodedHTTPException(HTTPException):
    """A request refused before execution, with a code more precise than its status's."""

    def __init__(self, status_code: int, reason: str, code: str) -> None:
        super().__init__(status_code, reason)
        self.code = code


class ClientError(GraphQLError):
    """An error the caller caused; shown as is (never masked), with its code."""

    def __init__(self, message: str, code: str = BAD_USER_INPUT, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": code, **extensions})


# The GraphQL type each domain error is answered with (as a member of a mutation's union).
ERROR_TYPES: dict[type[DomainError], type] = {
    ValidationFailed: ValidationError,
    NotFound: NotFoundError,
    Conflict: ConflictError,
    InvalidTransition: InvalidTransitionError,
    InUse: InUseError,
}


def error_result(error: DomainError) -> Any:
    """The schema's typed result for a domain error raised by a service."""
    if isinstance(error, ValidationFailed):
        fields = [FieldError(field=p.field, message=p.message) for p in camel_problems(error)]
        return ValidationError(code=error.code, message=error.message, fields=fields)
    if isinstance(error, NotFound):
        return NotFoundError(
            code=error.code,
            message=error.message,
            entity=error.entity,
            id=strawberry.ID(error.entity_id),
        )
    if isinstance(error, Conflict):
        field = to_camel_case(error.field) if error.field else None
        return ConflictError(code=error.code, message=error.message, field=field)
    if isinstance(error, InvalidTransition):
        return InvalidTransitionError(
            code=error.code,
            message=error.message,
            current_status=ExecutionStatus(error.current_status),
        )
    if isinstance(error, InUse):
        return InUseError(code=error.code, message=error.message, used_by=error.used_by)
    raise error


def request_error_code(message: str) -> str:
    if message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    # graphql-core's variable coercion: "Variable '$x' has invalid value…", "Variable values are
    # nested too deeply.", "Too many errors processing variables…".
    if message.startswith(("Variable ", "Too many errors processing variables")):
        return BAD_USER_INPUT
    return "GRAPHQL_VALIDATION_FAILED"
