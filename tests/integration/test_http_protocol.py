"""GraphQL over HTTP (graphql.github.io/graphql-over-http): every rule a client relies on.

Whatever goes wrong, the answer is JSON in the GraphQL shape `{"errors": [{"message", "extensions":
{"code"}}]}` with `charset=utf-8`: never Starlette's plain text, never a 500 for a caller's mistake.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from backend.config.settings import Settings
from tests.support.databases import make_settings
from tests.support.factories import create_agent
from tests.support.graphql import GraphQLClient

BODY_LIMIT = 2_048
GRAPHQL_RESPONSE = "application/graphql-response+json"
ACCEPT_JSON = {"accept": "application/json"}
ACCEPT_GRAPHQL_RESPONSE = {"accept": GRAPHQL_RESPONSE}

AGENT_NAMES = "query Names { agents { nodes { name } } }"
CREATE_AGENT = """
mutation Create($input: AgentCreateInput!) { createAgent(input: $input) { __typename } }"""
PAGE = "query Page($first: Int) { agents(first: $first) { nodes { name } } }"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """A small body limit, so that the 413 tests need no megabyte bodies."""
    return make_settings(database_url, max_body_bytes=BODY_LIMIT)


def media_type(response: httpx.Response) -> str:
    content_type = response.headers["content-type"]
    assert content_type.endswith("; charset=utf-8"), content_type
    return content_type.split(";")[0]


def error_body(response: httpx.Response, status: int, code: str) -> list[dict[str, Any]]:
    """Asserts the GraphQL error shape (no `data`, every error with a message and the code)."""
    assert response.status_code == status, response.text
    assert media_type(response) in ("application/json", GRAPHQL_RESPONSE)
    body = response.json()
    assert list(body) == ["errors"], body
    errors: list[dict[str, Any]] = body["errors"]
    assert errors
    for error in errors:
        assert isinstance(error["message"], str)
        assert error["message"]
        assert error["extensions"]["code"] == code, error
    return errors


async def agent_names(client: GraphQLClient) -> list[str]:
    data = await client.execute(AGENT_NAMES)
    return [node["name"] for node in data["agents"]["nodes"]]


# ----------------------------------------------------------------------------- what works


async def test_post_json_runs_a_query(client: GraphQLClient) -> None:
    await create_agent(client, "Ada")
    response = await client.post(AGENT_NAMES)
    assert response.status_code == 200
    assert media_type(response) == "application/json"
    assert response.json() == {"data": {"agents": {"nodes": [{"name": "Ada"}]}}}


async def test_post_accepts_json_with_parameters_in_any_case(http: httpx.AsyncClient) -> None:
    body = json.dumps({"query": AGENT_NAMES}).encode()
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "Application/JSON; Charset=UTF-8"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"agents": {"nodes": []}}}


async def test_get_runs_a_query_with_variables_and_operation_name(
    client: GraphQLClient, http: httpx.AsyncClient
) -> None:
    for name in ("Ada", "Grace"):
        await create_agent(client, name)
    params = {
        "query": f"{PAGE} {AGENT_NAMES}",
        "operationName": "Page",
        "variables": json.dumps({"first": 1}),
    }
    response = await http.get("/graphql", params=params, headers=ACCEPT_JSON)
    assert response.status_code == 200, response.text
    assert media_type(response) == "application/json"
    assert response.json() == {"data": {"agents": {"nodes": [{"name": "Grace"}]}}}


async def test_graphql_response_json_is_answered_in_kind(client: GraphQLClient) -> None:
    response = await client.post(AGENT_NAMES, headers=ACCEPT_GRAPHQL_RESPONSE)
    assert response.status_code == 200
    assert media_type(response) == GRAPHQL_RESPONSE
    assert response.json() == {"data": {"agents": {"nodes": []}}}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        ("APPLICATION/GRAPHQL-RESPONSE+JSON", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0, application/json", "application/json"),
        (f"{GRAPHQL_RESPONSE};q=0.0, */*", "application/json"),
        ("*/*", "application/json"),
        ("application/xml", "application/json"),
    ],
)
async def test_accept_header_chooses_the_media_type(
    client: GraphQLClient, accept: str, expected: str
) -> None:
    response = await client.post(AGENT_NAMES, headers={"accept": accept})
    assert response.status_code == 200
    assert media_type(response) == expected


async def test_a_field_error_is_not_a_request_error(client: GraphQLClient) -> None:
    """`data: null` after execution started stays 200 even for graphql-response+json."""
    response = await client.post(PAGE, {"first": 1000}, headers=ACCEPT_GRAPHQL_RESPONSE)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["path"] == ["agents"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# ----------------------------------------------------------------------------- methods


async def test_a_mutation_over_get_is_405_and_does_not_run(
    client: GraphQLClient, http: httpx.AsyncClient
) -> None:
    params = {
        "query": CREATE_AGENT,
        "variables": json.dumps({"input": {"name": "Sneaky", "role": "r", "goal": "g"}}),
    }
    response = await http.get("/graphql", params=params, headers=ACCEPT_JSON)
    error_body(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["allow"]
    assert await agent_names(client) == []


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(http: httpx.AsyncClient, method: str) -> None:
    response = await http.request(method, "/graphql", json={"query": AGENT_NAMES})
    error_body(response, 405, "METHOD_NOT_ALLOWED")
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "POST"}


# ----------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"query": "{ agents { nodes { id } } }"', b"\xff\xfe", b""],
    ids=["garbage", "truncated", "not-utf8", "empty"],
)
async def test_malformed_json_is_400(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    error_body(response, 400, "BAD_REQUEST")


@pytest.mark.parametrize("body", [b"null", b'"{ agents { nodes { id } } }"', b"42", b"true"])
async def test_json_that_is_not_an_object_is_400(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    error_body(response, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        None,
        "application/graphql",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
async def test_post_without_a_json_content_type_is_415(
    http: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    body = json.dumps({"query": AGENT_NAMES}).encode()
    response = await http.post("/graphql", content=body, headers=headers)
    assert ("content-type" in response.request.headers) is (content_type is not None)
    error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def padded_body(size: int) -> bytes:
    """A valid request body of exactly `size` bytes (the padding is a GraphQL comment)."""
    body = json.dumps({"query": AGENT_NAMES + "\n#"}).encode()
    padding = size - len(body)
    assert padding >= 0
    return json.dumps({"query": AGENT_NAMES + "\n#" + "x" * padding}).encode()


async def test_a_body_at_the_limit_is_accepted(http: httpx.AsyncClient) -> None:
    body = padded_body(BODY_LIMIT)
    assert len(body) == BODY_LIMIT
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


async def test_a_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        content=padded_body(BODY_LIMIT + 1),
        headers={"content-type": "application/json"},
    )
    assert response.request.headers["content-length"] == str(BODY_LIMIT + 1)
    error_body(response, 413, "PAYLOAD_TOO_LARGE")


async def test_a_streamed_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    """Without Content-Length the limit is enforced while reading, not trusted to a header."""
    body = padded_body(BODY_LIMIT * 4)
    sent_chunks = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent_chunks
        for start in range(0, len(body), 512):
            sent_chunks += 1
            yield body[start : start + 512]

    response = await http.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    error_body(response, 413, "PAYLOAD_TOO_LARGE")
    assert sent_chunks < len(body) // 512  # it stopped reading once over the limit


async def test_a_streamed_body_within_the_limit_works(http: httpx.AsyncClient) -> None:
    body = padded_body(BODY_LIMIT)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    response = await http.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


# ----------------------------------------------------------------------------- request parameters


@pytest.mark.parametrize(
    "payload",
    [{}, {"query": None}, {"query": ""}, {"variables": {}}],
    ids=["empty", "null", "blank", "variables-only"],
)
async def test_a_request_without_a_query_is_400(
    http: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    errors = error_body(await http.post("/graphql", json=payload), 400, "BAD_REQUEST")
    assert "query" in errors[0]["message"]


async def test_a_get_without_a_query_is_400(http: httpx.AsyncClient) -> None:
    error_body(await http.get("/graphql", headers=ACCEPT_JSON), 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "payload",
    [
        {"query": 42},
        {"query": AGENT_NAMES, "variables": [1]},
        {"query": AGENT_NAMES, "variables": "{}"},
        {"query": AGENT_NAMES, "extensions": 1},
        {"query": AGENT_NAMES, "operationName": 5},
    ],
    ids=["query", "variables-list", "variables-string", "extensions", "operation-name"],
)
async def test_parameters_of_the_wrong_json_type_are_400(
    http: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    error_body(await http.post("/graphql", json=payload), 400, "BAD_REQUEST")


async def test_get_with_variables_that_are_not_json_is_400(http: httpx.AsyncClient) -> None:
    params = {"query": PAGE, "variables": "{first: 1}"}
    response = await http.get("/graphql", params=params, headers=ACCEPT_JSON)
    errors = error_body(response, 400, "BAD_REQUEST")
    assert "variables" in errors[0]["message"]


async def test_a_batch_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json=[{"query": AGENT_NAMES}, {"query": AGENT_NAMES}])
    error_body(response, 400, "BAD_REQUEST")


async def test_an_unknown_operation_name_is_400(client: GraphQLClient) -> None:
    response = await client.post(AGENT_NAMES, operation_name="Missing")
    errors = error_body(response, 400, "BAD_REQUEST")
    assert "Missing" in errors[0]["message"]


async def test_several_operations_need_an_operation_name(client: GraphQLClient) -> None:
    """GraphQL's GetOperation: no guessing (Strawberry alone would run the first one)."""
    await create_agent(client, "Ada")
    document = f"{AGENT_NAMES}\n{CREATE_AGENT}"
    errors = error_body(await client.post(document), 400, "BAD_REQUEST")
    assert "operationName" in errors[0]["message"]
    chosen = await client.post(document, operation_name="Names")
    assert chosen.json() == {"data": {"agents": {"nodes": [{"name": "Ada"}]}}}


