"""The GraphQL schema: every domain's queries and mutations merged, with our extensions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from loguru import logger
from strawberry.exceptions import MissingQueryError
from strawberry.schema.schema import StreamResult
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.aio import aclosing

from backend.api.graphql.authorization import audit_mutations
from backend.api.graphql.domain_result import check_domain_results
from backend.api.graphql.errors import INTERNAL, UNEXPECTED_ERROR, request_error_code
from backend.api.graphql.extensions import build_extensions, is_expected
from backend.api.graphql.resolvers.agents import AgentMutation, AgentQuery
from backend.api.graphql.resolvers.api_keys import ApiKeyMutation, ApiKeyQuery
from backend.api.graphql.resolvers.caller import CallerQuery
from backend.api.graphql.resolvers.crewai import CrewaiMutation, CrewaiQuery
from backend.api.graphql.resolvers.crews import CrewMutation, CrewQuery
from backend.api.graphql.resolvers.executions import (
    ExecutionCountQuery,
    ExecutionMutation,
    ExecutionQuery,
    ExecutionSubscription,
)
from backend.api.graphql.resolvers.secrets import SecretMutation, SecretQuery
from backend.api.graphql.resolvers.tasks import TaskMutation, TaskQuery
from backend.api.graphql.resolvers.tools import ToolMutation, ToolQuery
from backend.api.graphql.resolvers.usage import UsageQuery
from backend.api.graphql.shared_events import SharingExecutionContext
from backend.api.graphql.storable import check_arguments
from backend.config.settings import Settings

Query = merge_types(
    "Query",
    (
        AgentQuery,
        TaskQuery,
        CrewQuery,
        CrewaiQuery,
        ExecutionQuery,
        ExecutionCountQuery,
        UsageQuery,
        ApiKeyQuery,
        CallerQuery,
        SecretQuery,
        ToolQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AgentMutation,
        TaskMutation,
        CrewMutation,
        CrewaiMutation,
        ExecutionMutation,
        ApiKeyMutation,
        SecretMutation,
        ToolMutation,
    ),
)
# Every mutation logs one audit line (authorization.py); added here so none can be forgotten.
audit_mutations(Mutation)
# Every typed domain-error answer has its member in the field's union (domain_result.py).
check_domain_results(Mutation)
Subscription = merge_types("Subscription", (ExecutionSubscription,))


# graphql-core quotes a variable's rejected value in its message ("Variable '$value' got invalid
# value" or "has invalid value: ..."). The caller sees it (it is theirs); the log does not,
# since the variable may be a secret (`setSecret(value:)`).
_QUOTED_VALUE = re.compile(r"^(Variable '\$\w+' (?:got|has) (?:an )?invalid value).*$", re.DOTALL)


def loggable(message: str) -> str:
    return _QUOTED_VALUE.sub(r"\1 (not logged)", message)


class CrewQLSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Logs each error, and gives every error a code and a safe message in place, so that
        websocket transports (which format errors themselves) answer like HTTP does."""
        operation = execution_context.operation_name if execution_context else None
        for error in errors:
            if is_expected(error):
                logger.debug(
                    "GraphQL request error in {}: {}", operation or "-", loggable(error.message)
                )
                if error.path is None and not (error.extensions or {}).get("code"):
                    code = request_error_code(error.message)
                    error.extensions = {**(error.extensions or {}), "code": code}
                continue
            original = error.original_error
            logger.opt(exception=original).error(
                "unexpected error in operation {} at {}: {!r}",
                operation or "<anonymous>",
                ".".join(map(str, error.path or [])),
                original,
            )
            error.message = UNEXPECTED_ERROR
            error.extensions = {"code": INTERNAL}

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        """Strawberry's stream (both websocket protocols and HTTP streams run on it), with every
        request error answered as a first result instead of raised: a syntax error found by
        the parser cache escapes Strawberry's stream as an exception (graphql-transport-ws then
        sent a bare `complete`, the legacy protocol nothing). Request errors leave as plain
        GraphQL errors, so transports answer each with an `error` message carrying it rather
        than closing the socket."""
        source = await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
        )
        return self._answered(source)

    async def _answered(self, source: StreamResult) -> StreamResult:
        async with aclosing(source):
            try:
                first = await anext(source)
            except StopAsyncIteration:
                return
            except (GraphQLError, MissingQueryError) as raised:
                error = (
                    raised
                    if isinstance(raised, GraphQLError)
                    else GraphQLError("No GraphQL query found in the request.")
                )
                first = PreExecutionError(data=None, errors=[error])
                self.process_errors([error])
            if isinstance(first, PreExecutionError):
                first = PreExecutionError(data=None, errors=list(map(plain, first.errors or [])))
            yield first
            async for result in source:
                yield result


def plain(error: GraphQLError) -> GraphQLError:
    """The same error without its subclass or cause: what the client sees, nothing else."""
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=error.extensions,
    )


def build_schema(settings: Settings, **kwargs: Any) -> CrewQLSchema:
    # Before conversion: each schema captures the argument check built with its settings.
    check_arguments(settings, Query, Mutation, Subscription)
    return CrewQLSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=build_extensions(settings),
        execution_context_class=SharingExecutionContext,
        **kwargs,
    )
