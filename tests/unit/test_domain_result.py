"""`@domain_result`: domain errors become union members, and a union that lacks the member for a
declared error is refused when the schema is built, not when a client first meets it."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
import strawberry

from backend.api.graphql.domain_result import check_domain_results, domain_result
from backend.api.graphql.schema import Mutation
from backend.api.graphql.types.errors import ConflictError, NotFoundError
from backend.core.errors import Conflict, InUse, NotFound


@strawberry.type
class Done:
    ok: bool


Result = Annotated[Done | NotFoundError, strawberry.union("CheckResult")]


def test_a_union_without_the_declared_error_is_refused() -> None:
    @strawberry.type
    class Broken:
        @strawberry.mutation
        @domain_result(NotFound, Conflict)
        async def change(self) -> Result:
            return Done(ok=True)

    with pytest.raises(TypeError, match=r"Broken\.change answers Conflict"):
        check_domain_results(Broken)


async def test_declared_errors_are_answers_and_others_propagate() -> None:
    calls: list[str] = []

    @domain_result(NotFound)
    async def missing(what: str) -> Any:
        calls.append(what)
        raise NotFound("Agent", what)

    answer = await missing("x")
    assert isinstance(answer, NotFoundError)
    assert (answer.entity, answer.id) == ("Agent", "x")

    @domain_result(NotFound)
    async def in_use() -> Any:
        raise InUse("Agent", "x", ["task 't'"])

    with pytest.raises(InUse):  # not declared: a bug, logged and masked by the schema
        await in_use()
    assert calls == ["x"]


def test_the_schemas_mutations_pass_the_check() -> None:
    check_domain_results(Mutation)  # what build_schema relies on; raises on a mismatch


async def test_strawberry_runs_a_decorated_resolver() -> None:
    schema = strawberry.Schema(query=_Query, mutation=_Mutation)
    result = await schema.execute(
        'mutation { deleteThing(id: "1") { __typename ... on ConflictError { message } } }'
    )
    assert result.errors is None
    assert result.data == {"deleteThing": {"__typename": "ConflictError", "message": "busy"}}


@strawberry.type
class _Query:
    hello: str = "hi"


DeleteResult = Annotated[Done | NotFoundError | ConflictError, strawberry.union("DeleteThing")]


@strawberry.type
class _Mutation:
    @strawberry.mutation
    @domain_result(NotFound, Conflict)
    async def delete_thing(self, id: strawberry.ID) -> DeleteResult:
        raise Conflict("busy")
