"""Creating agents, tasks and crews through the public API, for tests that need some."""

from __future__ import annotations

from typing import Any

from tests.support.graphql import GraphQLClient

CREATE_AGENT = """
mutation($input: AgentCreateInput!) {
  createAgent(input: $input) { __typename ... on Agent { id name } ... on Error { code message } }
}"""
CREATE_TASK = """
mutation($input: TaskCreateInput!) {
  createTask(input: $input) { __typename ... on Task { id name } ... on Error { code message } }
}"""
CREATE_CREW = """
mutation($input: CrewCreateInput!) {
  createCrew(input: $input) { __typename ... on Crew { id name } ... on Error { code message } }
}"""


async def _create(client: GraphQLClient, query: str, field: str, values: dict[str, Any]) -> str:
    result = (await client.execute(query, {"input": values}))[field]
    assert "id" in result, result
    return str(result["id"])


async def create_agent(client: GraphQLClient, name: str, **values: Any) -> str:
    values = {"role": f"{name} role", "goal": f"{name} goal", **values, "name": name}
    return await _create(client, CREATE_AGENT, "createAgent", values)


async def create_task(
    client: GraphQLClient, name: str, agent_id: str, context: list[str] | None = None, **values: Any
) -> str:
    values = {
        "description": f"Do {name}",
        "expectedOutput": f"{name} done",
        **values,
        "name": name,
        "agentId": agent_id,
        "contextTaskIds": context or [],
    }
    return await _create(client, CREATE_TASK, "createTask", values)


async def create_crew(client: GraphQLClient, name: str, task_ids: list[str], **values: Any) -> str:
    values = {**values, "name": name, "taskIds": task_ids}
    return await _create(client, CREATE_CREW, "createCrew", values)


async def create_three_task_crew(client: GraphQLClient, prefix: str) -> dict[str, Any]:
    """A researcher and a writer; research → outline (reads research) → article (reads both)."""
    researcher = await create_agent(client, f"{prefix} researcher")
    writer = await create_agent(client, f"{prefix} writer")
    research = await create_task(client, f"{prefix} research", researcher)
    outline = await create_task(client, f"{prefix} outline", writer, [research])
    article = await create_task(client, f"{prefix} article", writer, [research, outline])
    crew = await create_crew(client, f"{prefix} crew", [research, outline, article])
    return {
        "crew": crew,
        "agents": [researcher, writer],
        "tasks": [research, outline, article],
    }
