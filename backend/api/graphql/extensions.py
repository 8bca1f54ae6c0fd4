"""Schema extensions: query limits that keep the validation cache working, and error policy.

Limits: the depth and alias rules are built once per schema and registered through
`AddValidationRules`; the factory forms of QueryDepthLimiter/MaxAliasesLimiter would build a new
rule class per request, which defeats ValidationCache (notes/strawberry.md §1.6).

Errors: expected errors keep their message and `extensions.code`; anything else that happened while
resolving a field is a bug, already logged with its traceback by `CrewQLSchema.process_errors`,
and is answered as "Unexpected error." with code INTERNAL.

Operation choice: Strawberry runs the first operation of a document sent without `operationName`;
the GraphQL spec (GetOperation) makes that a request error, and so do we.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from graphql import ASTValidationRule, GraphQLError, OperationDefinitionNode
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from backend.api.graphql.authorization import RoleCheck
from backend.api.graphql.errors import INTERNAL, UNEXPECTED_ERROR
from backend.config.settings import Settings
from backend.core.errors import DomainError

CACHE_SIZE = 1_000


def is_expected(error: GraphQLError) -> bool:
    """Errors whose text is for the caller: request errors and the ones we raise on purpose."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError | DomainError):
        return True
    if isinstance(original, InvalidOperationTypeError):
        return True  # e.g. a query sent over the legacy graphql-ws protocol (subscriptions only)
    # A scalar that rejects a literal the caller wrote may raise a plain ValueError; graphql-core
    # locates that error at the literal. A plain exception with neither a location nor a path
    # comes from our code outside any field (an extension, the executor): a bug, like one in a
    # resolver.
    return error.path is None and bool(error.nodes)


class MaskUnexpectedErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(
            should_mask_error=lambda error: not is_expected(error), error_message=UNEXPECTED_ERROR
        )

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": INTERNAL}
        return masked


class OperationNameRequired(CannotGetOperationTypeError):
    """Raised as Strawberry's own "unknown operation" error, so every transport answers it alike
    (HTTP 400, websocket close 4400) without code of ours in each."""

    def __init__(self) -> None:
        super().__init__(None)

    def as_http_error_reason(self) -> str:
        return "The document has several operations; name the one to run in `operationName`."


class RequireOperationName(SchemaExtension):
    """Refuses to guess which operation of a multi-operation document the caller meant."""

    def on_parse(self) -> Iterator[None]:
        yield
        context = self.execution_context
        document = context.graphql_document
        # Strawberry keeps the requested name only privately (`operation_name` falls back to the
        # first operation's); if that attribute ever goes, the check is off, and a test says so.
        if document is None or getattr(context, "_provided_operation_name", "") is not None:
            return
        operations = sum(isinstance(node, OperationDefinitionNode) for node in document.definitions)
        if operations > 1:
            raise OperationNameRequired


class FreshLoadersPerOperation(SchemaExtension):
    """A websocket shares one context between its operations; give each fresh DataLoaders."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if hasattr(context, "request") and context.request.scope["type"] == "websocket":
            context.renew_loaders()
        yield


def build_extensions(settings: Settings) -> list[Callable[[], SchemaExtension] | type]:
    rules: list[type[ASTValidationRule]] = [
        depth_rule(max_depth=settings.max_query_depth, should_ignore=None),
        alias_rule(max_alias_count=settings.max_aliases),
    ]
    extensions: list[Callable[[], SchemaExtension] | type] = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=CACHE_SIZE),
        RequireOperationName,
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        MaskUnexpectedErrors,
        FreshLoadersPerOperation,
        RoleCheck,
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    return extensions
