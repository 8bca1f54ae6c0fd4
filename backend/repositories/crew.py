from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import (
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    select,
)

from backend.models import Agent, Crew, CrewTask, Task, TaskContext
from backend.repositories.base import BaseRepository, escape_like
from backend.repositories.driver_fetch import fetch_rows
from backend.repositories.ordered_links import OrderedLinks
from backend.schemas import AgentResponse, CrewResponse, TaskResponse
from backend.schemas.common import EVERYTHING, ListFilter, PageRequest


def _columns(schema: type[BaseModel], table: Table) -> tuple[str, ...]:
    """The response schema's fields that are columns of the table, in the schema's order (the
    id lists are read from the link tables)."""
    return tuple(name for name in schema.model_fields if name in table.c)


class GraphColumns:
    """Every column `graph_rows` can read for each object, in row order."""

    crew = _columns(CrewResponse, cast(Table, Crew.__table__))
    task = _columns(TaskResponse, cast(Table, Task.__table__))
    agent = _columns(AgentResponse, cast(Table, Agent.__table__))
    # Always read, whatever the selection: the ids that tie the rows together.
    keys = {"crew": ("id",), "task": ("id", "agent_id"), "agent": ("id",)}


@dataclass(frozen=True, slots=True)
class GraphLayout:
    """Which columns a `graph_rows` statement reads, and where each sits in its rows.

    row = crew columns, position, task_id, [task columns, context_task_id], [agent columns]
    """

    crew: tuple[str, ...]
    task: tuple[str, ...]
    agent: tuple[str, ...]
    with_tasks: bool
    with_agents: bool
    complete: bool  # every column of every object read (nothing left out)
    crew_end: int
    position: int
    task_id: int
    task_start: int
    task_end: int
    context_task_id: int
    agent_start: int
    agent_end: int

    @classmethod
    def of(
        cls,
        with_tasks: bool,
        with_agents: bool,
        fields: tuple[frozenset[str], frozenset[str], frozenset[str]] | None = None,
    ) -> GraphLayout:
        """The layout for a selection: `fields` are the wanted columns of crews, tasks and
        agents (None: all of them); the key columns are read in any case."""
        key = (with_tasks, with_agents and with_tasks, fields)
        layout = _LAYOUTS.get(key)
        if layout is None:
            layout = _LAYOUTS[key] = cls._build(*key)
        return layout

    @classmethod
    def _build(
        cls,
        with_tasks: bool,
        with_agents: bool,
        fields: tuple[frozenset[str], frozenset[str], frozenset[str]] | None,
    ) -> GraphLayout:
        g = GraphColumns
        chosen: list[tuple[str, ...]] = []
        for kind, every, wanted in zip(
            ("crew", "task", "agent"),
            (g.crew, g.task, g.agent),
            fields or (None, None, None),
            strict=True,
        ):
            keep = set(g.keys[kind]) | (set(every) if wanted is None else set(wanted))
            chosen.append(tuple(name for name in every if name in keep))
        crew, task, agent = chosen
        complete = (crew, task, agent) == (g.crew, g.task, g.agent)
        crew_end = len(crew)
        task_start = crew_end + 2
        task_end = task_start + (len(task) if with_tasks else 0)
        agent_start = task_end + (1 if with_tasks else 0)
        agent_end = agent_start + (len(agent) if with_agents else 0)
        return cls(
            crew=crew,
            task=task,
            agent=agent,
            with_tasks=with_tasks,
            with_agents=with_agents,
            complete=complete,
            crew_end=crew_end,
            position=crew_end,
            task_id=crew_end + 1,
            task_start=task_start,
            task_end=task_end,
            context_task_id=task_end,
            agent_start=agent_start,
            agent_end=agent_end,
        )


_LAYOUTS: dict[Any, GraphLayout] = {}
_TASKS = OrderedLinks(
    cast(Table, Crew.__table__), cast(Table, CrewTask.__table__), "crew_id", "task_id"
)


