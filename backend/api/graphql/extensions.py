"""Schema extensions: query limits checked with validation and cached with it, and error policy.

Limits: `LimitedValidation` measures depth, aliases and fields of the document (limits.py, one
linear pass) before graphql-core validates it, and keeps both results in one LRU cache keyed by
the document, so a document is measured and validated once however often it is sent. A document
over a limit is refused without running graphql-core's rules at all: their cost grows with the
size the limits bound (a 1,101-field document exhausted OverlappingFieldsCanBeMergedRule's
comparison budget and got a bare "Validation aborted.").

Errors: expected errors keep their message and `extensions.code`; anything else that happened while
resolving a field is a bug, already logged with its traceback by `CrewQLSchema.process_errors`,
and is answered as "Unexpected error." with code INTERNAL.

Operation choice: Strawberry runs the first operation of a document sent without `operationName`;
the GraphQL spec (GetOperation) makes that a request error, and so do we.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
)
from graphql.validation import MaxIntrospectionDepthRule
from graphql.validation.validate import ValidationAbortedError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
)
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import validate_document

from backend.api.graphql.authorization import RoleCheck
from backend.api.graphql.errors import INTERNAL, UNEXPECTED_ERROR
from backend.api.graphql.limits import Limits, limit_errors
from backend.api.graphql.persisted import TrustedDocuments
from backend.api.instrumentation import ObserveOperations, traced_operations
from backend.config.settings import Settings
from backend.core.errors import DomainError
from backend.observability import tracing

CACHE_SIZE = 1_000
# graphql-core's message when OverlappingFieldsCanBeMergedRule spent its comparison budget (or
# fragments nest past the interpreter's recursion limit): true, but it does not say what to do.
ABORTED = "Validation aborted."
ABORTED_EXPLAINED = (
    "The document is too complex to validate: it selects too many fields with the same name "
    "in one place (or nests fragments too deeply). Select fewer, or split the operation."
)

Validator = Callable[
    [GraphQLSchema, DocumentNode, tuple[type[ASTValidationRule], ...]], list[GraphQLError]
]


def cached_validator(limits: Limits, maxsize: int = CACHE_SIZE) -> Validator:
    """Limits first, then graphql-core's rules (with Strawberry's and the introspection depth
    rule), both answers cached together; one cache per schema."""

    @lru_cache(maxsize=maxsize)
    def validate(
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        refused = limit_errors(document, limits)
        if refused:
            return refused
        errors = validate_document(schema, document, (*rules, MaxIntrospectionDepthRule))
        return [
            GraphQLError(ABORTED_EXPLAINED, extensions={"code": "GRAPHQL_VALIDATION_FAILED"})
            if isinstance(error, ValidationAbortedError) and error.message == ABORTED
            else error
            for error in errors
        ]

    return validate


class LimitedValidation(SchemaExtension):
    """Replaces Strawberry's validation step (it skips its own when this one set the errors)."""

    def __init__(self, validate: Validator) -> None:
        self.validate = validate

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None  # parsing succeeded, or we are not called
        context.pre_execution_errors = self.validate(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        yield


def is_expected(error: GraphQLError) -> bool:
    """Errors whose text is for the caller: request errors and the ones we raise on purpose."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError | DomainError):
        return True
    if isinstance(
        original, InvalidOperationTypeError | CannotGetOperationTypeError | MissingQueryError
    ):
        return True  # the operation asked for cannot run here, or cannot be found: the caller's
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
    validate = cached_validator(
        Limits(
            depth=settings.max_query_depth, aliases=settings.max_aliases, fields=settings.max_fields
        )
    )
    extensions: list[Callable[[], SchemaExtension] | type] = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=CACHE_SIZE),
        RequireOperationName,
        lambda: LimitedValidation(validate),
        TrustedDocuments,  # after LimitedValidation, whose errors it may replace
        MaskUnexpectedErrors,
        FreshLoadersPerOperation,
        RoleCheck,
        ObserveOperations,
    ]
    if tracing.enabled():
        extensions.append(traced_operations())
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    return extensions
