"""Crews through GraphQL: ordered tasks, derived agents, and the context-order rule."""

from __future__ import annotations

from tests.support.factories import create_agent, create_task, create_three_task_crew
from tests.support.graphql import GraphQLClient

CREW = """
query($id: ID!) {
  crew(id: $id) {
    id name description process taskIds
    tasks { name agent { name } context { name } }
    agents { name }
  }
}"""
RESULT = """
    __typename
    ... on Crew { id name taskIds tasks { name } agents { name } }
    ... on Error { code message }
    ... on ValidationError { fields { field message } }
"""
CREATE = f"mutation($input: CrewCreateInput!) {{ createCrew(input: $input) {{ {RESULT} }} }}"
UPDATE = (
    f"mutation($id: ID!, $input: CrewUpdateInput!) {{ updateCrew(id: $id, input: $input) "
    f"{{ {RESULT} }} }}"
)


async def test_read_back_with_tasks_and_agents(client: GraphQLClient) -> None:
    made = await create_three_task_crew(client, "blog")
    crew = (await client.execute(CREW, {"id": made["crew"]}))["crew"]
    assert crew["process"] == "SEQUENTIAL"
    assert crew["taskIds"] == made["tasks"]
    assert crew["tasks"] == [
        {"name": "blog research", "agent": {"name": "blog researcher"}, "context": []},
        {
            "name": "blog outline",
            "agent": {"name": "blog writer"},
            "context": [{"name": "blog research"}],
        },
        {
            "name": "blog article",
            "agent": {"name": "blog writer"},
            "context": [{"name": "blog research"}, {"name": "blog outline"}],
        },
    ]
    assert crew["agents"] == [{"name": "blog researcher"}, {"name": "blog writer"}]


async def test_context_must_run_earlier_in_the_crew(client: GraphQLClient) -> None:
    agent = await create_agent(client, "A")
    a = await create_task(client, "a", agent)
    b = await create_task(client, "b", agent, [a])
    wrong_order = await client.execute(CREATE, {"input": {"name": "c", "taskIds": [b, a]}})
    result = wrong_order["createCrew"]
    assert result["__typename"] == "ValidationError"
    assert "'b'" in result["fields"][0]["message"]
    missing_context = await client.execute(CREATE, {"input": {"name": "c", "taskIds": [b]}})
    assert missing_context["createCrew"]["__typename"] == "ValidationError"
    ok = await client.execute(CREATE, {"input": {"name": "c", "taskIds": [a, b]}})
    assert ok["createCrew"]["tasks"] == [{"name": "a"}, {"name": "b"}]


async def test_bad_crews_are_refused_and_nothing_is_written(client: GraphQLClient) -> None:
    agent = await create_agent(client, "A")
    a = await create_task(client, "a", agent)
    missing = "01900000-0000-7000-8000-000000000000"
    cases = [
        {"name": "empty", "taskIds": []},
        {"name": "dup", "taskIds": [a, a]},
        {"name": "missing", "taskIds": [a, missing]},
        {"name": "", "taskIds": [a]},
        {"name": "bad id", "taskIds": ["x"]},
    ]
    for values in cases:
        result = (await client.execute(CREATE, {"input": values}))["createCrew"]
        assert result["__typename"] == "ValidationError", (values, result)
    assert (await client.execute("{ crews { nodes { id } } }"))["crews"]["nodes"] == []


async def test_update_reorders_and_renames(client: GraphQLClient) -> None:
    agent = await create_agent(client, "A")
    a = await create_task(client, "a", agent)
    b = await create_task(client, "b", agent)
    crew = (await client.execute(CREATE, {"input": {"name": "c", "taskIds": [a, b]}}))["createCrew"]
    result = (
        await client.execute(
            UPDATE, {"id": crew["id"], "input": {"taskIds": [b, a], "description": "swapped"}}
        )
    )["updateCrew"]
    assert result["taskIds"] == [b, a]
    assert result["name"] == "c"
    other = (await client.execute(CREATE, {"input": {"name": "d", "taskIds": [a]}}))["createCrew"]
    clash = await client.execute(UPDATE, {"id": other["id"], "input": {"name": "c"}})
    assert clash["updateCrew"]["__typename"] == "ConflictError"


async def test_delete_crew_keeps_tasks(client: GraphQLClient) -> None:
    made = await create_three_task_crew(client, "x")
    deleted = await client.execute(
        "mutation($id: ID!) { deleteCrew(id: $id) { __typename ... on Deleted { id } } }",
        {"id": made["crew"]},
    )
    assert deleted["deleteCrew"] == {"__typename": "Deleted", "id": made["crew"]}
    assert (await client.execute(CREW, {"id": made["crew"]}))["crew"] is None
    tasks = await client.execute("{ tasks { nodes { id } } }")
    assert len(tasks["tasks"]["nodes"]) == 3


async def test_reads_of_some_fields_do_not_answer_other_fields(client: GraphQLClient) -> None:
    """The crew read path reads only the selected columns; another field of the same operation
    that asks for more of the same task and agent still gets every field."""
    made = await create_three_task_crew(client, "narrow")
    query = """
    query($id: ID!, $task: ID!) {
      crew(id: $id) { id tasks { id name agent { id } } }
      crews(first: 5) { edges { node { id tasks { createdAt agent { role } } } } }
      task(id: $task) { id name description expectedOutput createdAt agent { name role createdAt } }
    }"""
    data = await client.execute(query, {"id": made["crew"], "task": made["tasks"][0]})
    assert [t["name"] for t in data["crew"]["tasks"]] == [
        "narrow research",
        "narrow outline",
        "narrow article",
    ]
    node = data["crews"]["edges"][0]["node"]
    assert node["id"] == made["crew"]
    assert all(t["createdAt"] and t["agent"]["role"] for t in node["tasks"])
    task = data["task"]
    assert task["id"] == made["tasks"][0]
    assert task["name"] == "narrow research"
    assert task["description"]
    assert task["expectedOutput"]
    assert task["createdAt"]
    assert task["agent"]["name"] == "narrow researcher"
    assert task["agent"]["role"]
    assert task["agent"]["createdAt"]
