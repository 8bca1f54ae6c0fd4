"""Input the databases cannot store is refused at the edge, naming the field, on both databases.

NUL (PostgreSQL cannot store it in text or jsonb), unpaired surrogates (not UTF-8), text over
the length settings, and date-times that overflow once converted to UTC were answered INTERNAL,
or accepted and then failed the execution. Mutations answer a ValidationError naming the field;
queries and subscriptions a BAD_USER_INPUT error naming it. Nothing reaches a service, and the
log holds no ERROR line or traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backend.config.settings import Settings
from tests.support.databases import make_settings
from tests.support.graphql import GraphQLClient
from tests.support.server_log import error_lines

MAX_FILTER = 50
MAX_TEXT = 2_000
NUL = "a\u0000b"

CREATE_AGENT = """
mutation($input: AgentCreateInput!) {
  createAgent(input: $input) {
    __typename
    ... on ValidationError { code message fields { field message } }
  }
}"""
CREATE_EXECUTION = """
mutation($input: ExecutionCreateInput!) {
  createExecution(input: $input) {
    __typename
    ... on ValidationError { code message fields { field message } }
  }
}"""
AGENTS = "query($filter: NameTimeFilter) { agents(filter: $filter) { nodes { id } } }"

AGENT = {"name": "n", "role": "r", "goal": "g"}
INLINE_CREW = {
    "name": "c",
    "agents": [{"name": "a", "role": "r", "goal": "g"}],
    "tasks": [{"name": "t", "description": "d", "expectedOutput": "o", "agent": "a"}],
}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, max_filter_chars=MAX_FILTER, max_string_chars=MAX_TEXT)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    with error_lines() as lines:
        yield lines
    assert lines == []


def validation_error(data: dict[str, Any], field: str) -> str:
    (result,) = data.values()
    assert result["__typename"] == "ValidationError", result
    assert result["code"] == "VALIDATION_FAILED"
    assert [f["field"] for f in result["fields"]] == [field], result
    message: str = result["fields"][0]["message"]
    return message


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("name", NUL, "NUL"),
        ("role", NUL, "NUL"),
        ("backstory", NUL, "NUL"),
        ("llm", NUL, "NUL"),
        ("goal", "x" * (MAX_TEXT + 1), "CREWQL_MAX_STRING_CHARS"),
    ],
)
async def test_agent_text_the_database_cannot_store_is_a_validation_error(
    client: GraphQLClient, logs: list[str], field: str, value: str, says: str
) -> None:
    data = await client.execute(CREATE_AGENT, {"input": {**AGENT, field: value}})
    assert says in validation_error(data, field)


async def test_a_literal_is_checked_like_a_variable(client: GraphQLClient, logs: list[str]) -> None:
    literal = 'mutation { createAgent(input: {name: "a\\u0000", role: "r", goal: "g"}) '
    data = await client.execute(
        literal + "{ __typename ... on ValidationError { code fields { field message } } } }"
    )
    assert "NUL" in validation_error(data, "name")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"inputs": {"topic": NUL}}, "inputs.topic"),
        ({"inputs": {NUL: "x"}}, "inputs.'a\\x00b'"),
        ({"inputs": {"deep": [{"x": [NUL]}]}}, "inputs.deep.0.x.0"),
        ({"idempotencyKey": NUL}, "idempotencyKey"),
        ({"crew": {**INLINE_CREW, "name": NUL}}, "crew.name"),
    ],
)
async def test_execution_input_the_database_cannot_store_is_refused_before_launch(
    client: GraphQLClient, logs: list[str], extra: dict[str, Any], field: str
) -> None:
    base: dict[str, Any] = {"crew": INLINE_CREW}
    data = await client.execute(CREATE_EXECUTION, {"input": {**base, **extra}})
    validation_error(data, field)
    listed = await client.execute("{ executions { nodes { id } } }")
    assert listed == {"executions": {"nodes": []}}  # nothing was launched, so nothing can fail


async def test_a_lone_surrogate_is_refused_however_it_is_sent(
    client: GraphQLClient, logs: list[str]
) -> None:
    """Not UTF-8, so no driver could send it: the JSON parser and the GraphQL parser refuse it
    before the argument check (which refuses it too) is reached."""
    body = '{"query": "{ agents(filter: {nameContains: \\"x\\"}) { nodes { id } } }", '
    body += '"variables": {"v": "a\\ud800"}}'
    response = await client.http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    literal = await client.post('{ agents(filter: {nameContains: "a\\uD800"}) { nodes { id } } }')
    (error,) = literal.json()["errors"]
    assert error["extensions"]["code"] in ("GRAPHQL_PARSE_FAILED", "BAD_USER_INPUT"), error


async def test_deeply_nested_json_is_refused(client: GraphQLClient, logs: list[str]) -> None:
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    data = await client.execute(
        CREATE_EXECUTION, {"input": {"crew": INLINE_CREW, "inputs": {"x": deep}}}
    )
    assert "deeper than" in validation_error(data, "inputs.x" + ".0" * 31)


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ({"nameContains": NUL}, "NUL"),
        ({"nameContains": "x" * (MAX_FILTER + 1)}, "CREWQL_MAX_FILTER_CHARS"),
        ({"nameContains": "x" * 900_000}, "CREWQL_MAX_FILTER_CHARS"),
        ({"createdBefore": "9999-12-31T23:59:59-23:59"}, "years 1 to 9999"),
        ({"createdAfter": "0001-01-01T00:00:00+23:59"}, "years 1 to 9999"),
    ],
)
async def test_a_filter_the_database_cannot_use_is_bad_user_input(
    client: GraphQLClient, logs: list[str], condition: dict[str, str], says: str
) -> None:
    response = await client.post(AGENTS, {"filter": condition})
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == "filter." + next(iter(condition))
    assert says in error["message"]


async def test_ordinary_input_still_works(client: GraphQLClient, logs: list[str]) -> None:
    data = await client.execute(
        CREATE_AGENT, {"input": {**AGENT, "backstory": "tabs\tand\nnew lines, ünïcödé, 🚀"}}
    )
    assert data["createAgent"]["__typename"] == "Agent"
    edge = {"filter": {"createdAfter": "0001-01-02T00:00:00+00:00", "nameContains": "n"}}
    assert (await client.post(AGENTS, edge)).json()["data"]["agents"]["nodes"]
