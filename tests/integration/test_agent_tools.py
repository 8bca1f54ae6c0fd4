"""Agents and tasks list tools by name, on SQLite and PostgreSQL: names are checked when they are
written (MCP tools against the server, live), stored, snapshotted into an execution's config,
and keep the MCP servers and secrets they use from being deleted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from backend.config.settings import Settings
from backend.core.secret_box import generate_key
from backend.models import DEFAULT_WORKSPACE_ID, Execution
from backend.schemas.secret import SecretSet
from backend.schemas.tool import McpServerCreate
from backend.services.bundle import Services
from tests.support.databases import make_settings
from tests.support.executions import launch
from tests.support.graphql import GraphQLClient
from tests.support.mcp_server import RunningMcpServer, mcp_server

AGENT = """mutation($input: AgentCreateInput!) { createAgent(input: $input) { __typename
  ... on Agent { id name tools apiKeySecret }
  ... on ValidationError { fields { field message } } } }"""
UPDATE_AGENT = """mutation($id: ID!, $input: AgentUpdateInput!) { updateAgent(id: $id,
  input: $input) { __typename ... on Agent { tools apiKeySecret }
  ... on ValidationError { fields { field message } } } }"""
TASK = """mutation($input: TaskCreateInput!) { createTask(input: $input) { __typename
  ... on Task { id tools } ... on ValidationError { fields { field message } } } }"""
CREW = """mutation($input: CrewCreateInput!) { createCrew(input: $input) {
  ... on Crew { id } } }"""
DELETE_SERVER = """mutation($id: ID!) { deleteMcpServer(id: $id) { __typename
  ... on InUseError { usedBy } } }"""
DELETE_SECRET = """mutation($name: String!) { deleteSecret(name: $name) { __typename
  ... on InUseError { usedBy } } }"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, secrets_key=generate_key())


@pytest.fixture(scope="module")
def calc() -> Iterator[RunningMcpServer]:
    with mcp_server() as server:
        yield server


def agent_input(**values: Any) -> dict[str, Any]:
    return {"name": "researcher", "role": "Researcher", "goal": "Find things", **values}


async def fields_of(client: GraphQLClient, query: str, **variables: Any) -> list[dict[str, str]]:
    result = next(iter((await client.execute(query, variables)).values()))
    assert result["__typename"] == "ValidationError", result
    fields: list[dict[str, str]] = result["fields"]
    return fields


async def test_tool_names_are_checked_stored_and_snapshotted(
    app: Starlette, client: GraphQLClient, services: Services, calc: RunningMcpServer
) -> None:
    server = await services.tools.servers.create(
        DEFAULT_WORKSPACE_ID, McpServerCreate(name="calc", url=calc.url)
    )
    assert await fields_of(client, AGENT, input=agent_input(tools=["nope"])) == [
        {
            "field": "tools.0",
            "message": "unknown tool 'nope': use http_request, current_time or mcp:<server>/<tool>",
        }
    ]
    assert await fields_of(
        client, AGENT, input=agent_input(tools=["mcp:ghost/add", "mcp:calc/missing"])
    ) == [
        {"field": "tools.0", "message": "no MCP server named 'ghost' in this workspace"},
        {
            "field": "tools.1",
            "message": "MCP server calc has no tool 'missing' (it offers: add, explode, slow)",
        },
    ]
    repeated = await fields_of(client, AGENT, input=agent_input(tools=["current_time"] * 2))
    assert repeated[0]["message"] == "lists current_time more than once"
    bad_secret = await fields_of(client, AGENT, input=agent_input(apiKeySecret="not a name"))
    assert bad_secret[0]["field"] == "apiKeySecret"

    tools = ["http_request", "mcp:calc/add"]
    created = (await client.execute(AGENT, {"input": agent_input(tools=tools)}))["createAgent"]
    assert created["tools"] == tools
    assert created["apiKeySecret"] is None
    agent_id = created["id"]
    nulled = await fields_of(client, UPDATE_AGENT, id=agent_id, input={"tools": None})
    assert nulled[0]["field"] == "tools"
    updated = await client.execute(
        UPDATE_AGENT, {"id": agent_id, "input": {"apiKeySecret": "RESEARCH_KEY"}}
    )
    assert updated["updateAgent"] == {
        "__typename": "Agent",
        "tools": tools,
        "apiKeySecret": "RESEARCH_KEY",
    }

    task_input = {
        "name": "look up",
        "description": "Look it up",
        "expectedOutput": "facts",
        "agentId": agent_id,
    }
    unknown = await fields_of(
        client, TASK, input={**task_input, "tools": ["current_time", "mcp:calc/nope"]}
    )
    assert [f["field"] for f in unknown] == ["tools.1"]
    task = await client.execute(TASK, {"input": {**task_input, "tools": ["current_time"]}})
    assert task["createTask"]["tools"] == ["current_time"]
    crew = await client.execute(
        CREW, {"input": {"name": "c", "taskIds": [task["createTask"]["id"]]}}
    )
    read = await client.execute(
        "query($id: ID!) { crew(id: $id) { tasks { tools agent { tools apiKeySecret } } } }",
        {"id": crew["createCrew"]["id"]},
    )
    assert read["crew"]["tasks"] == [
        {"tools": ["current_time"], "agent": {"tools": tools, "apiKeySecret": "RESEARCH_KEY"}}
    ]
    execution = await launch(client, crewId=crew["createCrew"]["id"])
    async with app.state.engine.connect() as connection:
        config = await connection.scalar(
            select(Execution.config).where(Execution.id == uuid.UUID(execution["id"]))
        )
    assert config["agents"][0]["tools"] == tools
    assert config["agents"][0]["api_key_secret"] == "RESEARCH_KEY"
    assert config["tasks"][0]["tools"] == ["current_time"]

    # What agents and tasks use stays.
    in_use = await client.execute(DELETE_SERVER, {"id": str(server.id)})
    assert in_use["deleteMcpServer"] == {"__typename": "InUseError", "usedBy": ["agent:researcher"]}
    await services.secrets.set(
        DEFAULT_WORKSPACE_ID, SecretSet(name="RESEARCH_KEY", value="k-123456"), "test"
    )
    secret = await client.execute(DELETE_SECRET, {"name": "RESEARCH_KEY"})
    assert secret["deleteSecret"] == {"__typename": "InUseError", "usedBy": ["agent:researcher"]}


async def test_inline_configs_are_checked_at_launch(
    client: GraphQLClient, calc: RunningMcpServer
) -> None:
    config = {
        "name": "inline",
        "agents": [{"name": "a", "role": "r", "goal": "g", "tools": ["mcp:calc/add"]}],
        "tasks": [
            {
                "name": "t",
                "description": "d",
                "expectedOutput": "o",
                "agent": "a",
                "tools": ["nope"],
            }
        ],
    }
    refused = await launch(client, crew=config)
    assert refused["__typename"] == "ValidationError"
    assert refused["fields"] == [
        {
            "field": "crew.tasks.0.tools.0",
            "message": "unknown tool 'nope': use http_request, current_time or mcp:<server>/<tool>",
        }
    ]
    config["tasks"][0]["tools"] = []  # type: ignore[index]
    refused = await launch(client, crew=config)
    assert refused["fields"] == [
        {
            "field": "crew.agents.0.tools.0",
            "message": "no MCP server named 'calc' in this workspace",
        }
    ]
