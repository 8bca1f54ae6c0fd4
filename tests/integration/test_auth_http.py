"""Authentication over HTTP: 401s, roles for every operation of the schema, rate limits, audit.

The role sweep builds its operations from schema.graphql (tests/support/auth.py), so an
operation added later is swept without touching this file.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from backend.api.graphql.context import Context
from backend.api.graphql.loaders import Loaders
from backend.api.graphql.schema import build_schema
from backend.config.settings import Settings
from backend.core import auth as core_auth
from backend.core.auth import required_role
from backend.core.identity import Principal, Role
from backend.models import DEFAULT_WORKSPACE_ID
from backend.services.bundle import Services
from tests.support.auth import (
    Operation,
    audit_lines,
    bearer,
    first_error_code,
    make_key,
    roles,
    schema_operations,
)
from tests.support.databases import make_settings
from tests.support.factories import create_agent
from tests.support.graphql import GraphQLClient

RESPONSE_JSON = "application/graphql-response+json"
AGENTS = "query Agents { agents { nodes { id } } }"
CREATE_AGENT = """
mutation Make($input: AgentCreateInput!) {
  createAgent(input: $input) { __typename ... on Error { code } }
}"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, auth_enabled=True, rate_limit_per_second=0)


def keyed(app: Starlette, token: str | None) -> httpx.AsyncClient:
    headers = bearer(token) if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )


@pytest.fixture
async def keys(services: Services) -> dict[Role, str]:
    return {role: await make_key(services, DEFAULT_WORKSPACE_ID, role) for role in roles()}


# ----------------------------------------------------------------------------- 401


async def _post(http: httpx.AsyncClient, query: str, **headers: str) -> httpx.Response:
    return await http.post("/graphql", json={"query": query}, headers=headers)


def assert_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_missing_key_is_401(http: httpx.AsyncClient) -> None:
    with audit_lines() as lines:
        assert_unauthenticated(await _post(http, AGENTS))
    assert any("outcome=unauthenticated" in line and "detail=missing" in line for line in lines)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer nonsense",
        "Basic dXNlcjpwYXNz",
        "Bearer cq_abcdefgh_" + "x" * 43,  # well-formed, unknown
        "Bearer",
    ],
)
async def test_wrong_keys_are_401(http: httpx.AsyncClient, authorization: str) -> None:
    assert_unauthenticated(await _post(http, AGENTS, Authorization=authorization))


async def test_wrong_secret_and_revoked_key_are_401_and_audited_without_the_key(
    app: Starlette, http: httpx.AsyncClient, services: Services
) -> None:
    token = await make_key(services, DEFAULT_WORKSPACE_ID, Role.VIEWER)
    prefix = token[:11]
    wrong = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    with audit_lines() as lines:
        assert_unauthenticated(await _post(http, AGENTS, Authorization=f"Bearer {wrong}"))
        async with keyed(app, token) as viewer:
            assert (await _post(viewer, AGENTS)).status_code == 200
        key = (await services.auth.list_keys(DEFAULT_WORKSPACE_ID))[0]
        await services.auth.revoke_key(DEFAULT_WORKSPACE_ID, key.id)
        async with keyed(app, token) as viewer:
            assert_unauthenticated(await _post(viewer, AGENTS))
    failures = [line for line in lines if "outcome=unauthenticated" in line]
    assert len(failures) == 2
    assert all(f"key={prefix}" in line for line in failures)
    assert "detail=wrong_secret" in failures[0]
    assert "detail=revoked" in failures[1]
    for line in lines:
        assert token not in line
        assert wrong not in line
        assert token[12:] not in line  # not even the secret alone


