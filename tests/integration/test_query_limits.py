"""Query limits (depth, aliases, fields, tokens) refuse abusive documents, and validation stays
cached: a document is measured and validated once, however often it is sent.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, validate

from backend.api.graphql.limits import Limits, limit_errors
from backend.config.settings import Settings
from tests.support.databases import make_settings
from tests.support.graphql import GraphQLClient

MAX_DEPTH = 3
MAX_ALIASES = 2
MAX_TOKENS = 40

WITHIN_LIMITS = "{ a: agents { nodes { id name } } b: crews { nodes { id } } }"
TOO_DEEP = "{ crews { nodes { tasks { agent { name } } } } }"
TOO_DEEP_IN_A_FRAGMENT = """
query { crews { ...Deep } }
fragment Deep on CrewConnection { nodes { tasks { agent { name } } } }"""
TOO_MANY_ALIASES = (
    "{ a: agents { nodes { id } } b: agents { nodes { id } } c: agents { nodes { id } } }"
)
TOO_MANY_TOKENS = "{ agents { nodes { " + " ".join(["id"] * MAX_TOKENS) + " } } }"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url, max_query_depth=MAX_DEPTH, max_aliases=MAX_ALIASES, max_tokens=MAX_TOKENS
    )


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert list(body) == ["errors"], body
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


async def test_a_query_within_the_limits_runs(client: GraphQLClient) -> None:
    data = await client.execute(WITHIN_LIMITS)
    assert data == {"a": {"nodes": []}, "b": {"nodes": []}}


@pytest.mark.parametrize("query", [TOO_DEEP, TOO_DEEP_IN_A_FRAGMENT], ids=["inline", "fragment"])
async def test_too_deep_is_refused(client: GraphQLClient, query: str) -> None:
    response = await client.post(query)
    assert response.status_code == 200
    error = only_error(response.json())
    assert "nests 4 levels deep" in error["message"]
    assert f"the depth limit is {MAX_DEPTH} (CREWQL_MAX_QUERY_DEPTH)" in error["message"]
    assert error["extensions"] == {
        "code": "GRAPHQL_VALIDATION_FAILED",
        "limit": "depth",
        "maximum": MAX_DEPTH,
    }


async def test_too_many_aliases_is_refused(client: GraphQLClient) -> None:
    error = only_error((await client.post(TOO_MANY_ALIASES)).json())
    assert error["message"] == (
        f"The operation uses 3 aliases; the aliases limit is {MAX_ALIASES} (CREWQL_MAX_ALIASES)."
    )
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_too_many_tokens_is_refused(client: GraphQLClient) -> None:
    error = only_error((await client.post(TOO_MANY_TOKENS)).json())
    assert f"more than {MAX_TOKENS} tokens" in error["message"]
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


@pytest.mark.parametrize(
    "query", [TOO_DEEP, TOO_MANY_ALIASES, TOO_MANY_TOKENS], ids=["depth", "aliases", "tokens"]
)
async def test_limits_are_request_errors(client: GraphQLClient, query: str) -> None:
    """Refused before execution: 400 for clients that accept application/graphql-response+json."""
    response = await client.post(query, headers={"accept": "application/graphql-response+json"})
    assert response.status_code == 400
    assert only_error(response.json())["extensions"]["code"].startswith("GRAPHQL_")


class ValidationCalls:
    """Counts what reaches graphql-core's `validate`, the work ValidationCache should save."""

    def __init__(self) -> None:
        self.rule_names: list[set[str]] = []

    def __call__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        self.rule_names.append({rule.__name__ for rule in rules})
        return validate(schema, document, rules)


@pytest.fixture
def validation_calls(monkeypatch: pytest.MonkeyPatch) -> ValidationCalls:
    # `validate_document` (the function ValidationCache wraps in its LRU) looks `validate` up in
    # its module at call time, so this counts cache misses wherever the wrapper was built.
    calls = ValidationCalls()
    monkeypatch.setattr("strawberry.schema.schema.validate", calls)
    return calls


async def test_validation_is_cached_with_the_limits_on(
    client: GraphQLClient, validation_calls: ValidationCalls
) -> None:
    # A query text no other test sends, so that nothing cached it before.
    query = f"query Cached{uuid.uuid4().hex} {{ agents {{ nodes {{ id }} }} }}"
    for _ in range(20):
        await client.execute(query)
    assert len(validation_calls.rule_names) == 1  # one miss, nineteen hits
    assert "MaxIntrospectionDepthRule" in validation_calls.rule_names[0]


async def test_limits_are_measured_once_per_document(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch, validation_calls: ValidationCalls
) -> None:
    """A refused document is measured once and never reaches graphql-core's rules; an accepted
    one is measured once and validated once."""
    measured: list[DocumentNode] = []

    def counting(document: DocumentNode, limits: Limits) -> list[GraphQLError]:
        measured.append(document)
        return limit_errors(document, limits)

    monkeypatch.setattr("backend.api.graphql.extensions.limit_errors", counting)
    deep = f"query Deep{uuid.uuid4().hex} {TOO_DEEP}"
    for _ in range(5):
        error = only_error((await client.post(deep)).json())
        assert "the depth limit is" in error["message"]
    assert len(measured) == 1
    assert validation_calls.rule_names == []
    fine = f"query Fine{uuid.uuid4().hex} {WITHIN_LIMITS}"
    for _ in range(5):
        await client.execute(fine)
    assert len(measured) == 2
    assert len(validation_calls.rule_names) == 1
