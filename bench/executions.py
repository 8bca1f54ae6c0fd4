"""GraphQL calls the execution suites share: a crew of simulated agents, launching, cancelling,
reading executions. Everything goes through the server's public API, as a client would."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from bench.seed import CREATE_CREW, CREATE_TASK, RESULT, BenchError

CREATE_AGENT = f"""
mutation CreateAgent($input: AgentCreateInput!) {{
  createAgent(input: $input) {{ {RESULT} ... on Agent {{ id }} }}
}}"""
EXECUTION_FIELDS = "id status lastSeq createdAt startedAt finishedAt error"
CREATE_EXECUTION = f"""
mutation Launch($input: ExecutionCreateInput!) {{
  createExecution(input: $input) {{ {RESULT} ... on Execution {{ {EXECUTION_FIELDS} }} }}
}}"""
CANCEL_EXECUTION = f"""
mutation Cancel($id: ID!) {{
  cancelExecution(id: $id, force: true) {{ {RESULT} ... on Execution {{ {EXECUTION_FIELDS} }} }}
}}"""
EXECUTION = f"query Execution($id: ID!) {{ execution(id: $id) {{ {EXECUTION_FIELDS} }} }}"


def call(
    client: httpx.Client, url: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    reply = client.post(url, json={"query": query, "variables": variables or {}})
    if reply.status_code != 200:
        raise BenchError(f"{url} answered {reply.status_code}: {reply.text[:500]}")
    body: dict[str, Any] = reply.json()
    if body.get("errors"):
        raise BenchError(f"{url} answered errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


def created(result: dict[str, Any], kind: str) -> dict[str, Any]:
    if result["__typename"] != kind:
        raise BenchError(f"create {kind} failed: {result}")
    return result


def create_crew(client: httpx.Client, url: str, name: str, llm: str, tasks: int) -> str:
    """A crew of `tasks` tasks in a row, all done by one agent that uses `llm`."""
    agent = created(
        call(
            client,
            url,
            CREATE_AGENT,
            {
                "input": {
                    "name": f"{name}-agent",
                    "role": "Analyst",
                    "goal": "Answer each task briefly",
                    "llm": llm,
                }
            },
        )["createAgent"],
        "Agent",
    )
    task_ids: list[str] = []
    for n in range(tasks):
        task = created(
            call(
                client,
                url,
                CREATE_TASK,
                {
                    "input": {
                        "name": f"{name}-task-{n + 1}",
                        "description": f"Step {n + 1} of {tasks}: summarise what is known.",
                        "expectedOutput": "A short paragraph.",
                        "agentId": agent["id"],
                        "contextTaskIds": task_ids[-1:],
                    }
                },
            )["createTask"],
            "Task",
        )
        task_ids.append(task["id"])
    crew = created(
        call(client, url, CREATE_CREW, {"input": {"name": name, "taskIds": task_ids}})[
            "createCrew"
        ],
        "Crew",
    )
    crew_id: str = crew["id"]
    return crew_id


def launch(client: httpx.Client, url: str, crew_id: str) -> dict[str, Any]:
    data = call(client, url, CREATE_EXECUTION, {"input": {"crewId": crew_id}})
    return created(data["createExecution"], "Execution")


def cancel(client: httpx.Client, url: str, execution_id: str) -> dict[str, Any]:
    data = call(client, url, CANCEL_EXECUTION, {"id": execution_id})
    return created(data["cancelExecution"], "Execution")


def execution(client: httpx.Client, url: str, execution_id: str) -> dict[str, Any]:
    found = call(client, url, EXECUTION, {"id": execution_id})["execution"]
    if found is None:
        raise BenchError(f"execution {execution_id} not found")
    result: dict[str, Any] = found
    return result


def timestamp(value: str | None) -> float | None:
    """A GraphQL DateTime as seconds since the epoch."""
    return None if value is None else datetime.fromisoformat(value).timestamp()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, -(-len(sorted_values) * q // 100) - 1))
    return sorted_values[int(index)]
