"""Per-operation DataLoaders: every id asked for during one operation is fetched in one batch.

Each batch is one service call, which opens its own short unit of work. What the crew read path
(`CrewService.crew_graph`) loads is primed into the crew, task and agent loaders, so any other
field of the same operation that asks for those ids gets them without a query. The caches live
for one operation only: nothing is reused across requests, so nothing can be stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from strawberry.dataloader import DataLoader

from backend.schemas import (
    AgentResponse,
    CrewResponse,
    ExecutionEventResponse,
    ExecutionResponse,
    ExecutionTaskResponse,
    TaskResponse,
)
from backend.services.bundle import Services
from backend.services.crew_graph import CrewGraph, GraphFields

T = TypeVar("T")

Fetch = Callable[[uuid.UUID, Sequence[uuid.UUID]], Awaitable[dict[uuid.UUID, T]]]


def _by_id(fetch: Fetch[T], workspace_id: uuid.UUID) -> DataLoader[uuid.UUID, T | None]:
    async def load(keys: list[uuid.UUID]) -> list[T | None]:
        found = await fetch(workspace_id, keys)
        return [found.get(key) for key in keys]

    return DataLoader(load_fn=load)


def _lists(fetch: Fetch[list[T]], workspace_id: uuid.UUID) -> DataLoader[uuid.UUID, list[T]]:
    async def load(keys: list[uuid.UUID]) -> list[list[T]]:
        found = await fetch(workspace_id, keys)
        return [found.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


# (with_tasks, with_agents, fields, crew_id): the crew read path's key; one statement per shape
# per batch.
GraphKey = tuple[bool, bool, GraphFields, uuid.UUID]
GraphShape = tuple[bool, bool, GraphFields]


def _crew_graphs(services: Services, workspace_id: uuid.UUID) -> DataLoader[GraphKey, CrewGraph]:
    async def load(keys: list[GraphKey]) -> list[CrewGraph]:
        shapes: dict[GraphShape, list[uuid.UUID]] = {}
        for with_tasks, with_agents, fields, crew_id in keys:
            shapes.setdefault((with_tasks, with_agents, fields), []).append(crew_id)
        graphs: dict[GraphShape, CrewGraph] = {}
        for (with_tasks, with_agents, fields), ids in shapes.items():
            graphs[with_tasks, with_agents, fields] = await services.crews.crew_graph(
                workspace_id,
                crew_ids=ids,
                with_tasks=with_tasks,
                with_agents=with_agents,
                fields=fields,
            )
        found: list[CrewGraph] = []
        for with_tasks, with_agents, fields, crew_id in keys:
            graph = graphs[with_tasks, with_agents, fields]
            crews = [c for c in graph.crews if c.id == crew_id]
            found.append(
                CrewGraph(
                    crews=crews, tasks=graph.tasks, agents=graph.agents, complete=graph.complete
                )
            )
        return found

    return DataLoader(load_fn=load)


class Loaders:
    def __init__(self, services: Services, workspace_id: uuid.UUID) -> None:
        crews = services.crews
        executions = services.executions
        self.agent: DataLoader[uuid.UUID, AgentResponse | None] = _by_id(
            crews.agents_by_ids, workspace_id
        )
        self.task: DataLoader[uuid.UUID, TaskResponse | None] = _by_id(
            crews.tasks_by_ids, workspace_id
        )
        self.crew: DataLoader[uuid.UUID, CrewResponse | None] = _by_id(
            crews.crews_by_ids, workspace_id
        )
        self.crew_graph: DataLoader[GraphKey, CrewGraph] = _crew_graphs(services, workspace_id)
        self.execution: DataLoader[uuid.UUID, ExecutionResponse | None] = _by_id(
            executions.executions_by_ids, workspace_id
        )
        self.execution_tasks: DataLoader[uuid.UUID, list[ExecutionTaskResponse]] = _lists(
            executions.tasks_of, workspace_id
        )
        self.retries: DataLoader[uuid.UUID, list[ExecutionResponse]] = _lists(
            executions.retries_of, workspace_id
        )

        async def load_events(
            keys: list[tuple[uuid.UUID, int, int]],
        ) -> list[list[ExecutionEventResponse]]:
            """Keys are (execution, after, first); one statement per distinct (after, first)."""
            found: dict[tuple[uuid.UUID, int, int], list[ExecutionEventResponse]] = {}
            for after, first in {(a, f) for _, a, f in keys}:
                ids = [i for i, a, f in keys if (a, f) == (after, first)]
                batch = await executions.events_of_many(workspace_id, ids, after=after, limit=first)
                found.update({(i, after, first): batch[i] for i in ids})
            return [found[key] for key in keys]

        self.events: DataLoader[tuple[uuid.UUID, int, int], list[ExecutionEventResponse]] = (
            DataLoader(load_fn=load_events)
        )

    def prime(self, graph: CrewGraph, *, force: bool = False) -> None:
        """Remembers, for this operation, the crews, tasks and agents the read path loaded
        (`force` after a write: newer than what the operation may have read before)."""
        self.crew.prime_many({c.id: c for c in graph.crews}, force=force)
        self.task.prime_many(graph.tasks, force=force)
        self.agent.prime_many(graph.agents, force=force)
