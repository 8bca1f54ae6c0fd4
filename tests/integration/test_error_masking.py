"""Bugs are masked and logged; the caller's own mistakes are told to the caller as they are.

A bug's message, type and traceback go to the log only; the response says "Unexpected error." with
code INTERNAL. Typed results (union payloads) and client errors keep their message and code.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from loguru import logger
from starlette.applications import Starlette

from backend.api.graphql.view import GraphQLView
from tests.support.factories import create_agent
from tests.support.graphql import GraphQLClient

if TYPE_CHECKING:
    from loguru import Message

SECRET = "secret detail"
LIST_AGENTS = "query ListAgents { agents { nodes { id } } }"
CREATE_AGENT = """
mutation CreateAgent($input: AgentCreateInput!) {
  createAgent(input: $input) {
    __typename
    ... on Agent { id }
    ... on Error { code message }
    ... on ValidationError { fields { field message } }
  }
}"""
AGENT_INPUT = {"name": "Ada", "role": "r", "goal": "g"}


@pytest.fixture
def logged() -> Iterator[list[Message]]:
    messages: list[Message] = []
    sink = logger.add(messages.append, level="DEBUG", format="{level} {message}")
    yield messages
    logger.remove(sink)


def errors_logged(messages: list[Message]) -> list[Message]:
    return [m for m in messages if m.record["level"].no >= logger.level("ERROR").no]


async def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(SECRET)


def assert_masked(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    for leak in (SECRET, "RuntimeError", "Traceback", "boom"):
        assert leak not in response.text
    body: dict[str, Any] = response.json()
    [error] = body["errors"]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {"code": "INTERNAL"}
    return body


def assert_logged_with_traceback(messages: list[Message]) -> None:
    [message] = errors_logged(messages)
    exception = message.record["exception"]
    assert exception is not None
    assert exception.type is RuntimeError
    assert SECRET in str(message)
    assert "Traceback" in str(message)


# ----------------------------------------------------------------------------- bugs


async def test_a_failing_query_resolver_is_masked_and_logged(
    app: Starlette, client: GraphQLClient, logged: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.services.crews, "list_agents", boom)
    body = assert_masked(await client.post(LIST_AGENTS))
    assert body["data"] is None
    assert body["errors"][0]["path"] == ["agents"]
    assert_logged_with_traceback(logged)
    assert "ListAgents" in str(errors_logged(logged)[0])  # the operation, for the reader of logs


async def test_a_failing_mutation_is_masked_and_logged(
    app: Starlette, client: GraphQLClient, logged: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.services.crews, "create_agent", boom)
    body = assert_masked(await client.post(CREATE_AGENT, {"input": AGENT_INPUT}))
    assert body["data"] is None
    assert body["errors"][0]["path"] == ["createAgent"]
    assert_logged_with_traceback(logged)


async def test_a_bug_beside_good_fields_masks_only_its_own(
    app: Starlette, client: GraphQLClient, logged: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_agent(client, "Ada")
    monkeypatch.setattr(app.state.services.crews, "crew_graph", boom)
    query = f'{{ agents {{ nodes {{ name }} }} crew(id: "{uuid.uuid4()}") {{ id }} }}'
    body = assert_masked(await client.post(query))
    assert body["data"] == {"agents": {"nodes": [{"name": "Ada"}]}, "crew": None}
    assert body["errors"][0]["path"] == ["crew"]
    assert_logged_with_traceback(logged)


@pytest.mark.parametrize(
    ("accept", "status"),
    [("application/json", 200), ("application/graphql-response+json", 500)],
)
async def test_a_bug_before_execution_is_masked_and_logged(
    client: GraphQLClient,
    logged: list[Message],
    monkeypatch: pytest.MonkeyPatch,
    accept: str,
    status: int,
) -> None:
    """A failure of ours while validating never reaches MaskErrors; the view masks it."""

    def failing_validate(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(SECRET)

    monkeypatch.setattr("strawberry.schema.schema.validate", failing_validate)
    query = "query NeverValidatedBefore { agents { nodes { name role } } }"
    response = await client.post(query, headers={"accept": accept})
    body = assert_masked(response, status)
    assert "data" not in body
    assert_logged_with_traceback(logged)


async def test_a_bug_outside_graphql_is_a_json_500(
    client: GraphQLClient, logged: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not Starlette's plain-text "Internal Server Error": clients still get GraphQL JSON."""
    monkeypatch.setattr(GraphQLView, "get_context", boom)
    response = await client.post(LIST_AGENTS)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = assert_masked(response, 500)
    assert "data" not in body
    assert_logged_with_traceback(logged)


# ----------------------------------------------------------------------------- not bugs


async def test_a_typed_validation_result_is_not_masked(
    client: GraphQLClient, logged: list[Message]
) -> None:
    result = await client.execute(CREATE_AGENT, {"input": {**AGENT_INPUT, "name": " "}})
    created = result["createAgent"]
    assert created["__typename"] == "ValidationError"
    assert created["code"] == "VALIDATION_FAILED"
    assert [field["field"] for field in created["fields"]] == ["name"]
    assert errors_logged(logged) == []


async def test_a_typed_conflict_is_not_masked(client: GraphQLClient, logged: list[Message]) -> None:
    await client.execute(CREATE_AGENT, {"input": AGENT_INPUT})
    again = (await client.execute(CREATE_AGENT, {"input": AGENT_INPUT}))["createAgent"]
    assert again["__typename"] == "ConflictError"
    assert again["code"] == "CONFLICT"
    assert errors_logged(logged) == []


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("{ agents(first: 1000) { nodes { id } } }", "`first` must be between 0 and"),
        ('{ agents(after: "not-a-cursor") { nodes { id } } }', "`after` is not a cursor"),
    ],
    ids=["page-size", "cursor"],
)
async def test_client_errors_are_not_masked(
    client: GraphQLClient, logged: list[Message], query: str, words: str
) -> None:
    response = await client.post(query)
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert words in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["agents"]
    assert errors_logged(logged) == []


async def test_a_bad_scalar_is_told_not_masked(
    client: GraphQLClient, logged: list[Message]
) -> None:
    literal = '{ agents(filter: {createdAfter: "yesterday"}) { nodes { id } } }'
    variable = "query($t: DateTime) { agents(filter: {createdAfter: $t}) { nodes { id } } }"
    for response in (
        await client.post(literal),
        await client.post(variable, {"t": "yesterday"}),
    ):
        [error] = response.json()["errors"]
        assert "DateTime" in error["message"]
        assert error["extensions"]["code"] != "INTERNAL"
    assert errors_logged(logged) == []
