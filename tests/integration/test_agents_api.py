"""Agents through GraphQL: create, read, list, update, delete, and every way to get it wrong."""

from __future__ import annotations

from typing import Any

from tests.support.factories import create_agent, create_task
from tests.support.graphql import GraphQLClient

AGENT_FIELDS = "id name role goal backstory llm temperature maxIterations createdAt updatedAt"
CREATE = f"""
mutation($input: AgentCreateInput!) {{
  createAgent(input: $input) {{
    __typename
    ... on Agent {{ {AGENT_FIELDS} }}
    ... on Error {{ code message }}
    ... on ValidationError {{ fields {{ field message }} }}
    ... on ConflictError {{ field }}
  }}
}}"""
UPDATE = f"""
mutation($id: ID!, $input: AgentUpdateInput!) {{
  updateAgent(id: $id, input: $input) {{
    __typename
    ... on Agent {{ {AGENT_FIELDS} }}
    ... on Error {{ code message }}
    ... on ValidationError {{ fields {{ field message }} }}
  }}
}}"""
DELETE = """
mutation($id: ID!) {
  deleteAgent(id: $id) {
    __typename ... on Deleted { id } ... on Error { code message } ... on InUseError { usedBy }
  }
}"""
GET = f"query($id: ID!) {{ agent(id: $id) {{ {AGENT_FIELDS} }} }}"


async def create(client: GraphQLClient, **values: Any) -> dict[str, Any]:
    data = {"name": "Researcher", "role": "Senior researcher", "goal": "Find facts", **values}
    result: dict[str, Any] = (await client.execute(CREATE, {"input": data}))["createAgent"]
    return result


async def test_create_and_read_back(client: GraphQLClient) -> None:
    created = await create(client, backstory="Ex-journalist", temperature=0.3, maxIterations=5)
    assert created["__typename"] == "Agent"
    assert created["llm"] == "simulated"
    assert created["temperature"] == 0.3
    fetched = (await client.execute(GET, {"id": created["id"]}))["agent"]
    assert fetched == {k: v for k, v in created.items() if k != "__typename"}


async def test_validation_lists_every_bad_field(client: GraphQLClient) -> None:
    result = await create(client, name="  ", temperature=3.5, maxIterations=0, llm="Not A Model!")
    assert result["__typename"] == "ValidationError"
    assert result["code"] == "VALIDATION_FAILED"
    fields = {f["field"] for f in result["fields"]}
    assert fields == {"name", "temperature", "maxIterations", "llm"}
    listed = await client.execute("{ agents { nodes { id } } }")
    assert listed["agents"]["nodes"] == []


async def test_duplicate_name_is_a_conflict(client: GraphQLClient) -> None:
    await create(client)
    result = await create(client, name=" Researcher ")
    assert result["__typename"] == "ConflictError"
    assert result["field"] == "name"
    assert "Researcher" in result["message"]


async def test_update_changes_only_sent_fields_and_null_clears(client: GraphQLClient) -> None:
    created = await create(client, temperature=0.7, maxIterations=3)
    result = (await client.execute(UPDATE, {"id": created["id"], "input": {"goal": "New goal"}}))[
        "updateAgent"
    ]
    assert result["goal"] == "New goal"
    assert result["temperature"] == 0.7
    assert result["name"] == created["name"]
    assert result["updatedAt"] > created["updatedAt"]
    cleared = await client.execute(UPDATE, {"id": created["id"], "input": {"temperature": None}})
    assert cleared["updateAgent"]["temperature"] is None
    assert cleared["updateAgent"]["maxIterations"] == 3


async def test_update_refuses_null_for_required_fields(client: GraphQLClient) -> None:
    created = await create(client)
    result = (await client.execute(UPDATE, {"id": created["id"], "input": {"name": None}}))[
        "updateAgent"
    ]
    assert result["__typename"] == "ValidationError"
    assert [f["field"] for f in result["fields"]] == ["name"]


async def test_update_and_delete_unknown_ids(client: GraphQLClient) -> None:
    for bad_id in ("01900000-0000-7000-8000-000000000000", "not-a-uuid"):
        updated = await client.execute(UPDATE, {"id": bad_id, "input": {"goal": "x"}})
        assert updated["updateAgent"]["__typename"] == "NotFoundError"
        deleted = await client.execute(DELETE, {"id": bad_id})
        assert deleted["deleteAgent"]["__typename"] == "NotFoundError"
        assert (await client.execute(GET, {"id": bad_id}))["agent"] is None


async def test_delete_refused_while_a_task_uses_the_agent(client: GraphQLClient) -> None:
    agent = await create_agent(client, "Writer")
    task = await create_task(client, "Draft", agent)
    refused = (await client.execute(DELETE, {"id": agent}))["deleteAgent"]
    assert refused["__typename"] == "InUseError"
    assert refused["code"] == "IN_USE"
    assert refused["usedBy"] == ["task 'Draft'"]
    assert (await client.execute(GET, {"id": agent}))["agent"] is not None
    await client.execute("mutation($id: ID!) { deleteTask(id: $id) { __typename } }", {"id": task})
    deleted = (await client.execute(DELETE, {"id": agent}))["deleteAgent"]
    assert deleted == {"__typename": "Deleted", "id": agent}
    assert (await client.execute(GET, {"id": agent}))["agent"] is None


async def test_null_for_a_field_with_a_default_means_the_default(client: GraphQLClient) -> None:
    created = await create(client, backstory=None, llm=None, temperature=None)
    assert created["__typename"] == "Agent", created
    assert created["backstory"] == ""
    assert created["llm"] == "simulated"
    assert created["temperature"] is None