# ----------------------------------------------------------------------------- request errors

REQUEST_ERRORS = [
    pytest.param("{ agents { nodes { name }", None, "GRAPHQL_PARSE_FAILED", id="syntax"),
    pytest.param("{ agents { nodes { salary } } }", None, "GRAPHQL_VALIDATION_FAILED", id="field"),
    pytest.param(PAGE, {"first": "ten"}, "BAD_USER_INPUT", id="variable-type"),
    pytest.param(
        "query($id: ID!) { agent(id: $id) { name } }", {}, "BAD_USER_INPUT", id="variable-missing"
    ),
    pytest.param(
        "query($after: DateTime) { agents(filter: {createdAfter: $after}) { nodes { name } } }",
        {"after": "yesterday"},
        "BAD_USER_INPUT",
        id="variable-scalar",
    ),
]


@pytest.mark.parametrize(("query", "variables", "code"), REQUEST_ERRORS)
async def test_request_errors_are_200_with_application_json(
    client: GraphQLClient, query: str, variables: dict[str, Any] | None, code: str
) -> None:
    response = await client.post(query, variables)
    error_body(response, 200, code)
    assert media_type(response) == "application/json"


@pytest.mark.parametrize(("query", "variables", "code"), REQUEST_ERRORS)
async def test_request_errors_are_400_with_graphql_response_json(
    client: GraphQLClient, query: str, variables: dict[str, Any] | None, code: str
) -> None:
    response = await client.post(query, variables, headers=ACCEPT_GRAPHQL_RESPONSE)
    error_body(response, 400, code)
    assert media_type(response) == GRAPHQL_RESPONSE


async def test_a_variable_error_names_the_variable(client: GraphQLClient) -> None:
    errors = error_body(await client.post(PAGE, {"first": "ten"}), 200, "BAD_USER_INPUT")
    assert "$first" in errors[0]["message"]
    assert errors[0]["locations"]


async def test_http_errors_use_the_negotiated_media_type(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        content=b"{",
        headers={"content-type": "application/json", **ACCEPT_GRAPHQL_RESPONSE},
    )
    error_body(response, 400, "BAD_REQUEST")
    assert media_type(response) == GRAPHQL_RESPONSE
