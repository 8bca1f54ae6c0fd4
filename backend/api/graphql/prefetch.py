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
from typing import Any

from backend.api.graphql.context import Info
from backend.api.graphql.mirror import to_type
from backend.api.graphql.types.agent import Agent
from backend.api.graphql.types.crew import Crew
from backend.api.graphql.types.task import Task
from backend.schemas import AgentResponse, CrewResponse, TaskResponse

agent_type = to_type(Agent, AgentResponse)
task_type = to_type(Task, TaskResponse)
crew_type = to_type(Crew, CrewResponse)


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

    async def crews(self, crews: Sequence[CrewResponse]) -> list[Crew]:
        result = [crew_type(c) for c in crews]
        if not {"tasks", "agents"} & self.names:
            return result
        task_ids = list(dict.fromkeys(tid for c in crews for tid in c.task_ids))
        tasks = await self._task_objects(await self._load_tasks(task_ids))
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

    async def _task_objects(self, tasks: dict[uuid.UUID, TaskResponse]) -> dict[uuid.UUID, Task]:
        if "context" in self.names:  # close over context: context tasks may have context too
            missing = {c for t in tasks.values() for c in t.context_task_ids} - tasks.keys()
            while missing:
                found = await self._load_tasks(list(missing))
                tasks.update(found)
                missing = {c for t in found.values() for c in t.context_task_ids} - tasks.keys()
        built = {tid: task_type(t) for tid, t in tasks.items()}
        if {"agent", "agents"} & self.names:
            agent_ids = list(dict.fromkeys(t.agent_id for t in tasks.values()))
            loaded = await self.loaders.agent.load_many(agent_ids)
            agents = {a.id: agent_type(a) for a in loaded if a is not None}
            for tid, task in built.items():
                task.agent = agents[tasks[tid].agent_id]
        if "context" in self.names:
            for tid, task in built.items():
                task.context = [built[c] for c in tasks[tid].context_task_ids if c in built]
        return built
