"""A task's `humanInput` and `outputSchema`: stored, returned, changed, cleared, snapshotted with
the execution; a bad schema is a ValidationError when it is set, never a failure at run time."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from backend.models import Execution
from tests.support.executions import launch
from tests.support.factories import create_agent, create_crew
from tests.support.graphql import GraphQLClient

RESULT = """
    __typename
    ... on Task { id humanInput outputSchema }
    ... on Error { code message }
    ... on ValidationError { fields { field message } }
"""
CREATE = f"mutation($input: TaskCreateInput!) {{ createTask(input: $input) {{ {RESULT} }} }}"
UPDATE = (
    f"mutation($id: ID!, $input: TaskUpdateInput!) {{ updateTask(id: $id, input: $input) "
    f"{{ {RESULT} }} }}"
)
SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "score": {"type": "integer", "minimum": 0}},
    "required": ["title", "score"],
}


async def create(client: GraphQLClient, agent: str, **values: Any) -> dict[str, Any]:
    variables = {
        "input": {"name": "Rate", "description": "d", "expectedOutput": "e", "agentId": agent}
        | values
    }
    result: dict[str, Any] = (await client.execute(CREATE, variables))["createTask"]
    return result


async def test_settings_are_stored_changed_and_cleared(client: GraphQLClient) -> None:
    agent = await create_agent(client, "Rater")
    plain = await create(client, agent, name="Plain")
    assert (plain["humanInput"], plain["outputSchema"]) == (False, None)
    task = await create(client, agent, humanInput=True, outputSchema=SCHEMA)
    assert task["__typename"] == "Task", task
    assert (task["humanInput"], task["outputSchema"]) == (True, SCHEMA)
    read = await client.execute("query($id: ID!) { task(id: $id) { outputSchema } }", task)
    assert read["task"]["outputSchema"] == SCHEMA

    changed = (await client.execute(UPDATE, {"id": task["id"], "input": {"humanInput": False}}))[
        "updateTask"
    ]
    assert (changed["humanInput"], changed["outputSchema"]) == (False, SCHEMA)
    cleared = (await client.execute(UPDATE, {"id": task["id"], "input": {"outputSchema": None}}))[
        "updateTask"
    ]
    assert cleared["outputSchema"] is None
    refused = (await client.execute(UPDATE, {"id": task["id"], "input": {"humanInput": None}}))[
        "updateTask"
    ]
    assert refused["__typename"] == "ValidationError"
    assert [f["field"] for f in refused["fields"]] == ["humanInput"]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": {"a": {"type": "nonsense"}}}, "not a valid JSON Schema"),
        ({"type": "object", "required": "title"}, "at required"),
        ({"type": "string"}, '"type": "object"'),
        ({"properties": {}}, '"type": "object"'),
        ([{"type": "object"}], "valid dictionary"),
        ("object", "valid dictionary"),
        ({"type": "object", "description": "x" * 40_000}, "longer than"),
    ],
)
async def test_a_bad_schema_is_refused_when_set(
    client: GraphQLClient, schema: Any, message: str
) -> None:
    agent = await create_agent(client, "Rater")
    result = await create(client, agent, outputSchema=schema)
    assert result["__typename"] == "ValidationError", result
    assert [f["field"] for f in result["fields"]] == ["outputSchema"]
    assert message in result["fields"][0]["message"]
    good = await create(client, agent, name="Good")
    updated = (await client.execute(UPDATE, {"id": good["id"], "input": {"outputSchema": schema}}))[
        "updateTask"
    ]
    assert updated["__typename"] == "ValidationError"
    inline = await launch(
        client,
        crew={
            "name": "Inline",
            "agents": [{"name": "a", "role": "r", "goal": "g"}],
            "tasks": [
                {
                    "name": "t",
                    "description": "d",
                    "expectedOutput": "e",
                    "agent": "a",
                    "outputSchema": schema,
                }
            ],
        },
    )
    assert inline["__typename"] == "ValidationError"
    assert [f["field"] for f in inline["fields"]] == ["crew.tasks.0.outputSchema"]


async def test_the_execution_keeps_the_settings_as_launched(
    client: GraphQLClient, app: Starlette
) -> None:
    agent = await create_agent(client, "Rater")
    task = await create(client, agent, humanInput=True, outputSchema=SCHEMA)
    crew = await create_crew(client, "Rating", [task["id"]])
    launched = await launch(client, crewId=crew)
    await client.execute(UPDATE, {"id": task["id"], "input": {"outputSchema": None}})
    async with app.state.engine.connect() as connection:
        config = await connection.scalar(
            select(Execution.config).where(Execution.id == uuid.UUID(launched["id"]))
        )
    assert config["tasks"][0]["human_input"] is True
    assert config["tasks"][0]["output_schema"] == SCHEMA
