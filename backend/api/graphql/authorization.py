"""Roles, checked once per operation, and the audit line of every mutation.

`RoleCheck` runs after parsing and validation, before any resolver: it finds the operation that
will run, names its root fields (expanding root-level fragments) and asks `required_role` what
they need. One check per operation, whatever the result's size, on every transport (HTTP,
both websocket protocols, `schema.execute` and `schema.subscribe`).

`AuditMutation` is a field extension on the Mutation type's fields only (root fields, so a
handful per request, never per list item): each mutation field logs one audit line with its
outcome, `ok` or the code of its typed error result or of the error it raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import FieldExtension, SchemaExtension
from strawberry.types import Info

from backend.api.graphql.errors import ClientError
from backend.core.audit import audit
from backend.core.auth import OperationKind, Unauthenticated, required_role
from backend.core.errors import DomainError
from backend.core.identity import Forbidden, Principal

FORBIDDEN = "FORBIDDEN"


def principal_of(context: object) -> Principal | None:
    principal = getattr(context, "principal", None)
    return principal if isinstance(principal, Principal) else None


def find_operation(definitions: Any, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    for operation in operations:
        if operation.name is not None and operation.name.value == operation_name:
            return operation
    return None


def root_field_names(
    selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]
) -> set[str]:
    """The root fields an operation selects, through fragment spreads and inline fragments
    (each fragment expanded once, so a cycle cannot loop; validation refuses cycles anyway)."""
    names: set[str] = set()
    seen: set[str] = set()

    def walk(selections: SelectionSetNode) -> None:
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in seen:
                    seen.add(name)
                    walk(fragment.selection_set)

    walk(selection_set)
    return names


class RoleCheck(SchemaExtension):
    """Refuses an operation the caller's role may not run, before any resolver starts."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            operation = find_operation(document.definitions, context.operation_name)
            if operation is not None:
                self._check(operation, document.definitions)
        yield

    def _check(self, operation: OperationDefinitionNode, definitions: Any) -> None:
        kind: OperationKind = operation.operation.value
        fragments = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
        fields = root_field_names(operation.selection_set, fragments)
        principal = principal_of(self.execution_context.context)
        name = operation.name.value if operation.name else None
        if principal is None:
            # A context without a caller (a transport we did not authenticate): refuse.
            error = Unauthenticated("no principal")
            raise ClientError(error.message, error.code)
        needed = required_role(kind, fields)
        if principal.may(needed):
            return
        refusal = Forbidden(needed, principal.role, name or ", ".join(sorted(fields)))
        audit(
            operation=name or ",".join(sorted(fields)),
            outcome=FORBIDDEN,
            principal=principal,
            detail=f"needs:{needed}",
        )
        raise ClientError(refusal.message, FORBIDDEN)


def outcome_of(result: object) -> str:
    """`ok`, or the code of a typed error result (every error type has a `code`)."""
    code = getattr(result, "code", None)
    return code if isinstance(code, str) else "ok"


class AuditMutation(FieldExtension):
    """One audit line per mutation field: workspace, key prefix, field, outcome."""

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: Info[Any, Any], **kwargs: Any
    ) -> Any:  # pragma: no cover - every mutation resolver is async
        return next_(source, info, **kwargs)

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: Info[Any, Any],
        **kwargs: Any,
    ) -> Any:
        principal = principal_of(info.context)
        operation = info.field_name
        try:
            result = await next_(source, info, **kwargs)
        except GraphQLError as error:
            code = (error.extensions or {}).get("code", "ERROR")
            audit(operation=operation, outcome=str(code), principal=principal)
            raise
        except DomainError as error:
            audit(operation=operation, outcome=error.code, principal=principal)
            raise
        except Exception:
            audit(operation=operation, outcome="INTERNAL", principal=principal)
            raise
        audit(operation=operation, outcome=outcome_of(result), principal=principal)
        return result


def audit_mutations(mutation_type: type) -> None:
    """Adds AuditMutation to every field of the (merged) Mutation type, once."""
    definition = mutation_type.__strawberry_definition__  # type: ignore[attr-defined]
    for field in definition.fields:
        if not any(isinstance(ext, AuditMutation) for ext in field.extensions):
            field.extensions.append(AuditMutation())
