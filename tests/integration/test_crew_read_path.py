"""The crew read path's fast lane (the driver's own fetch, SQLAlchemy's converters applied by
hand) reads exactly what a plain ORM read of the same rows gives, on both databases.

`CrewRepository.graph_rows` skips SQLAlchemy's result machinery when nothing watches statements;
a converter applied wrongly (a UUID left as bytes or hex, a timestamp left as text or without its
time zone, a bind parameter sent unconverted) would show here as a difference.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import pytest
from pydantic import BaseModel
from sqlalchemy import Table, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.models import Agent, Crew, CrewTask, Task, TaskContext
from backend.repositories import driver_fetch
from backend.repositories.crew import GraphColumns
from backend.schemas import (
    AgentCreate,
    AgentResponse,
    CrewCreate,
    CrewResponse,
    PageRequest,
    TaskCreate,
    TaskResponse,
)
from backend.services.bundle import Services
from backend.services.crew_graph import CrewGraph


async def seed(services: Services) -> list[uuid.UUID]:
    crews = services.crews
    writer = await crews.create_agent(WS, AgentCreate(name="writer", role="w", goal="g", llm="x"))
    editor = await crews.create_agent(
        WS, AgentCreate(name="editor", role="e", goal="g", backstory="b", temperature=0.3)
    )
    first = await crews.create_task(
        WS, TaskCreate(name="draft", description="d", expected_output="o", agent_id=writer.id)
    )
    second = await crews.create_task(
        WS,
        TaskCreate(
            name="edit",
            description="e",
            expected_output="o",
            agent_id=editor.id,
            context_task_ids=[first.id],
        ),
    )
    third = await crews.create_task(
        WS,
        TaskCreate(
            name="sum up",
            description="s",
            expected_output="o",
            agent_id=writer.id,
            context_task_ids=[second.id, first.id],
        ),
    )
    made = [
        await crews.create_crew(
            WS, CrewCreate(name="all", task_ids=[first.id, second.id, third.id])
        ),
        await crews.create_crew(WS, CrewCreate(name="one", description="x", task_ids=[first.id])),
        await crews.create_crew(WS, CrewCreate(name="two", task_ids=[first.id, second.id])),
    ]
    return [crew.id for crew in made]


def columns(row: Any, model: Any) -> dict[str, Any]:
    table = cast(Table, model.__table__)
    return {column.key: getattr(row, column.key) for column in table.columns}


async def orm_read(app: Starlette, crew_ids: list[uuid.UUID]) -> dict[str, Any]:
    """The same crews, their tasks (with context) and agents, through plain ORM queries."""
    async with AsyncSession(app.state.engine) as session:
        crews = (await session.scalars(select(Crew).where(Crew.id.in_(crew_ids)))).all()
        links = (await session.scalars(select(CrewTask).order_by(CrewTask.position))).all()
        context = (await session.scalars(select(TaskContext).order_by(TaskContext.position))).all()
        tasks = (await session.scalars(select(Task).where(Task.workspace_id == WS))).all()
        agents = (await session.scalars(select(Agent).where(Agent.workspace_id == WS))).all()
    task_ids = {c.id: [link.task_id for link in links if link.crew_id == c.id] for c in crews}
    used = {task_id for ids in task_ids.values() for task_id in ids}
    used_tasks = [t for t in tasks if t.id in used]
    return {
        "crews": {
            c.id: {**columns(c, Crew), "task_ids": task_ids[c.id]}
            for c in sorted(crews, key=lambda c: c.id, reverse=True)
        },
        "tasks": {
            t.id: {
                **columns(t, Task),
                "context_task_ids": [x.context_task_id for x in context if x.task_id == t.id],
            }
            for t in used_tasks
        },
        "agents": {
            a.id: columns(a, Agent) for a in agents if a.id in {t.agent_id for t in used_tasks}
        },
    }


def as_dicts(graph: CrewGraph) -> dict[str, Any]:
    return {
        "crews": {crew.id: dict(crew.__dict__) for crew in graph.crews},
        "tasks": {task.id: dict(task.__dict__) for task in graph.tasks.values()},
        "agents": {agent.id: dict(agent.__dict__) for agent in graph.agents.values()},
    }


SCHEMAS: dict[str, type[BaseModel]] = {
    "crews": CrewResponse,
    "tasks": TaskResponse,
    "agents": AgentResponse,
}


def comparable(graph: dict[str, Any]) -> dict[str, Any]:
    """Every field of the response schemas, value for value (a missing one fails)."""
    return {
        kind: {
            key: {f: values[f] for f in SCHEMAS[kind].model_fields} for key, values in rows.items()
        }
        for kind, rows in graph.items()
    }


@pytest.fixture
def fast_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the reads that took the fast lane (only it converts driver rows itself)."""
    calls: list[int] = []
    original = driver_fetch._Compiled.converted

    def counted(self: Any, records: list[Any], coltypes: Any) -> list[Sequence[Any]]:
        calls.append(len(records))
        return original(self, records, coltypes)

    monkeypatch.setattr(driver_fetch._Compiled, "converted", counted)
    return calls


async def test_a_page_read_on_the_fast_path_equals_the_orm_read(
    app: Starlette, services: Services, fast_reads: list[int]
) -> None:
    crew_ids = await seed(services)
    graph = await services.crews.crew_graph(WS, page=PageRequest(first=10))
    assert fast_reads, "the page was not read on the fast path"
    reference = await orm_read(app, crew_ids)
    read = as_dicts(graph)
    assert list(read["crews"]) == list(reference["crews"])  # newest first
    assert comparable(read) == comparable(reference)


async def test_one_crew_on_the_fast_path_equals_the_orm_read(
    app: Starlette, services: Services, fast_reads: list[int]
) -> None:
    crew_ids = await seed(services)
    graph = await services.crews.crew_graph(WS, crew_ids=[crew_ids[0]])
    assert fast_reads, "the crew was not read on the fast path"
    reference = await orm_read(app, [crew_ids[0]])
    assert comparable(as_dicts(graph)) == comparable(reference)


async def test_the_fast_path_and_sqlalchemy_path_agree(
    app: Starlette, services: Services, fast_reads: list[int]
) -> None:
    """With a statement listener attached the same read runs through SQLAlchemy's own
    execution; both lanes must give the same graph."""
    await seed(services)
    fast = as_dicts(await services.crews.crew_graph(WS, page=PageRequest(first=10)))
    taken = len(fast_reads)

    def watch(*_: Any) -> None:
        pass

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", watch)
    try:
        plain = as_dicts(await services.crews.crew_graph(WS, page=PageRequest(first=10)))
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert len(fast_reads) == taken, "the watched read took the fast path"
    assert fast == plain


def test_the_read_path_reads_every_stored_field_of_the_response_schemas() -> None:
    """A field added to a response schema (and so to a launch's snapshot) but not to the read
    path's columns would be missing from every crew read and every snapshot."""
    lists = {"task_ids", "context_task_ids"}  # the ordered lists, read from their own tables
    assert set(GraphColumns.crew) == set(CrewResponse.model_fields) - lists
    assert set(GraphColumns.task) == set(TaskResponse.model_fields) - lists
    assert set(GraphColumns.agent) == set(AgentResponse.model_fields)
