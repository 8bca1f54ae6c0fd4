"""CrewService: agents, tasks and crews, the rules that tie them together, in one place.

Consolidated as the seed describes: the three are one domain (a crew is its tasks, a task is its
agent and its context), so the rules that cross them (a task's agent must exist, context must come
earlier in every crew that runs the task, nothing in use may be deleted) live beside each other.
Every method takes the workspace explicitly; services raise domain errors and never see GraphQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError

from backend.core.errors import Conflict, FieldProblem, InUse, NotFound, ValidationFailed
from backend.core.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.repositories.crew import GraphLayout
from backend.schemas import (
    AgentCreate,
    AgentResponse,
    AgentUpdate,
    CrewConfig,
    CrewCreate,
    CrewResponse,
    CrewUpdate,
    Page,
    PageRequest,
    TaskCreate,
    TaskResponse,
    TaskUpdate,
    TimeRange,
)
from backend.services.execution_config import snapshot_of
from backend.utils.time import utcnow

ANY_TIME = TimeRange()

# The fields of crews, tasks and agents a read needs (see `CrewService.crew_graph`).
GraphFields = tuple[frozenset[str], frozenset[str], frozenset[str]]


def _agent(row: Row[Any]) -> AgentResponse:
    return AgentResponse.model_construct(**row._mapping)


def _task(row: Row[Any], context_ids: list[uuid.UUID]) -> TaskResponse:
    return TaskResponse.model_construct(**row._mapping, context_task_ids=context_ids)


def _crew(row: Row[Any], task_ids: list[uuid.UUID]) -> CrewResponse:
    return CrewResponse.model_construct(**row._mapping, task_ids=task_ids)


ModelT = TypeVar("ModelT", bound=BaseModel)


def _trusted(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """A response schema from stored values that carry every field: `model_construct` without
    its per-field loop (defaults, aliases), about 4 times cheaper; the read path builds one per
    row (600 for a page of 100 crews). Nothing is validated, as with `model_construct`."""
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", set(values))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


@dataclass(slots=True)
class CrewGraph:
    """Crews with everything their tasks need, read in one statement: what a page shows.

    `tasks` and `agents` hold every task and agent of those crews (when asked for), shared
    between crews; a task's context tasks are ids, found in `tasks` when a crew runs them.
    When `complete` is false, only the fields asked for were read (ids always): the objects
    carry those fields only, and are for the operation that asked, not for sharing.
    """

    crews: list[CrewResponse]
    tasks: dict[uuid.UUID, TaskResponse] = field(default_factory=dict)
    agents: dict[uuid.UUID, AgentResponse] = field(default_factory=dict)
    has_next_page: bool = False
    has_previous_page: bool = False
    complete: bool = True


def _graph(rows: Sequence[Sequence[Any]], g: GraphLayout) -> CrewGraph:
    """Folds the joined rows (one per crew, task and context entry) into shared objects."""
    crew_names, task_names, agent_names = g.crew, g.task, g.agent
    crew_end, position, task_id_at, context_at = (
        g.crew_end,
        g.position,
        g.task_id,
        g.context_task_id,
    )
    task_start, task_end, agent_start, agent_end = (
        g.task_start,
        g.task_end,
        g.agent_start,
        g.agent_end,
    )
    with_tasks, with_agents = g.with_tasks, g.with_agents
    crews: dict[uuid.UUID, dict[str, Any]] = {}
    tasks: dict[uuid.UUID, dict[str, Any]] = {}
    agents: dict[uuid.UUID, AgentResponse] = {}
    last: tuple[Any, Any] | None = None
    filling: list[uuid.UUID] | None = None  # context list of a task seen for the first time
    for row in rows:
        crew_id = row[0]
        crew = crews.get(crew_id)
        if crew is None:
            crew = crews[crew_id] = dict(zip(crew_names, row[:crew_end], strict=True))
            crew["task_ids"] = []
        task_id = row[task_id_at]
        if task_id is None:
            continue
        slot = (crew_id, row[position])
        if slot != last:  # a new task of this crew (further rows of a slot are its context)
            last = slot
            crew["task_ids"].append(task_id)
            filling = None
            if with_tasks and task_id not in tasks and row[task_start] is not None:
                task = tasks[task_id] = dict(zip(task_names, row[task_start:task_end], strict=True))
                filling = task["context_task_ids"] = []
                if with_agents:
                    agent_id = row[agent_start]
                    if agent_id is not None and agent_id not in agents:
                        agents[agent_id] = _trusted(
                            AgentResponse,
                            dict(zip(agent_names, row[agent_start:agent_end], strict=True)),
                        )
        if filling is not None and row[context_at] is not None:
            filling.append(row[context_at])
    return CrewGraph(
        crews=[_trusted(CrewResponse, values) for values in crews.values()],
        tasks={task_id: _trusted(TaskResponse, values) for task_id, values in tasks.items()},
        agents=agents,
        complete=g.complete,
    )


def _duplicates(ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    seen: set[uuid.UUID] = set()
    return [i for i in ids if i in seen or seen.add(i)]  # type: ignore[func-returns-value]


class CrewService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory | None = None,
        statement_uow: UnitOfWorkFactory | None = None,
    ) -> None:
        self._uow = uow
        self._read_uow = read_uow or uow
        # For reads of ONE statement: no BEGIN/COMMIT (the statement is its own snapshot).
        self._statement_uow = statement_uow or self._read_uow

    # ---------------------------------------------------------------- agents

    async def get_agent(self, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> AgentResponse:
        async with self._read_uow() as uow:
            row = await uow.agents.get(workspace_id, agent_id)
        if row is None:
            raise NotFound("Agent", agent_id)
        return _agent(row)

    async def agents_by_ids(
        self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, AgentResponse]:
        async with self._read_uow() as uow:
            rows = await uow.agents.get_many(workspace_id, ids)
        return {agent_id: _agent(row) for agent_id, row in rows.items()}

    async def list_agents(
        self,
        workspace_id: uuid.UUID,
        page: PageRequest,
        *,
        name_contains: str | None = None,
        created: TimeRange = ANY_TIME,
    ) -> Page[AgentResponse]:
        async with self._read_uow() as uow:
            rows = await uow.agents.list(
                workspace_id,
                page,
                name_contains=name_contains,
                created_after=created.created_after,
                created_before=created.created_before,
            )
        return Page([_agent(r) for r in rows.items], rows.has_next_page, rows.has_previous_page)

    async def create_agent(self, workspace_id: uuid.UUID, data: AgentCreate) -> AgentResponse:
        async with self._uow() as uow:
            await self._require_unique_name(uow, "agents", workspace_id, data.name)
            row = await uow.agents.add(workspace_id, data.model_dump())
        return _agent(row)

    async def update_agent(
        self, workspace_id: uuid.UUID, agent_id: uuid.UUID, data: AgentUpdate
    ) -> AgentResponse:
        changes = data.model_dump(exclude_unset=True)
        self._refuse_null(changes, ("name", "role", "goal", "backstory", "llm"))
        async with self._uow() as uow:
            if await uow.agents.get(workspace_id, agent_id) is None:
                raise NotFound("Agent", agent_id)
            if "name" in changes:
                await self._require_unique_name(
                    uow, "agents", workspace_id, changes["name"], exclude=agent_id
                )
            row = await uow.agents.update(
                workspace_id, agent_id, {**changes, "updated_at": utcnow()}
            )
        assert row is not None
        return _agent(row)

    async def delete_agent(self, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> uuid.UUID:
        async with self._uow() as uow:
            if await uow.agents.get(workspace_id, agent_id) is None:
                raise NotFound("Agent", agent_id)
            users = await uow.agents.task_names_using(workspace_id, agent_id)
            if users:
                raise InUse("Agent", agent_id, [f"task {name!r}" for name in users])
            await uow.agents.delete(workspace_id, agent_id)
        return agent_id

    # ---------------------------------------------------------------- tasks

    async def get_task(self, workspace_id: uuid.UUID, task_id: uuid.UUID) -> TaskResponse:
        found = await self.tasks_by_ids(workspace_id, [task_id])
        if task_id not in found:
            raise NotFound("Task", task_id)
        return found[task_id]

    async def tasks_by_ids(
        self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, TaskResponse]:
        async with self._read_uow() as uow:
            rows = await uow.tasks.get_many(workspace_id, ids)
            context = await uow.tasks.context_ids(workspace_id, list(rows))
        return {task_id: _task(row, context[task_id]) for task_id, row in rows.items()}

    async def list_tasks(
        self,
        workspace_id: uuid.UUID,
        page: PageRequest,
        *,
        name_contains: str | None = None,
        agent_id: uuid.UUID | None = None,
        created: TimeRange = ANY_TIME,
    ) -> Page[TaskResponse]:
        async with self._read_uow() as uow:
            extra = [] if agent_id is None else [uow.tasks.table.c.agent_id == agent_id]
            rows = await uow.tasks.list(
                workspace_id,
                page,
                name_contains=name_contains,
                created_after=created.created_after,
                created_before=created.created_before,
                extra=extra,
            )
            context = await uow.tasks.context_ids(workspace_id, [r.id for r in rows.items])
        items = [_task(r, context[r.id]) for r in rows.items]
        return Page(items, rows.has_next_page, rows.has_previous_page)

    async def create_task(self, workspace_id: uuid.UUID, data: TaskCreate) -> TaskResponse:
        async with self._uow() as uow:
            await self._require_unique_name(uow, "tasks", workspace_id, data.name)
            problems = await self._check_agent(uow, workspace_id, data.agent_id)
            problems += await self._check_context(uow, workspace_id, None, data.context_task_ids)
            if problems:
                raise ValidationFailed(problems)
            values = data.model_dump(exclude={"context_task_ids"})
            row = await uow.tasks.add(workspace_id, values)
            await uow.tasks.set_context(workspace_id, row.id, data.context_task_ids)
        return _task(row, list(data.context_task_ids))

    async def update_task(
        self, workspace_id: uuid.UUID, task_id: uuid.UUID, data: TaskUpdate
    ) -> TaskResponse:
        changes = data.model_dump(exclude_unset=True)
        self._refuse_null(
            changes,
            (
                "name",
                "description",
                "expected_output",
                "agent_id",
                "context_task_ids",
                "human_input",
            ),
        )
        context_ids: list[uuid.UUID] | None = changes.pop("context_task_ids", None)
        async with self._uow() as uow:
            if await uow.tasks.get(workspace_id, task_id) is None:
                raise NotFound("Task", task_id)
            problems: list[FieldProblem] = []
            if "name" in changes:
                await self._require_unique_name(
                    uow, "tasks", workspace_id, changes["name"], exclude=task_id
                )
            if "agent_id" in changes:
                problems += await self._check_agent(uow, workspace_id, changes["agent_id"])
            if context_ids is not None:
                problems += await self._check_context(uow, workspace_id, task_id, context_ids)
                if not problems:
                    problems += await self._check_crews_accept_context(
                        uow, workspace_id, task_id, context_ids
                    )
            if problems:
                raise ValidationFailed(problems)
            row = await uow.tasks.update(workspace_id, task_id, {**changes, "updated_at": utcnow()})
            assert row is not None
            if context_ids is not None:
                await uow.tasks.set_context(workspace_id, task_id, context_ids)
            stored = await uow.tasks.context_ids(workspace_id, [task_id])
        return _task(row, stored[task_id])

    async def delete_task(self, workspace_id: uuid.UUID, task_id: uuid.UUID) -> uuid.UUID:
        async with self._uow() as uow:
            if await uow.tasks.get(workspace_id, task_id) is None:
                raise NotFound("Task", task_id)
            users = [
                f"crew {name!r}"
                for _, name in await uow.tasks.crews_containing(workspace_id, task_id)
            ]
            users += [
                f"task {name!r} (as context)"
                for name in await uow.tasks.names_using_as_context(workspace_id, task_id)
            ]
            if users:
                raise InUse("Task", task_id, users)
            await uow.tasks.delete(workspace_id, task_id)
        return task_id

    # ---------------------------------------------------------------- crews

    async def get_crew(self, workspace_id: uuid.UUID, crew_id: uuid.UUID) -> CrewResponse:
        found = await self.crews_by_ids(workspace_id, [crew_id])
        if crew_id not in found:
            raise NotFound("Crew", crew_id)
        return found[crew_id]

    async def crews_by_ids(
        self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, CrewResponse]:
        async with self._read_uow() as uow:
            rows = await uow.crews.get_many(workspace_id, ids)
            task_ids = await uow.crews.task_ids(workspace_id, list(rows))
        return {crew_id: _crew(row, task_ids[crew_id]) for crew_id, row in rows.items()}

    async def list_crews(
        self,
        workspace_id: uuid.UUID,
        page: PageRequest,
        *,
        name_contains: str | None = None,
        created: TimeRange = ANY_TIME,
    ) -> Page[CrewResponse]:
        async with self._read_uow() as uow:
            rows = await uow.crews.list(
                workspace_id,
                page,
                name_contains=name_contains,
                created_after=created.created_after,
                created_before=created.created_before,
            )
            task_ids = await uow.crews.task_ids(workspace_id, [r.id for r in rows.items])
        items = [_crew(r, task_ids[r.id]) for r in rows.items]
        return Page(items, rows.has_next_page, rows.has_previous_page)

    async def crew_config(self, workspace_id: uuid.UUID, crew_id: uuid.UUID) -> CrewConfig:
        """The crew as the self-contained config an execution runs (and an export writes)."""
        crew = await self.get_crew(workspace_id, crew_id)
        tasks = await self.tasks_by_ids(workspace_id, crew.task_ids)
        agents = await self.agents_by_ids(workspace_id, list({t.agent_id for t in tasks.values()}))
        if len(tasks) != len(crew.task_ids):
            raise Conflict("The crew changed while it was being read; try again.")
        return snapshot_of(crew, tasks, agents)

    async def crew_graph(
        self,
        workspace_id: uuid.UUID,
        *,
        crew_ids: Sequence[uuid.UUID] | None = None,
        page: PageRequest | None = None,
        name_contains: str | None = None,
        created: TimeRange = ANY_TIME,
        with_tasks: bool = True,
        with_agents: bool = True,
        fields: GraphFields | None = None,
    ) -> CrewGraph:
        """Crews by id, or a page of crews, with their tasks and agents: one unit of work and one
        statement, whatever the page size (the read path of `crew` and `crews`).

        `fields`: the crew, task and agent fields the caller needs (None: all); ids and the ids
        that link the objects are read in any case. With fewer fields, the graph is not
        `complete`: its objects carry only what was read.

        A connection that broke while idle in the pool (a database restart) fails the first
        statement and invalidates the pool; a read is safe to run again, so it is, once.
        """
        if (crew_ids is None) == (page is None):
            raise ValueError("give crew_ids or page")
        layout = GraphLayout.of(with_tasks, with_agents, fields)
        for attempt in (1, 2):
            try:
                async with self._statement_uow() as uow:
                    rows = await uow.crews.graph_rows(
                        workspace_id,
                        layout=layout,
                        crew_ids=crew_ids,
                        page=page,
                        name_contains=name_contains,
                        created_after=created.created_after,
                        created_before=created.created_before,
                    )
                break
            except DBAPIError as error:
                if attempt == 2 or not error.connection_invalidated:
                    raise
        graph = _graph(rows, layout)
        if page is not None:
            graph.has_previous_page = page.after is not None
            if len(graph.crews) > page.first:
                graph.has_next_page = True
                del graph.crews[page.first :]
        return graph

    async def create_crew(self, workspace_id: uuid.UUID, data: CrewCreate) -> CrewResponse:
        async with self._uow() as uow:
            await self._require_unique_name(uow, "crews", workspace_id, data.name)
            problems = await self._check_crew_tasks(uow, workspace_id, data.task_ids)
            if problems:
                raise ValidationFailed(problems)
            row = await uow.crews.add(workspace_id, data.model_dump(exclude={"task_ids"}))
            await uow.crews.set_tasks(workspace_id, row.id, data.task_ids)
        return _crew(row, list(data.task_ids))

    async def update_crew(
        self, workspace_id: uuid.UUID, crew_id: uuid.UUID, data: CrewUpdate
    ) -> CrewResponse:
        changes = data.model_dump(exclude_unset=True)
        self._refuse_null(changes, ("name", "description", "process", "task_ids"))
        task_ids: list[uuid.UUID] | None = changes.pop("task_ids", None)
        async with self._uow() as uow:
            if await uow.crews.get(workspace_id, crew_id) is None:
                raise NotFound("Crew", crew_id)
            if "name" in changes:
                await self._require_unique_name(
                    uow, "crews", workspace_id, changes["name"], exclude=crew_id
                )
            if task_ids is not None:
                problems = await self._check_crew_tasks(uow, workspace_id, task_ids)
                if problems:
                    raise ValidationFailed(problems)
            row = await uow.crews.update(workspace_id, crew_id, {**changes, "updated_at": utcnow()})
            assert row is not None
            if task_ids is not None:
                await uow.crews.set_tasks(workspace_id, crew_id, task_ids)
            stored = await uow.crews.task_ids(workspace_id, [crew_id])
        return _crew(row, stored[crew_id])

    async def delete_crew(self, workspace_id: uuid.UUID, crew_id: uuid.UUID) -> uuid.UUID:
        async with self._uow() as uow:
            if not await uow.crews.delete(workspace_id, crew_id):
                raise NotFound("Crew", crew_id)
        return crew_id

    # ---------------------------------------------------------------- rules

    @staticmethod
    def _refuse_null(changes: dict[str, Any], required: Iterable[str]) -> None:
        problems = [
            FieldProblem(name, "cannot be null; omit the field to leave it unchanged")
            for name in required
            if name in changes and changes[name] is None
        ]
        if problems:
            raise ValidationFailed(problems)

    @staticmethod
    async def _require_unique_name(
        uow: UnitOfWork,
        repository: str,
        workspace_id: uuid.UUID,
        name: str,
        *,
        exclude: uuid.UUID | None = None,
    ) -> None:
        repo = getattr(uow, repository)
        if await repo.name_taken(workspace_id, name, exclude_id=exclude):
            kind = repository[:-1]
            article = "An" if kind[0] in "aeiou" else "A"
            raise Conflict(
                f"{article} {kind} named {name!r} already exists in this workspace.", "name"
            )

    @staticmethod
    async def _check_agent(
        uow: UnitOfWork, workspace_id: uuid.UUID, agent_id: uuid.UUID
    ) -> list[FieldProblem]:
        if await uow.agents.get(workspace_id, agent_id) is None:
            return [FieldProblem("agent_id", f"no agent with id {agent_id} in this workspace")]
        return []

    @staticmethod
    async def _check_context(
        uow: UnitOfWork,
        workspace_id: uuid.UUID,
        task_id: uuid.UUID | None,
        context_ids: Sequence[uuid.UUID],
    ) -> list[FieldProblem]:
        """Context tasks exist here, are listed once, and following them never leads back."""
        problems = [
            FieldProblem("context_task_ids", f"task {dup} is listed more than once")
            for dup in _duplicates(context_ids)
        ]
        if task_id is not None and task_id in context_ids:
            problems.append(FieldProblem("context_task_ids", "a task cannot be its own context"))
        found = await uow.tasks.get_many(workspace_id, context_ids)
        problems += [
            FieldProblem("context_task_ids", f"no task with id {cid} in this workspace")
            for cid in context_ids
            if cid not in found
        ]
        if problems or task_id is None:
            return problems
        # Walk the context graph from the new context; reaching task_id would close a cycle.
        seen: set[uuid.UUID] = set()
        frontier = set(context_ids)
        while frontier:
            seen |= frontier
            edges = await uow.tasks.context_ids(workspace_id, list(frontier))
            nxt = {cid for ids in edges.values() for cid in ids}
            if task_id in nxt:
                return [FieldProblem("context_task_ids", "this context would create a cycle")]
            frontier = nxt - seen
        return []

    @staticmethod
    async def _check_crews_accept_context(
        uow: UnitOfWork,
        workspace_id: uuid.UUID,
        task_id: uuid.UUID,
        context_ids: Sequence[uuid.UUID],
    ) -> list[FieldProblem]:
        """A crew runs tasks in order, so a task may only read tasks that run before it there."""
        crews = await uow.tasks.crews_containing(workspace_id, task_id)
        if not crews:
            return []
        orders = await uow.crews.task_ids(workspace_id, [crew_id for crew_id, _ in crews])
        problems = []
        for crew_id, crew_name in crews:
            order = orders[crew_id]
            earlier = set(order[: order.index(task_id)])
            late = [cid for cid in context_ids if cid not in earlier]
            if late:
                problems.append(
                    FieldProblem(
                        "context_task_ids",
                        f"in crew {crew_name!r}, context task(s) {', '.join(map(str, late))} "
                        "do not run before this task",
                    )
                )
        return problems

    @staticmethod
    async def _check_crew_tasks(
        uow: UnitOfWork, workspace_id: uuid.UUID, task_ids: Sequence[uuid.UUID]
    ) -> list[FieldProblem]:
        problems = [
            FieldProblem("task_ids", f"task {dup} is listed more than once")
            for dup in _duplicates(task_ids)
        ]
        found = await uow.tasks.get_many(workspace_id, task_ids)
        problems += [
            FieldProblem("task_ids", f"no task with id {tid} in this workspace")
            for tid in task_ids
            if tid not in found
        ]
        if problems:
            return problems
        context = await uow.tasks.context_ids(workspace_id, list(task_ids))
        for position, tid in enumerate(task_ids):
            earlier = set(task_ids[:position])
            for cid in context[tid]:
                if cid not in earlier:
                    problems.append(
                        FieldProblem(
                            "task_ids",
                            f"task {found[tid].name!r} reads task {cid} as context, "
                            "which must come earlier in the crew",
                        )
                    )
        return problems
