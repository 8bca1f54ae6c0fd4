"""Tasks through GraphQL: their agent and context, and the rules that guard them."""

from __future__ import annotations

from typing import Any

from tests.support.factories import create_agent, create_crew, create_task
from tests.support.graphql import GraphQLClient

RESULT = """
    __typename
    ... on Task { id name agentId contextTaskIds agent { name } context { name } }
    ... on Error { code message }
    ... on ValidationError { fields { field message } }
"""
CREATE = f"mutation($input: TaskCreateInput!) {{ createTask(input: $input) {{ {RESULT} }} }}"
UPDATE = (
    f"mutation($id: ID!, $input: TaskUpdateInput!) {{ updateTask(id: $id, input: $input) "
    f"{{ {RESULT} }} }}"
)
DELETE = """
mutation($id: ID!) {
  deleteTask(id: $id) { __typename ... on Error { code } ... on InUseError { usedBy } }
}"""


def task_input(agent_id: str, **values: Any) -> dict[str, Any]:
    return {
        "name": "Research",
        "description": "Find",
        "expectedOutput": "Facts",
        "agentId": agent_id,
        **values,
    }


async def test_create_with_agent_and_context(client: GraphQLClient) -> None:
    agent = await create_agent(client, "Researcher")
    first = await create_task(client, "first", agent)
    result = (await client.execute(CREATE, {"input": task_input(agent, contextTaskIds=[first])}))[
        "createTask"
    ]
    assert result["__typename"] == "Task"
    assert result["agent"] == {"name": "Researcher"}
    assert result["contextTaskIds"] == [first]
    assert result["context"] == [{"name": "first"}]


async def test_agent_and_context_must_exist_here(client: GraphQLClient) -> None:
    missing = "01900000-0000-7000-8000-000000000000"
    agent = await create_agent(client, "Researcher")
    result = (
        await client.execute(
            CREATE, {"input": task_input(missing, contextTaskIds=[missing, "bogus"])}
        )
    )["createTask"]
    assert result["__typename"] == "ValidationError"
    fields = sorted(f["field"] for f in result["fields"])
    assert fields == ["contextTaskIds.1"]  # shape errors first: the bad UUID
    result = (
        await client.execute(CREATE, {"input": task_input(missing, contextTaskIds=[missing])})
    )["createTask"]
    assert sorted(f["field"] for f in result["fields"]) == ["agentId", "contextTaskIds"]
    result = (await client.execute(CREATE, {"input": task_input(agent, contextTaskIds=[missing])}))[
        "createTask"
    ]
    assert [f["field"] for f in result["fields"]] == ["contextTaskIds"]
    listed = await client.execute("{ tasks { nodes { id } } }")
    assert listed["tasks"]["nodes"] == []


async def test_context_cycles_and_self_reference_are_refused(client: GraphQLClient) -> None:
    agent = await create_agent(client, "A")
    a = await create_task(client, "a", agent)
    b = await create_task(client, "b", agent, [a])
    c = await create_task(client, "c", agent, [b])
    for target, context in ((a, [c]), (a, [a]), (b, [c])):
        result = (
            await client.execute(UPDATE, {"id": target, "input": {"contextTaskIds": context}})
        )["updateTask"]
        assert result["__typename"] == "ValidationError", (target, context, result)
    dup = await client.execute(UPDATE, {"id": c, "input": {"contextTaskIds": [a, a]}})
    assert dup["updateTask"]["__typename"] == "ValidationError"
    ok = await client.execute(UPDATE, {"id": c, "input": {"contextTaskIds": [a, b]}})
    assert ok["updateTask"]["contextTaskIds"] == [a, b]


async def test_context_change_must_keep_crews_valid(client: GraphQLClient) -> None:
    agent = await create_agent(client, "A")
    a = await create_task(client, "a", agent)
    b = await create_task(client, "b", agent)
    await create_crew(client, "Crew", [a, b])
    refused = await client.execute(UPDATE, {"id": a, "input": {"contextTaskIds": [b]}})
    result = refused["updateTask"]
    assert result["__typename"] == "ValidationError"
    assert "Crew" in result["fields"][0]["message"]
    allowed = await client.execute(UPDATE, {"id": b, "input": {"contextTaskIds": [a]}})
    assert allowed["updateTask"]["contextTaskIds"] == [a]


async def test_update_agent_and_name(client: GraphQLClient) -> None:
    first = await create_agent(client, "first")
    second = await create_agent(client, "second")
    task = await create_task(client, "t", first)
    other = await create_task(client, "other", first)
    moved = await client.execute(UPDATE, {"id": task, "input": {"agentId": second}})
    assert moved["updateTask"]["agent"] == {"name": "second"}
    clash = await client.execute(UPDATE, {"id": other, "input": {"name": "t"}})
    assert clash["updateTask"]["__typename"] == "ConflictError"


async def test_delete_refused_while_used(client: GraphQLClient) -> None:
    agent = await create_agent(client, "A")
    a = await create_task(client, "a", agent)
    b = await create_task(client, "b", agent, [a])
    await create_crew(client, "Crew", [a, b])
    refused = (await client.execute(DELETE, {"id": a}))["deleteTask"]
    assert refused["__typename"] == "InUseError"
    assert refused["usedBy"] == ["crew 'Crew'", "task 'b' (as context)"]
    assert (await client.execute(DELETE, {"id": b}))["deleteTask"]["__typename"] == "InUseError"
