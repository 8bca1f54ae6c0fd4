"""Seeds our server through its own GraphQL API and checks what the queries will return."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bench.data import CrewSpec, crew_spec
from bench.queries import CREW_BY_ID, CREWS_PAGE, PAGE_SIZE

RESULT = "__typename ... on Error { code message }"

CREATE_AGENTS = f"""
mutation CreateAgents($a: AgentCreateInput!, $b: AgentCreateInput!) {{
  a: createAgent(input: $a) {{ {RESULT} ... on Agent {{ id }} }}
  b: createAgent(input: $b) {{ {RESULT} ... on Agent {{ id }} }}
}}"""
CREATE_TASK = f"""
mutation CreateTask($input: TaskCreateInput!) {{
  createTask(input: $input) {{ {RESULT} ... on Task {{ id }} }}
}}"""
CREATE_CREW = f"""
mutation CreateCrew($input: CrewCreateInput!) {{
  createCrew(input: $input) {{ {RESULT} ... on Crew {{ id }} }}
}}"""


class BenchError(Exception):
    """The bench cannot go on; the message says why."""


async def graphql(
    client: httpx.AsyncClient, url: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    return data_of(url, await client.post(url, json={"query": query, "variables": variables or {}}))


def data_of(url: str, reply: httpx.Response) -> dict[str, Any]:
    """The `data` of a GraphQL answer; BenchError on any other status or on errors."""
    if reply.status_code != 200:
        raise BenchError(f"{url} answered {reply.status_code}: {reply.text[:500]}")
    body: dict[str, Any] = reply.json()
    if body.get("errors"):
        raise BenchError(f"{url} answered errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


def _created(result: dict[str, Any], kind: str) -> str:
    if result["__typename"] != kind:
        raise BenchError(f"create {kind} failed: {result}")
    created: str = result["id"]
    return created


async def _seed_crew(client: httpx.AsyncClient, url: str, spec: CrewSpec) -> str:
    agents = await graphql(
        client,
        url,
        CREATE_AGENTS,
        {
            key: {"name": a.name, "role": a.role, "goal": a.goal}
            for key, a in zip(("a", "b"), spec.agents, strict=True)
        },
    )
    agent_ids = [_created(agents["a"], "Agent"), _created(agents["b"], "Agent")]
    task_ids: list[str] = []
    for task in spec.tasks:
        data = await graphql(
            client,
            url,
            CREATE_TASK,
            {
                "input": {
                    "name": task.name,
                    "description": task.description,
                    "expectedOutput": task.expected_output,
                    "agentId": agent_ids[task.agent],
                    "contextTaskIds": [task_ids[i] for i in task.context],
                }
            },
        )
        task_ids.append(_created(data["createTask"], "Task"))
    data = await graphql(
        client,
        url,
        CREATE_CREW,
        {"input": {"name": spec.name, "description": spec.description, "taskIds": task_ids}},
    )
    return _created(data["createCrew"], "Crew")


async def _seed(url: str, count: int, concurrency: int) -> list[str]:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30.0) as client:

        async def one(n: int) -> str:
            async with limit:
                return await _seed_crew(client, url, crew_spec(n))

        return await asyncio.gather(*(one(n) for n in range(count)))


def seed(url: str, count: int, concurrency: int = 4) -> list[str]:
    """Creates `count` crews (2 agents, 3 tasks with context each); returns the crew ids."""
    return asyncio.run(_seed(url, count, concurrency))


def check_crew(crew: dict[str, Any] | None, where: str) -> None:
    if crew is None:
        raise BenchError(f"{where}: crew not found")
    if len(crew["tasks"]) != 3 or len(crew["agents"]) != 2:
        raise BenchError(f"{where}: expected 3 tasks and 2 agents, got {crew}")
    if any(task["agent"] is None for task in crew["tasks"]):
        raise BenchError(f"{where}: a task has no agent: {crew}")


async def _check(url: str, crew_id: str | None) -> None:
    async with httpx.AsyncClient(timeout=30.0) as client:
        page = await graphql(client, url, CREWS_PAGE)
        edges = page["crews"]["edges"]
        if len(edges) != PAGE_SIZE:
            raise BenchError(f"{url}: crews(first: {PAGE_SIZE}) returned {len(edges)} crews")
        for edge in edges:
            check_crew(edge["node"], f"{url} crews")
        if crew_id is not None:
            one = await graphql(client, url, CREW_BY_ID, {"id": crew_id})
            check_crew(one["crew"], f"{url} crew({crew_id})")


def check_answers(url: str, crew_id: str | None) -> None:
    """Both measured queries answer without errors and with the full shape."""
    asyncio.run(_check(url, crew_id))


async def _first_crew_id(url: str) -> str:
    async with httpx.AsyncClient(timeout=30.0) as client:
        data = await graphql(client, url, "{ crews(first: 1) { edges { node { id } } } }")
        crew_id: str = data["crews"]["edges"][0]["node"]["id"]
        return crew_id


def first_crew_id(url: str) -> str:
    return asyncio.run(_first_crew_id(url))
