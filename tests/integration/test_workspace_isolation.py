"""Two workspaces with keys: everything one tries against the other's objects answers exactly
like an id that does not exist, and its subscriptions deliver only its own executions.

The sweep takes every operation of schema.graphql (tests/support/auth.py) that has an ID
argument, runs it with workspace B's key once with A's object's id and once with an id that
exists nowhere, and compares the answers with the ids blanked out.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from backend.api.graphql.context import Context
from backend.api.graphql.loaders import Loaders
from backend.api.graphql.schema import build_schema
from backend.config.settings import Settings
from backend.core.identity import Role
from backend.models import DEFAULT_WORKSPACE_ID
from backend.schemas import WorkspaceCreate
from backend.schemas.tool import McpServerCreate
from backend.services.bundle import Services
from tests.support.auth import Operation, bearer, make_key, schema_operations
from tests.support.databases import make_settings
from tests.support.executions import launch
from tests.support.factories import create_three_task_crew
from tests.support.graphql import GraphQLClient

ENTITY_OF_FIELD = (
    ("ApiKey", "apikey"),
    ("McpServer", "mcpserver"),
    ("gent", "agent"),
    ("ask", "task"),
    ("rew", "crew"),
    ("xecution", "execution"),
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, auth_enabled=True, rate_limit_per_second=0)


def keyed(app: Starlette, token: str) -> GraphQLClient:
    return GraphQLClient(
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers=bearer(token),
        )
    )


class World:
    def __init__(self, a: GraphQLClient, b: GraphQLClient, ids: dict[str, str]) -> None:
        self.a = a
        self.b = b
        self.ids = ids
        self.b_workspace: uuid.UUID = uuid.UUID(int=0)
        self.b_principal: Any = None


@pytest.fixture
async def world(app: Starlette, services: Services) -> World:
    token_a = await make_key(services, DEFAULT_WORKSPACE_ID, Role.ADMIN, "a-admin")
    team_b = await services.auth.create_workspace(WorkspaceCreate(name="team-b"))
    token_b = await make_key(services, team_b.id, Role.ADMIN, "b-admin")
    a = keyed(app, token_a)
    b = keyed(app, token_b)
    made = await create_three_task_crew(a, "iso")
    execution = await launch(a, crewId=made["crew"])
    assert execution["__typename"] == "Execution", execution
    (key_a,) = list(await services.auth.list_keys(DEFAULT_WORKSPACE_ID))
    server_a = await services.tools.servers.create(
        DEFAULT_WORKSPACE_ID, McpServerCreate(name="iso", url="http://127.0.0.1:9/mcp")
    )
    result = World(
        a,
        b,
        {
            "agent": made["agents"][0],
            "task": made["tasks"][0],
            "crew": made["crew"],
            "execution": execution["id"],
            "apikey": str(key_a.id),
            "mcpserver": str(server_a.id),
        },
    )
    result.b_workspace = team_b.id
    result.b_principal = await services.auth.authenticate(token_b)
    return result


def entity_of(field: str) -> str:
    for fragment, entity in ENTITY_OF_FIELD:
        if fragment in field:
            return entity
    raise AssertionError(f"which objects does {field} take? add it to ENTITY_OF_FIELD")


def document_for(operation: Operation, ids: dict[str, str]) -> str:
    """The operation with these ids, and error details selected for mutations."""
    entity = entity_of(operation.field)
    values = {"id": ids[entity], "executionId": ids["execution"], "agentId": ids["agent"]}
    (built,) = [op for op in schema_operations(values) if op.field == operation.field]
    document = built.document
    if operation.kind == "mutation":
        document = document.replace(
            "{ __typename }", "{ __typename ... on Error { code message } }"
        )
    return document


def blank(payload: Any, ids: list[str]) -> str:
    text = json.dumps(payload, sort_keys=True)
    for value in ids:
        text = text.replace(value, "<ID>")
    return text


async def test_every_operation_on_another_workspaces_objects_is_not_found(
    world: World,
) -> None:
    fake = {name: str(uuid.uuid4()) for name in world.ids}
    swept = []
    for operation in schema_operations():
        if operation.kind == "subscription" or not operation.id_arguments:
            continue
        real = await world.b.post(document_for(operation, world.ids))
        made_up = await world.b.post(document_for(operation, fake))
        assert real.status_code == made_up.status_code == 200, operation
        ids = [*world.ids.values(), *fake.values()]
        assert blank(real.json(), ids) == blank(made_up.json(), ids), str(operation)
        swept.append(operation.field)
    assert {"agent", "updateCrew", "deleteTask", "cancelExecution", "revokeApiKey"} <= set(swept)
    # A's objects are all still there, untouched.
    check = await world.a.execute(
        """query($agent: ID!, $task: ID!, $crew: ID!, $execution: ID!) {
          agent(id: $agent) { id } task(id: $task) { id } crew(id: $crew) { id name }
          execution(id: $execution) { id status } apiKeys { revokedAt }
        }""",
        {k: v for k, v in world.ids.items() if k != "apikey"},
    )
    assert check["crew"]["name"] == "iso crew"
    assert check["execution"]["status"] == "QUEUED"
    assert check["apiKeys"] == [{"revokedAt": None}]


async def test_lists_and_references_stay_in_the_workspace(world: World) -> None:
    lists = await world.b.execute(
        """{ agents { nodes { id } } tasks { nodes { id } } crews { nodes { id } }
             executions { nodes { id } } apiKeys { name } }"""
    )
    assert lists == {
        "agents": {"nodes": []},
        "tasks": {"nodes": []},
        "crews": {"nodes": []},
        "executions": {"nodes": []},
        "apiKeys": [{"name": "b-admin"}],
    }
    fake = str(uuid.uuid4())
    references: list[tuple[str, Callable[[dict[str, str]], Any], Callable[[str], Any]]] = [
        (
            'mutation($t: [ID!]!) { createCrew(input: {name: "x", taskIds: $t}) '
            "{ __typename ... on Error { code message } } }",
            lambda i: {"t": [i["task"]]},
            lambda f: {"t": [f]},
        ),
        (
            'mutation($a: ID!) { createTask(input: {name: "x", description: "d", '
            'expectedOutput: "e", agentId: $a}) { __typename ... on Error { code message } } }',
            lambda i: {"a": i["agent"]},
            lambda f: {"a": f},
        ),
        (
            "mutation($c: ID!) { createExecution(input: {crewId: $c}) "
            "{ __typename ... on Error { code message } } }",
            lambda i: {"c": i["crew"]},
            lambda f: {"c": f},
        ),
    ]
    for query, real_vars, fake_vars in references:
        real = (await world.b.post(query, real_vars(world.ids))).json()
        made_up = (await world.b.post(query, fake_vars(fake))).json()
        assert blank(real, [*world.ids.values(), fake]) == blank(made_up, [fake]), query


def context_for(services: Services, settings: Settings, principal: Any) -> Context:
    return Context(
        request=Request({"type": "http", "method": "POST", "path": "/", "headers": []}),
        response=None,
        settings=settings,
        services=services,
        loaders=Loaders(services, principal.workspace_id),
        principal=principal,
    )


async def _next(stream: Any, within: float) -> Any:
    try:
        return await asyncio.wait_for(stream.__anext__(), within)
    except TimeoutError:
        return None


async def test_subscriptions_deliver_only_the_own_workspace(
    world: World, services: Services, settings: Settings
) -> None:
    schema = build_schema(settings)
    events = "subscription($id: ID!) { executionEvents(executionId: $id) { seq message } }"
    answers = []
    for execution_id in (world.ids["execution"], str(uuid.uuid4())):
        stream: Any = await schema.subscribe(
            events,
            variable_values={"id": execution_id},
            context_value=context_for(services, settings, world.b_principal),
        )
        first = await _next(stream, 5)
        await stream.aclose()
        assert first is not None
        assert first.errors
        answers.append(
            blank([e.formatted for e in first.errors], [world.ids["execution"], execution_id])
        )
    assert answers[0] == answers[1]
    assert "NOT_FOUND" in answers[0]

    await services.bus.start()
    try:
        updates: Any = await schema.subscribe(
            "subscription { executionUpdates { executionId message } }",
            context_value=context_for(services, settings, world.b_principal),
        )
        pending = asyncio.ensure_future(_next(updates, 5))
        await asyncio.sleep(0.3)  # subscribed before anything happens
        made = await create_three_task_crew(world.a, "iso-live")
        theirs = await launch(world.a, crewId=made["crew"])
        own_made = await create_three_task_crew(world.b, "b-live")
        own = await launch(world.b, crewId=own_made["crew"])
        received = await pending
        assert received is not None
        assert not received.errors, received
        assert received.data["executionUpdates"]["executionId"] == own["id"]
        assert received.data["executionUpdates"]["executionId"] != theirs["id"]
        await updates.aclose()
    finally:
        await services.bus.stop()
