"""Request errors over HTTP: a request that never reached execution, and how its errors read."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from backend.api.graphql.errors import INTERNAL, UNEXPECTED_ERROR, request_error_code
from backend.api.graphql.extensions import is_expected


def is_request_error(result: ExecutionResult) -> bool:
    """True when the operation never started: parsing, validation or variable coercion failed.

    Strawberry marks the first two (PreExecutionError) but hands variable coercion back as an
    ordinary result with `data: null`; its errors are the only ones that carry no path.
    """
    if isinstance(result, PreExecutionError):
        return True
    errors = result.errors or []
    return result.data is None and bool(errors) and all(error.path is None for error in errors)


def format_request_error(error: GraphQLError) -> dict[str, Any]:
    """A request error with its code; a failure of ours before execution is masked here,
    because it never passes through MaskErrors (Strawberry catches it outside the operation)."""
    if not is_expected(error):
        return {"message": UNEXPECTED_ERROR, "extensions": {"code": INTERNAL}}
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = formatted.get("extensions") or {}
    formatted["extensions"] = {"code": request_error_code(error.message), **extensions}
    return formatted