async def test_graphiql_page_needs_no_key(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "<html" in response.text.lower()


async def test_introspection_works_with_a_key_only(app: Starlette, keys: dict[Role, str]) -> None:
    query = "{ __schema { queryType { name } } }"
    async with keyed(app, None) as anonymous:
        assert (await _post(anonymous, query)).status_code == 401
    async with keyed(app, keys[Role.VIEWER]) as viewer:
        body = (await _post(viewer, query)).json()
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


# ----------------------------------------------------------------------------- roles


def is_allowed(role: Role, operation: Operation) -> bool:
    kind: Any = operation.kind
    return role >= required_role(kind, [operation.field])


async def test_operation_list_covers_the_schema() -> None:
    operations = {str(op) for op in schema_operations()}
    for expected in (
        "query:crews",
        "mutation:createExecution",
        "mutation:revokeApiKey",
        "query:apiKeys",
        "subscription:executionUpdates",
        "subscription:executionEvents",
    ):
        assert expected in operations


async def test_every_role_against_every_query_and_mutation(
    app: Starlette, keys: dict[Role, str]
) -> None:
    operations = [op for op in schema_operations() if op.kind != "subscription"]
    for role in roles():
        async with keyed(app, keys[role]) as http:
            for operation in operations:
                response = await _post(http, operation.document)
                assert response.status_code == 200, (role, str(operation), response.text)
                code = first_error_code(response.json())
                if is_allowed(role, operation):
                    assert code != "FORBIDDEN", (role, str(operation), response.text)
                else:
                    body = response.json()
                    assert code == "FORBIDDEN", (role, str(operation), body)
                    assert body.get("data") is None


async def test_forbidden_is_403_with_graphql_response_json(
    app: Starlette, keys: dict[Role, str]
) -> None:
    async with keyed(app, keys[Role.VIEWER]) as http:
        response = await http.post(
            "/graphql",
            json={"query": CREATE_AGENT, "variables": {"input": {"name": "a"}}},
            headers={"Accept": RESPONSE_JSON},
        )
        assert response.status_code == 403
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        response = await http.post("/graphql", json={"query": "{ apiKeys { id } }"})
        assert response.status_code == 200
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_roles_see_fragments_at_the_root(app: Starlette, keys: dict[Role, str]) -> None:
    query = """
    query Sneaky { ...Keys ... on Query { agents { nodes { id } } } }
    fragment Keys on Query { apiKeys { id } }
    """
    async with keyed(app, keys[Role.EDITOR]) as http:
        body = (await _post(http, query)).json()
    assert first_error_code(body) == "FORBIDDEN"


def schema_context(services: Services, settings: Settings, principal: Principal | None) -> Any:
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []})
    workspace = principal.workspace_id if principal else DEFAULT_WORKSPACE_ID
    return Context(
        request=request,
        response=None,
        settings=settings,
        services=services,
        loaders=Loaders(services, workspace),
        principal=principal,
    )


async def _first(stream: Any, within: float = 0.5) -> Any:
    try:
        return await asyncio.wait_for(stream.__anext__(), within)
    except TimeoutError:
        return None  # still running: not refused
    finally:
        await stream.aclose()


