"""Turns service results into GraphQL objects, loading exactly the relations the query selects.

Root resolvers hand their results here. We read the operation's selection once, load each level
of related objects in one batch through the per-operation DataLoaders, and return objects whose
nested fields are plain attributes. graphql-core then resolves them without scheduling a
coroutine per item, which on list pages is several times cheaper than an async resolver per field
(measured in docs/performance.md), while the number of SQL statements stays independent of the
page size.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from backend.api.graphql.context import Info
from backend.api.graphql.mirror import to_type
from backend.api.graphql.types.agent import Agent
from backend.api.graphql.types.crew import Crew
from backend.api.graphql.types.task import Task
from backend.schemas import AgentResponse, CrewResponse, TaskResponse
from backend.services.crew_graph import CrewGraph, GraphFields

GqlT = TypeVar("GqlT")


agent_type = to_type(Agent, AgentResponse)
task_type = to_type(Task, TaskResponse)
crew_type = to_type(Crew, CrewResponse)
partial_agent_type = to_type(Agent, AgentResponse, partial=True)
partial_task_type = to_type(Task, TaskResponse, partial=True)
partial_crew_type = to_type(Crew, CrewResponse, partial=True)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# GraphQL field name -> response schema field, per schema (the types mirror the schemas).
_GRAPHQL_NAMES = {
    schema: {_camel(name): name for name in schema.model_fields}
    for schema in (CrewResponse, TaskResponse, AgentResponse)
}


@lru_cache(maxsize=512)
def graph_fields(names: frozenset[str]) -> GraphFields:
    """The crew, task and agent fields a selection needs (coarse, as `selected_names`)."""
    crew, task, agent = (
        frozenset(field for graphql, field in _GRAPHQL_NAMES[schema].items() if graphql in names)
        for schema in (CrewResponse, TaskResponse, AgentResponse)
    )
    return crew, task, agent


def selected_names(info: Info) -> frozenset[str]:
    """Every field name selected below the current field (fragments included).

    Coarse on purpose: a name anywhere in the subtree loads that relation for every level, which
    can only load more than needed, never less.
    """
    names: set[str] = set()
    stack: list[Any] = list(info.selected_fields)
    while stack:
        node = stack.pop()
        name = getattr(node, "name", None)
        if name is not None:
            names.add(name)
        stack.extend(getattr(node, "selections", ()))
    return frozenset(names)


class Graph:
    """Builds the objects of one root field's answer, sharing each object between its parents."""

    def __init__(self, info: Info) -> None:
        self.info = info
        self.names = selected_names(info)
        self.loaders = info.context.loaders

    @property
    def graph_shape(self) -> tuple[bool, bool]:
        """What `CrewService.crew_graph` must read for this selection: (tasks, agents)."""
        return bool({"tasks", "agents"} & self.names), bool({"agent", "agents"} & self.names)

    @property
    def graph_fields(self) -> GraphFields:
        """The crew, task and agent fields `CrewService.crew_graph` must read."""
        return graph_fields(self.names)

    async def crew_by_id(self, crew_id: uuid.UUID, *, fresh: bool = False) -> Crew | None:
        """One crew through the read path (batched with other crews of the operation).

        `fresh` after a write: what this operation read before the write must not answer.
        """
        key = (*self.graph_shape, self.graph_fields, crew_id)
        if fresh and self.loaders.crew_graph.cache_map.get(key) is not None:
            self.loaders.crew_graph.clear(key)
        graph = await self.loaders.crew_graph.load(key)
        built = await self.crew_graph(graph, fresh=fresh)
        return built[0] if built else None

    async def crew_graph(self, graph: CrewGraph, *, fresh: bool = False) -> list[Crew]:
        """Crews read by `CrewService.crew_graph`: built straight from what it loaded, and the
        loaders primed with it for the rest of the operation."""
        if graph.complete:  # objects with fewer fields are for this field only
            self.loaders.prime(graph, force=fresh)
        return await self.crews(graph.crews, graph)

    async def crews(
        self, crews: Sequence[CrewResponse], graph: CrewGraph | None = None
    ) -> list[Crew]:
        partial = graph is not None and not graph.complete
        result = [(partial_crew_type if partial else crew_type)(c) for c in crews]
        if not {"tasks", "agents"} & self.names:
            return result
        task_ids = list(dict.fromkeys(tid for c in crews for tid in c.task_ids))
        if graph is None:
            loaded = await self._load_tasks(task_ids)
        else:
            loaded = {tid: graph.tasks[tid] for tid in task_ids if tid in graph.tasks}
            missing = [tid for tid in task_ids if tid not in loaded]
            if missing:  # not expected (the join reads every task), but never less than asked
                loaded.update(await self._load_tasks(missing))
        tasks = await self._task_objects(
            loaded, graph.agents if graph is not None else None, partial=partial
        )
        for crew, source in zip(result, crews, strict=True):
            crew.tasks = [tasks[tid] for tid in source.task_ids if tid in tasks]
            if "agents" in self.names:
                crew.agents = list({id(t.agent): t.agent for t in crew.tasks}.values())
        return result

    async def tasks(self, tasks: Sequence[TaskResponse]) -> list[Task]:
        built = await self._task_objects({t.id: t for t in tasks})
        return [built[t.id] for t in tasks]

    def agents(self, agents: Iterable[AgentResponse]) -> list[Agent]:
        return [agent_type(a) for a in agents]

    async def _load_tasks(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TaskResponse]:
        loaded = await self.loaders.task.load_many(ids)
        return {t.id: t for t in loaded if t is not None}

    async def _task_objects(
        self,
        tasks: dict[uuid.UUID, TaskResponse],
        known_agents: dict[uuid.UUID, AgentResponse] | None = None,
        *,
        partial: bool = False,
    ) -> dict[uuid.UUID, Task]:
        if "context" in self.names:  # close over context: context tasks may have context too
            missing = {c for t in tasks.values() for c in t.context_task_ids} - tasks.keys()
            while missing:
                found = await self._load_tasks(list(missing))
                tasks.update(found)
                missing = {c for t in found.values() for c in t.context_task_ids} - tasks.keys()
        to_task, to_agent = (
            (partial_task_type, partial_agent_type) if partial else (task_type, agent_type)
        )
        built = {tid: to_task(t) for tid, t in tasks.items()}
        if {"agent", "agents"} & self.names:
            agent_ids = list(dict.fromkeys(t.agent_id for t in tasks.values()))
            sources = dict(known_agents or {})
            unknown = [aid for aid in agent_ids if aid not in sources]
            if unknown:
                loaded = await self.loaders.agent.load_many(unknown)
                sources.update((a.id, a) for a in loaded if a is not None)
            agents = {aid: to_agent(sources[aid]) for aid in agent_ids if aid in sources}
            for tid, task in built.items():
                task.agent = agents[tasks[tid].agent_id]
        if "context" in self.names:
            for tid, task in built.items():
                task.context = [built[c] for c in tasks[tid].context_task_ids if c in built]
        return built
