"""Nested fields load in batches: the statement count does not grow with the page size."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AbstractContextManager

from starlette.applications import Starlette

from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.schemas import ExecutionCreate
from backend.services.bundle import Services
from tests.integration.test_event_stream import CONFIG
from tests.support.factories import create_three_task_crew
from tests.support.graphql import GraphQLClient
from tests.support.statements import watched_statements

NESTED = """
query($first: Int) {
  crews(first: $first) {
    edges { node {
      id name
      tasks { id name agent { id name role } context { id name agent { name } } }
      agents { id name }
    } }
  }
}"""


def count_statements(app: Starlette) -> AbstractContextManager[list[str]]:
    # transaction control (BEGIN) is not a query
    return watched_statements(app.state.engine.sync_engine, lambda s: not s.startswith("BEGIN"))


async def test_statements_do_not_grow_with_page_size(client: GraphQLClient, app: Starlette) -> None:
    for i in range(12):
        await create_three_task_crew(client, f"crew{i:02d}")
    counts = {}
    for first in (2, 12):
        with count_statements(app) as statements:
            data = await client.execute(NESTED, {"first": first})
        assert len(data["crews"]["edges"]) == first
        assert all(len(e["node"]["tasks"]) == 3 for e in data["crews"]["edges"])
        counts[first] = len(statements)
    assert counts[2] == counts[12]
    assert counts[2] <= 5, counts


async def test_crew_by_id_uses_a_handful_of_statements(
    client: GraphQLClient, app: Starlette
) -> None:
    made = await create_three_task_crew(client, "one")
    query = "query($id: ID!) { crew(id: $id) { tasks { agent { name } } agents { name } } }"
    with count_statements(app) as statements:
        data = await client.execute(query, {"id": made["crew"]})
    assert len(data["crew"]["tasks"]) == 3
    assert len(statements) <= 5, statements


async def test_execution_lists_with_nested_fields_do_not_grow(
    client: GraphQLClient, app: Starlette
) -> None:
    made = await create_three_task_crew(client, "runs")
    for _ in range(6):
        await client.execute(
            "mutation($c: ID!) { createExecution(input: {crewId: $c}) { __typename } }",
            {"c": made["crew"]},
        )
    query = """
    query($first: Int) {
      executions(first: $first) {
        nodes { id tasks { name status } events(first: 5) { seq type } retries { id } }
      }
    }"""
    counts = {}
    for first in (2, 6):
        with count_statements(app) as statements:
            data = await client.execute(query, {"first": first})
        nodes = data["executions"]["nodes"]
        assert len(nodes) == first
        assert all(n["events"][0]["type"] == "EXECUTION_QUEUED" for n in nodes)
        counts[first] = len(statements)
    assert counts[2] == counts[6], counts


async def test_a_launch_reads_the_crew_once_and_inserts_once_per_table(
    client: GraphQLClient, app: Starlette, services: Services
) -> None:
    made = await create_three_task_crew(client, "launch")
    data = ExecutionCreate(crew_id=uuid.UUID(made["crew"]))
    with count_statements(app) as statements:
        launched = await services.executions.create_execution(WS, data)
    heads = [" ".join(s.split()[:3]) for s in statements]
    assert heads == [
        "SELECT crews.id, crews.name,",
        "INSERT INTO executions",
        "INSERT INTO execution_tasks",
        "INSERT INTO execution_events",
    ], statements
    # Nothing was read back: what the launch answers is what is stored.
    stored = await services.executions.get_execution(WS, launched.id)
    assert dict(launched) == dict(stored)
    assert launched.last_seq == 1
    tasks = (await services.executions.tasks_of(WS, [launched.id]))[launched.id]
    assert [(t.position, t.name, t.status, t.output) for t in tasks] == [
        (0, "launch research", "PENDING", ""),
        (1, "launch outline", "PENDING", ""),
        (2, "launch article", "PENDING", ""),
    ]
    events = await services.executions.events(WS, launched.id)
    assert [(e.seq, e.type, e.status) for e in events] == [(1, "EXECUTION_QUEUED", "QUEUED")]


async def test_launches_made_together_share_one_insert_and_a_conflict_fails_alone(
    app: Starlette, services: Services
) -> None:
    # Inline crews: nothing to read first, so the four launches are ready at the same moment.
    with count_statements(app) as statements:
        launched = await asyncio.gather(
            *(
                services.executions.create_execution(WS, ExecutionCreate(crew=CONFIG))
                for _ in range(4)
            )
        )
    assert len({e.id for e in launched}) == 4
    assert [s.split()[2] for s in statements] == [
        "executions",
        "execution_tasks",
        "execution_events",
    ]
    # Two launches with one idempotency key in the same batch: the batch's insert fails, each is
    # written again alone, and the second answers with the first one's execution.
    keyed = ExecutionCreate(crew=CONFIG, idempotency_key="once")
    first, second, other = await asyncio.gather(
        services.executions.create_execution(WS, keyed),
        services.executions.create_execution(WS, keyed),
        services.executions.create_execution(WS, ExecutionCreate(crew=CONFIG)),
    )
    assert first.id == second.id
    assert other.id != first.id
    for execution in (first, other):
        events = await services.executions.events(WS, execution.id)
        assert [(e.seq, e.type) for e in events] == [(1, "EXECUTION_QUEUED")]