async def test_role_check_on_subscriptions_at_the_schema_level(
    services: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No subscription needs more than viewer today; make one need admin and see it refused
    through `schema.subscribe`, once, before the resolver runs."""
    schema = build_schema(settings)
    viewer = Principal(DEFAULT_WORKSPACE_ID, uuid.uuid4(), "cq_test0000", Role.VIEWER)
    admin = Principal(DEFAULT_WORKSPACE_ID, uuid.uuid4(), "cq_test0001", Role.ADMIN)
    query = "subscription Watch { executionUpdates { seq } }"
    monkeypatch.setitem(core_auth.FIELD_ROLES, "executionUpdates", Role.ADMIN)
    refused = await _first(
        await schema.subscribe(query, context_value=schema_context(services, settings, viewer))
    )
    assert refused is not None
    assert refused.errors
    assert (refused.errors[0].extensions or {})["code"] == "FORBIDDEN"
    allowed = await _first(
        await schema.subscribe(query, context_value=schema_context(services, settings, admin))
    )
    assert allowed is None or not allowed.errors
    # and queries and mutations through schema.execute
    result = await schema.execute(
        "{ apiKeys { id } }", context_value=schema_context(services, settings, viewer)
    )
    assert result.errors
    assert (result.errors[0].extensions or {})["code"] == "FORBIDDEN"
    result = await schema.execute(
        'mutation { deleteAgent(id: "x") { __typename } }',
        context_value=schema_context(services, settings, viewer),
    )
    assert result.errors
    assert (result.errors[0].extensions or {})["code"] == "FORBIDDEN"
    result = await schema.execute(
        "{ agents { nodes { id } } }", context_value=schema_context(services, settings, None)
    )
    assert result.errors
    assert (result.errors[0].extensions or {})["code"] == "UNAUTHENTICATED"


# ----------------------------------------------------------------------------- admin API

KEYS = "query { apiKeys { id prefix name role createdAt lastUsedAt revokedAt } }"
CREATE_KEY = """
mutation New($input: ApiKeyCreateInput!) {
  createApiKey(input: $input) {
    __typename
    ... on ApiKeyCreated { key apiKey { id prefix name role revokedAt } }
    ... on Error { code message }
  }
}"""
REVOKE_KEY = """
mutation Revoke($id: ID!) {
  revokeApiKey(id: $id) {
    __typename ... on ApiKey { id revokedAt } ... on Error { code }
  }
}"""


async def test_admins_manage_keys_through_graphql(app: Starlette, keys: dict[Role, str]) -> None:
    async with keyed(app, keys[Role.ADMIN]) as http:
        admin = GraphQLClient(http)
        with audit_lines() as lines:
            created = (
                await admin.execute(CREATE_KEY, {"input": {"name": "ci", "role": "EDITOR"}})
            )["createApiKey"]
        assert created["__typename"] == "ApiKeyCreated"
        token = created["key"]
        assert token.startswith(created["apiKey"]["prefix"] + "_")
        assert created["apiKey"]["role"] == "EDITOR"
        assert any("operation=createApiKey outcome=ok" in line for line in lines)
        assert all(token not in line for line in lines)
        listed = (await admin.execute(KEYS))["apiKeys"]
        assert created["apiKey"]["id"] in {k["id"] for k in listed}
        assert all("key" not in k for k in listed)

        async with keyed(app, token) as new:
            assert (await _post(new, AGENTS)).status_code == 200
        revoked = (await admin.execute(REVOKE_KEY, {"id": created["apiKey"]["id"]}))["revokeApiKey"]
        assert revoked["__typename"] == "ApiKey"
        assert revoked["revokedAt"]
        async with keyed(app, token) as new:
            assert (await _post(new, AGENTS)).status_code == 401

        missing = (await admin.execute(REVOKE_KEY, {"id": str(uuid.uuid4())}))["revokeApiKey"]
        assert missing == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
        invalid = (await admin.execute(CREATE_KEY, {"input": {"name": "", "role": "VIEWER"}}))[
            "createApiKey"
        ]
        assert invalid["__typename"] == "ValidationError"


# ----------------------------------------------------------------------------- audit


async def test_every_mutation_is_audited_with_its_outcome(
    app: Starlette, keys: dict[Role, str]
) -> None:
    async with keyed(app, keys[Role.EDITOR]) as http:
        client = GraphQLClient(http)
        with audit_lines() as lines:
            await create_agent(client, "audited")
            response = await http.post(
                "/graphql",
                json={
                    "query": CREATE_AGENT,
                    "variables": {"input": {"name": "", "role": "r", "goal": "g"}},
                },
            )
            assert response.status_code == 200
            await _post(http, 'mutation { deleteCrew(id: "nope") { __typename } }')
            await _post(http, AGENTS)  # queries are not audited
    prefix = keys[Role.EDITOR][:11]
    assert [line.split("operation=")[1] for line in lines] == [
        "createAgent outcome=ok",
        "createAgent outcome=VALIDATION_FAILED",
        "deleteCrew outcome=NOT_FOUND",
    ]
    assert all(f"key={prefix}" in line and str(DEFAULT_WORKSPACE_ID) in line for line in lines)


async def test_forbidden_mutations_are_audited(app: Starlette, keys: dict[Role, str]) -> None:
    async with keyed(app, keys[Role.VIEWER]) as http:
        with audit_lines() as lines:
            await _post(http, 'mutation Gone { deleteCrew(id: "x") { __typename } }')
    assert len(lines) == 1
    assert "operation=Gone outcome=FORBIDDEN" in lines[0]


# ----------------------------------------------------------------------------- rate limit


@pytest.fixture
async def limited_app(database_url: str) -> AsyncIterator[Starlette]:
    from backend.main import create_app
    from tests.conftest import _clean

    application = create_app(
        make_settings(
            database_url, auth_enabled=True, rate_limit_per_second=0.5, rate_limit_burst=3
        )
    )
    try:
        yield application
    finally:
        await _clean(application)
        await application.state.engine.dispose()


async def test_rate_limit_answers_429_with_retry_after(limited_app: Starlette) -> None:
    services: Services = limited_app.state.services
    token = await make_key(services, DEFAULT_WORKSPACE_ID, Role.VIEWER)
    other = await make_key(services, DEFAULT_WORKSPACE_ID, Role.VIEWER, name="other")
    async with keyed(limited_app, token) as http:
        for _ in range(3):
            assert (await _post(http, AGENTS)).status_code == 200
        response = await _post(http, AGENTS)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] == int(response.headers["retry-after"])
    async with keyed(limited_app, other) as http:  # per key: another key is not affected
        assert (await _post(http, AGENTS)).status_code == 200


async def test_start_up_says_when_authentication_is_off(database_url: str) -> None:
    from loguru import logger

    from backend.main import create_app

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), format="{message}", level="INFO")
    application = create_app(make_settings(database_url, auth_enabled=False, runner_enabled=False))
    try:
        async with application.router.lifespan_context(application):
            pass
    finally:
        logger.remove(sink)
        await application.state.engine.dispose()
    off = [line for line in lines if "authentication is OFF" in line]
    assert len(off) == 1
    assert "admin of the default workspace" in off[0]
