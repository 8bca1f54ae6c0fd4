"""Per-request observability of the GraphQL endpoint: metrics, log context and request ids.

Two halves, because what is known where differs:
- `Instrumented` wraps the endpoint's ASGI app: it times each HTTP request, sees its final status
  (including refusals answered before any GraphQL runs: 401, 413, 429 ...), gives every request
  and websocket a request id (the client's `X-Request-ID` when it is a sane one) that every log
  line of it carries, and counts open websockets.
- `ObserveOperations`, a schema extension, sees the operation: its type and name go into the
  request's metrics labels and log context, its errors are counted by code.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Generator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError
from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from backend.api.graphql.errors import INTERNAL, request_error_code
from backend.observability import metrics, tracing

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass
class RequestObservation:
    """What the operation tells the request wrapper (one per HTTP request)."""

    request_id: str
    operation_type: str = "none"
    operation_name: str = metrics.ANONYMOUS
    error_codes: list[str] = field(default_factory=list)


CURRENT: ContextVar[RequestObservation | None] = ContextVar("crewql_request", default=None)


def _headers(scope: Scope) -> dict[str, str]:
    return {bytes(k).decode("latin-1"): bytes(v).decode("latin-1") for k, v in scope["headers"]}


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if _REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


class Instrumented:
    """The endpoint's ASGI app, observed. A class, not a function: Starlette's `Route` treats a
    plain function as a request handler (GET only), an object as an ASGI app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            with (
                metrics.websocket_open(),
                logger.contextualize(request_id=_request_id(scope)),
                tracing.incoming(_headers(scope)),
            ):
                await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        observation = RequestObservation(_request_id(scope))
        token = CURRENT.set(observation)
        status = 500
        started = metrics.monotonic()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", observation.request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            with (
                logger.contextualize(request_id=observation.request_id),
                tracing.incoming(_headers(scope)),
            ):
                await self.app(scope, receive, send_observed)
        finally:
            CURRENT.reset(token)
            metrics.record_http(
                observation.operation_type,
                observation.operation_name,
                status,
                metrics.monotonic() - started,
            )


def error_code(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return code
    if error.path is None:
        return request_error_code(error.message)
    return INTERNAL


def count_refusal(code: str) -> None:
    """A request the view refused before any operation ran (401, 413, 429 ...)."""
    metrics.record_error_codes([code])


class ObserveOperations(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        errors: list[GraphQLError] = list(context.pre_execution_errors or [])
        result = context.result
        if result is not None and result.errors and not errors:
            errors = list(result.errors)
        metrics.record_error_codes([error_code(e) for e in errors])
        observation = CURRENT.get()
        if observation is not None and observation.operation_type == "none":
            self._label(observation)  # refused in validation: still a query or a mutation

    def _label(self, observation: RequestObservation | None) -> tuple[str, str] | None:
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except Exception:  # no document, or no operation of that name in it
            return None
        name = metrics.bounded_operation_name(context.operation_name)
        if observation is not None:
            observation.operation_type, observation.operation_name = kind, name
        return kind, name

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        observation = CURRENT.get()
        labels = self._label(observation)
        if observation is None and labels is not None:
            metrics.WEBSOCKET_OPERATIONS.labels(*labels).inc()
        principal = getattr(context.context, "principal", None)
        workspace = str(principal.workspace_id) if principal is not None else None
        with logger.contextualize(operation=context.operation_name, workspace_id=workspace):
            yield


def traced_operations() -> type[SchemaExtension]:
    """Strawberry's OpenTelemetry extension (one span per operation and resolver), keeping the
    GraphQL document off the operation span unless CREWQL_TRACE_CONTENT allows it: literals in
    a document can be data a caller did not mean to hand to a tracing backend."""
    from strawberry.extensions.tracing import OpenTelemetryExtension

    class TracedOperations(OpenTelemetryExtension):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(arg_filter=tracing.argument_filter, **kwargs)

        def on_operation(self) -> Generator[None, None, None]:
            context = self.execution_context
            document = context.query
            if not tracing.record_content():
                context.query = None  # read by the span's start only; put back before parsing
            steps = super().on_operation()
            try:
                next(steps)
            finally:
                context.query = document
            yield
            next(steps, None)

    return TracedOperations
