"""Domain errors as typed results: one decorator for every mutation, checked when the schema is
built.

A mutation's expected failures are members of its result union (`UpdateTaskResult = Task |
ValidationError | NotFoundError | ConflictError`). `@domain_result(NotFound, Conflict, ...)`
names the domain errors a resolver answers with; when the service raises one of them, the
resolver returns its GraphQL type instead. `check_domain_results` runs while the schema is
built and refuses a field whose union lacks the type of an error its resolver declares, so the
mismatch fails at start-up (and in every test), not as an INTERNAL error for one unlucky client.
A domain error the resolver did not declare is a bug: it propagates and is logged and masked.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from strawberry.types import get_object_definition
from strawberry.types.union import StrawberryUnion

from backend.api.graphql.errors import ERROR_TYPES, error_result
from backend.core.errors import DomainError

P = ParamSpec("P")
R = TypeVar("R")

_DECLARED = "__domain_errors__"


def domain_result(
    *errors: type[DomainError],
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    unknown = [e.__name__ for e in errors if e not in ERROR_TYPES]
    if unknown or not errors:
        raise TypeError(f"@domain_result needs domain errors with a GraphQL type: {unknown}")

    def decorate(resolver: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(resolver)
        async def answer(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await resolver(*args, **kwargs)
            except errors as error:
                result: R = error_result(error)
                return result

        setattr(answer, _DECLARED, errors)
        return answer

    return decorate


def check_domain_results(*types: type) -> None:
    """Every field whose resolver is a `@domain_result` returns a union holding the GraphQL type
    of each error it declares; raises TypeError naming the first field that does not."""
    for owner in types:
        definition = get_object_definition(owner, strict=True)
        for field in definition.fields:
            resolver = field.base_resolver
            declared: tuple[type[DomainError], ...] = getattr(
                resolver.wrapped_func if resolver else None, _DECLARED, ()
            )
            if not declared:
                continue
            members: tuple[Any, ...] = ()
            if isinstance(field.type, StrawberryUnion):
                members = tuple(field.type.types)
            missing = [e.__name__ for e in declared if ERROR_TYPES[e] not in members]
            if missing:
                raise TypeError(
                    f"{owner.__name__}.{field.python_name} answers {', '.join(missing)} as a "
                    f"typed result, but its union {field.type} has no member for it"
                )
