"""Request errors over HTTP: the answers the view gives instead of running an operation (a JSON
GraphQL error with `extensions.code` and its status, never Strawberry's plain text), the body
limit, and how the errors of a request that never reached execution read."""

from __future__ import annotations

from typing import Any

import orjson
from graphql import GraphQLError
from starlette.responses import Response
from starlette.types import Message, Receive
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from backend.api.graphql.errors import INTERNAL, UNEXPECTED_ERROR, request_error_code
from backend.api.graphql.extensions import is_expected
from backend.api.instrumentation import count_refusal

STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    500: INTERNAL,
}


class BodyTooLarge(Exception):
    pass


def limited_body(receive: Receive, limit: int) -> Receive:
    """`receive` that raises BodyTooLarge once more than `limit` bytes of body have come (a
    chunked body declares no length)."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise BodyTooLarge
        return message

    return limited


def http_error(
    status: int,
    message: str,
    media_type: str,
    *,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
    code: str | None = None,
) -> Response:
    """A refused request as a GraphQL error in the negotiated media type, counted by its code."""
    code = code or STATUS_CODES.get(status, "BAD_REQUEST")
    count_refusal(code)
    body = {"errors": [{"message": message, "extensions": {"code": code, **(extensions or {})}}]}
    if status == 405:
        headers = {"Allow": "GET, POST", **(headers or {})}
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=f"{media_type}; charset=utf-8",
        headers=headers,
    )


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
