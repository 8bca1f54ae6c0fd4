"""CrewService: agents, tasks and crews, the rules that tie them together, in one place.

The three are one domain (a crew is its tasks, a task is its agent and its context), so the rules
that cross them (a task's agent must exist, context must come earlier in every crew that runs the
task, nothing in use may be deleted) live beside each other (`crew_rules.py`), and the three share
one read/create/update/delete path (`crud.py`); what differs is declared below as a `Kind` each.
The crew read path (`crew_graph`) reads a page with everything it shows in one statement.
Every method takes the workspace explicitly; services raise domain errors and never see GraphQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError

from backend.core.errors import FieldProblem, NotFound
from backend.repositories.crew import GraphLayout
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.schemas import (
    EVERYTHING,
    AgentCreate,
    AgentResponse,
    AgentUpdate,
    CrewConfig,
    CrewCreate,
    CrewResponse,
    CrewUpdate,
    ListFilter,
    Page,
    PageRequest,
    TaskCreate,
    TaskResponse,
    TaskUpdate,
)
from backend.services.crew_graph import CrewGraph, GraphFields, fold_rows
from backend.services.crew_rules import (
    check_agent,
    check_context,
    check_crew_tasks,
    check_crews_accept_context,
)
from backend.services.crud import Children, Kind, OutsideCheck, Records
from backend.services.execution_config import snapshot_of


def _agent(row: Row[Any], _: list[uuid.UUID]) -> AgentResponse:
    return AgentResponse.model_construct(**row._mapping)


def _task(row: Row[Any], context_ids: list[uuid.UUID]) -> TaskResponse:
    return TaskResponse.model_construct(**row._mapping, context_task_ids=context_ids)


def _crew(row: Row[Any], task_ids: list[uuid.UUID]) -> CrewResponse:
    return CrewResponse.model_construct(**row._mapping, task_ids=task_ids)


async def _agent_users(uow: UnitOfWork, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> list[str]:
    return [f"task {name!r}" for name in await uow.agents.task_names_using(workspace_id, agent_id)]


async def _task_users(uow: UnitOfWork, workspace_id: uuid.UUID, task_id: uuid.UUID) -> list[str]:
    users = [
        f"crew {name!r}" for _, name in await uow.tasks.crews_containing(workspace_id, task_id)
    ]
    users += [
        f"task {name!r} (as context)"
        for name in await uow.tasks.names_using_as_context(workspace_id, task_id)
    ]
    return users


async def _check_task(
    uow: UnitOfWork,
    workspace_id: uuid.UUID,
    task_id: uuid.UUID | None,
    changes: dict[str, Any],
    context_ids: Sequence[uuid.UUID] | None,
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if "agent_id" in changes:
        problems += await check_agent(uow, workspace_id, changes["agent_id"])
    if context_ids is not None:
        problems += await check_context(uow, workspace_id, task_id, context_ids)
        if not problems and task_id is not None:
            problems += await check_crews_accept_context(uow, workspace_id, task_id, context_ids)
    return problems


async def _check_crew(
    uow: UnitOfWork,
    workspace_id: uuid.UUID,
    crew_id: uuid.UUID | None,
    changes: dict[str, Any],
    task_ids: Sequence[uuid.UUID] | None,
) -> list[FieldProblem]:
    if task_ids is None:
        return []
    return await check_crew_tasks(uow, workspace_id, task_ids)


AGENTS = Kind(
    entity="Agent",
    repository=lambda uow: uow.agents,
    response=_agent,
    required=("name", "role", "goal", "backstory", "llm", "tools"),
    users=_agent_users,
)
TASKS = Kind(
    entity="Task",
    repository=lambda uow: uow.tasks,
    response=_task,
    required=(
        "name",
        "description",
        "expected_output",
        "agent_id",
        "context_task_ids",
        "human_input",
        "tools",
    ),
    check=_check_task,
    users=_task_users,
    children=Children(
        "context_task_ids",
        read=lambda uow, ws, ids: uow.tasks.context_ids(ws, ids),
        write=lambda uow, ws, id_, ids: uow.tasks.set_context(ws, id_, ids),
    ),
)
CREWS = Kind(
    entity="Crew",
    repository=lambda uow: uow.crews,
    response=_crew,
    required=("name", "description", "process", "task_ids"),
    check=_check_crew,
    children=Children(
        "task_ids",
        read=lambda uow, ws, ids: uow.crews.task_ids(ws, ids),
        write=lambda uow, ws, id_, ids: uow.crews.set_tasks(ws, id_, ids),
    ),
)


class ToolNames(Protocol):
    """What checks the tool names agents and tasks list (ToolService)."""

    async def check_names(
        self, workspace_id: uuid.UUID, names: Sequence[str], field: str
    ) -> list[FieldProblem]: ...


def _tools_check(tools: ToolNames) -> OutsideCheck:
    """MCP tool names must name a server of the workspace and a tool it offers (asked live,
    outside the transaction); the schema has checked their syntax already."""

    async def check(workspace_id: uuid.UUID, values: dict[str, Any]) -> list[FieldProblem]:
        names = values.get("tools")
        if not names:
            return []
        return await tools.check_names(workspace_id, names, "tools")

    return check


async def inline_tool_problems(
    tools: ToolNames, workspace_id: uuid.UUID, config: CrewConfig, field: str
) -> list[FieldProblem]:
    """The tool-name problems of a crew config sent with a launch (stored crews were checked
    when their agents and tasks were written)."""
    lists = [(f"agents.{i}", a.tools) for i, a in enumerate(config.agents)]
    lists += [(f"tasks.{i}", t.tools) for i, t in enumerate(config.tasks)]
    problems: list[FieldProblem] = []
    for where, names in lists:
        if names:
            problems += await tools.check_names(workspace_id, names, f"{field}.{where}.tools")
    return problems


class CrewService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory | None = None,
        statement_uow: UnitOfWorkFactory | None = None,
        tools: ToolNames | None = None,
    ) -> None:
        read_uow = read_uow or uow
        # For reads of ONE statement: no BEGIN/COMMIT (the statement is its own snapshot).
        self._statement_uow = statement_uow or read_uow
        check = _tools_check(tools) if tools is not None else None
        self._agents = Records(AGENTS, uow, read_uow, check)
        self._tasks = Records(TASKS, uow, read_uow, check)
        self._crews = Records(CREWS, uow, read_uow)

    # ---------------------------------------------------------------- agents

    async def get_agent(self, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> AgentResponse:
        return await self._agents.get(workspace_id, agent_id)

    async def agents_by_ids(
        self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, AgentResponse]:
        return await self._agents.by_ids(workspace_id, ids)

    async def list_agents(
        self, workspace_id: uuid.UUID, page: PageRequest, where: ListFilter = EVERYTHING
    ) -> Page[AgentResponse]:
        return await self._agents.list(workspace_id, page, where)

    async def create_agent(self, workspace_id: uuid.UUID, data: AgentCreate) -> AgentResponse:
        return await self._agents.create(workspace_id, data)

    async def update_agent(
        self, workspace_id: uuid.UUID, agent_id: uuid.UUID, data: AgentUpdate
    ) -> AgentResponse:
        return await self._agents.update(workspace_id, agent_id, data)

    async def delete_agent(self, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> uuid.UUID:
        return await self._agents.delete(workspace_id, agent_id)

    # ---------------------------------------------------------------- tasks

    async def get_task(self, workspace_id: uuid.UUID, task_id: uuid.UUID) -> TaskResponse:
        return await self._tasks.get(workspace_id, task_id)

    async def tasks_by_ids(
        self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, TaskResponse]:
        return await self._tasks.by_ids(workspace_id, ids)

    async def list_tasks(
        self,
        workspace_id: uuid.UUID,
        page: PageRequest,
        where: ListFilter = EVERYTHING,
        *,
        agent_id: uuid.UUID | None = None,
    ) -> Page[TaskResponse]:
        return await self._tasks.list(workspace_id, page, where, agent_id=agent_id)

    async def create_task(self, workspace_id: uuid.UUID, data: TaskCreate) -> TaskResponse:
        return await self._tasks.create(workspace_id, data)

    async def update_task(
        self, workspace_id: uuid.UUID, task_id: uuid.UUID, data: TaskUpdate
    ) -> TaskResponse:
        return await self._tasks.update(workspace_id, task_id, data)

    async def delete_task(self, workspace_id: uuid.UUID, task_id: uuid.UUID) -> uuid.UUID:
        return await self._tasks.delete(workspace_id, task_id)

    # ---------------------------------------------------------------- crews

    async def get_crew(self, workspace_id: uuid.UUID, crew_id: uuid.UUID) -> CrewResponse:
        return await self._crews.get(workspace_id, crew_id)

    async def crews_by_ids(
        self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, CrewResponse]:
        return await self._crews.by_ids(workspace_id, ids)

    async def list_crews(
        self, workspace_id: uuid.UUID, page: PageRequest, where: ListFilter = EVERYTHING
    ) -> Page[CrewResponse]:
        return await self._crews.list(workspace_id, page, where)

    async def create_crew(self, workspace_id: uuid.UUID, data: CrewCreate) -> CrewResponse:
        return await self._crews.create(workspace_id, data)

    async def update_crew(
        self, workspace_id: uuid.UUID, crew_id: uuid.UUID, data: CrewUpdate
    ) -> CrewResponse:
        return await self._crews.update(workspace_id, crew_id, data)

    async def delete_crew(self, workspace_id: uuid.UUID, crew_id: uuid.UUID) -> uuid.UUID:
        return await self._crews.delete(workspace_id, crew_id)

    async def crew_config(self, workspace_id: uuid.UUID, crew_id: uuid.UUID) -> CrewConfig:
        """The crew as the self-contained config an execution runs (and an export writes).

        Read by the crew read path: one unit of work and one statement, so the crew, its
        tasks and their agents are one consistent snapshot (a crew changed meanwhile is read
        either before or after the change, never half of each)."""
        graph = await self.crew_graph(workspace_id, crew_ids=[crew_id])
        if not graph.crews:
            raise NotFound("Crew", crew_id)
        return snapshot_of(graph.crews[0], graph.tasks, graph.agents)

    async def crew_graph(
        self,
        workspace_id: uuid.UUID,
        *,
        crew_ids: Sequence[uuid.UUID] | None = None,
        page: PageRequest | None = None,
        where: ListFilter = EVERYTHING,
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
                        where=where,
                    )
                break
            except DBAPIError as error:
                if attempt == 2 or not error.connection_invalidated:
                    raise
        graph = fold_rows(rows, layout)
        if page is not None:
            graph.has_previous_page = page.after is not None
            if len(graph.crews) > page.first:
                graph.has_next_page = True
                del graph.crews[page.first :]
        return graph