class CrewRepository(BaseRepository[Crew]):
    model = Crew

    async def task_ids(
        self, workspace_id: uuid.UUID, crew_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Each crew's tasks in running order; every asked id gets an entry."""
        return await _TASKS.read(self.session, workspace_id, crew_ids)

    async def set_tasks(
        self, workspace_id: uuid.UUID, crew_id: uuid.UUID, task_ids: Sequence[uuid.UUID]
    ) -> None:
        """Replaces a crew's task list (the task ids were validated by the service)."""
        await _TASKS.replace(self.session, workspace_id, crew_id, task_ids)

    async def graph_rows(
        self,
        workspace_id: uuid.UUID,
        *,
        layout: GraphLayout,
        crew_ids: Sequence[uuid.UUID] | None = None,
        page: PageRequest | None = None,
        where: ListFilter = EVERYTHING,
    ) -> list[Sequence[Any]]:
        """Rows of the crews asked for (by id, or a page of `first + 1`, newest first) with
        their tasks, each task's context ids and the tasks' agents, in one statement; `layout`
        says which columns (and so which relations) are read and where they sit in a row.

        The read path of `crew`/`crews`: crews ⟕ crew_tasks ⟕ tasks ⟕ task_context ⟕ agents,
        ordered by crew (newest first), task position and context position. One statement is
        one consistent snapshot without BEGIN/COMMIT and one round trip whatever the page size.
        Each shape of statement is built and compiled once; it runs on the driver's connection
        (one call, no SQLAlchemy result machinery), and only the columns it reads are converted,
        with the converters SQLAlchemy itself would use.
        """
        params: dict[str, Any] = {"workspace_id": workspace_id}
        if crew_ids is not None:
            if not crew_ids:
                return []
            ids = list(dict.fromkeys(crew_ids))
            if len(ids) == 1:
                params["crew_id"] = ids[0]
            else:
                params["crew_ids"] = ids
            shape: tuple[Any, ...] = ("one" if len(ids) == 1 else "many",)
        else:
            assert page is not None
            params["limit"] = page.first + 1
            if page.after is not None:
                params["after"] = page.after
            if where.name_contains:
                params["name_like"] = f"%{escape_like(where.name_contains)}%"
            if where.created_after is not None:
                params["created_after"] = where.created_after
            if where.created_before is not None:
                params["created_before"] = where.created_before
            shape = ("page", *sorted(params))
        stmt = _graph_statement((*shape, layout))
        # Several ids: an expanding IN, which SQLAlchemy renders per call.
        return await fetch_rows(self.session, stmt, params, fast=shape[0] != "many")


_GRAPH_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}


def _graph_statement(key: tuple[Any, ...]) -> Select[Any]:
    stmt = _GRAPH_STATEMENTS.get(key)
    if stmt is None:
        stmt = _GRAPH_STATEMENTS[key] = _build_graph_statement(key)
    return stmt


def _build_graph_statement(key: tuple[Any, ...]) -> Select[Any]:
    mode, *rest = key
    *names, layout = rest
    with_tasks, with_agents = layout.with_tasks, layout.with_agents
    crews = cast(Table, Crew.__table__)
    crew_tasks = cast(Table, CrewTask.__table__)
    tasks = cast(Table, Task.__table__)
    context = cast(Table, TaskContext.__table__)
    agents = cast(Table, Agent.__table__)
    id_type = crews.c.id.type
    columns: list[Any] = [crews.c[name] for name in layout.crew]
    columns += [crew_tasks.c.position, crew_tasks.c.task_id]
    source: Any = crews.outerjoin(crew_tasks, crew_tasks.c.crew_id == crews.c.id)
    order: list[Any] = [crews.c.id.desc(), crew_tasks.c.position]
    if with_tasks:
        columns += [tasks.c[name] for name in layout.task]
        columns.append(context.c.context_task_id)
        source = source.outerjoin(
            tasks,
            and_(tasks.c.id == crew_tasks.c.task_id, tasks.c.workspace_id == crews.c.workspace_id),
        ).outerjoin(context, context.c.task_id == tasks.c.id)
        order.append(context.c.position)
        if with_agents:
            columns += [agents.c[name] for name in layout.agent]
            source = source.outerjoin(
                agents,
                and_(
                    agents.c.id == tasks.c.agent_id, agents.c.workspace_id == crews.c.workspace_id
                ),
            )
    workspace = bindparam("workspace_id", type_=id_type)
    if mode == "one":
        where: Any = and_(
            crews.c.workspace_id == workspace, crews.c.id == bindparam("crew_id", type_=id_type)
        )
    elif mode == "many":
        where = and_(
            crews.c.workspace_id == workspace,
            crews.c.id.in_(bindparam("crew_ids", expanding=True, type_=id_type)),
        )
    else:
        page = select(crews.c.id).where(crews.c.workspace_id == workspace)
        if "after" in names:
            page = page.where(crews.c.id < bindparam("after", type_=id_type))
        if "name_like" in names:
            page = page.where(
                crews.c.name.ilike(bindparam("name_like", type_=String()), escape="\\")
            )
        if "created_after" in names:
            page = page.where(
                crews.c.created_at >= bindparam("created_after", type_=crews.c.created_at.type)
            )
        if "created_before" in names:
            page = page.where(
                crews.c.created_at < bindparam("created_before", type_=crews.c.created_at.type)
            )
        page_ids = (
            page.order_by(crews.c.id.desc()).limit(bindparam("limit", type_=Integer())).subquery()
        )
        where = crews.c.id.in_(select(page_ids.c.id))
    return select(*columns).select_from(source).where(where).order_by(*order)
