from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Row,
    Select,
    String,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    select,
)

from backend.models import Agent, Crew, CrewTask, Task, TaskContext
from backend.repositories.base import BaseRepository, escape_like
from backend.schemas.common import PageRequest


class GraphColumns:
    """Where each object's columns sit in a `graph_rows` row (positions, for slicing)."""

    crew = ("id", "name", "description", "process", "created_at", "updated_at")
    task = ("id", "name", "description", "expected_output", "agent_id", "created_at", "updated_at")
    agent = (
        "id",
        "name",
        "role",
        "goal",
        "backstory",
        "llm",
        "temperature",
        "max_iterations",
        "created_at",
        "updated_at",
    )
    # row = crew columns, position, task_id, [task columns, context_task_id], [agent columns]
    crew_end = len(crew)
    position = crew_end
    task_id = crew_end + 1
    task_start = crew_end + 2
    task_end = task_start + len(task)
    context_task_id = task_end
    agent_start = task_end + 1
    agent_end = agent_start + len(agent)


class CrewRepository(BaseRepository[Crew]):
    model = Crew

    async def task_ids(
        self, workspace_id: uuid.UUID, crew_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Each crew's tasks in running order; every asked id gets an entry."""
        found: dict[uuid.UUID, list[uuid.UUID]] = {crew_id: [] for crew_id in crew_ids}
        if not crew_ids:
            return found
        stmt = (
            select(CrewTask.crew_id, CrewTask.task_id)
            .join(Crew, Crew.id == CrewTask.crew_id)
            .where(Crew.workspace_id == workspace_id, CrewTask.crew_id.in_(set(crew_ids)))
            .order_by(CrewTask.crew_id, CrewTask.position)
        )
        for crew_id, task_id in await self.session.execute(stmt):
            found[crew_id].append(task_id)
        return found

    async def set_tasks(
        self, workspace_id: uuid.UUID, crew_id: uuid.UUID, task_ids: Sequence[uuid.UUID]
    ) -> None:
        """Replaces a crew's task list (the task ids were validated by the service)."""
        if await self.get(workspace_id, crew_id) is None:
            raise LookupError(f"crew {crew_id} is not in workspace {workspace_id}")
        await self.session.execute(delete(CrewTask).where(CrewTask.crew_id == crew_id))
        await self.session.execute(
            insert(CrewTask),
            [{"crew_id": crew_id, "position": i, "task_id": tid} for i, tid in enumerate(task_ids)],
        )

    async def graph_rows(
        self,
        workspace_id: uuid.UUID,
        *,
        crew_ids: Sequence[uuid.UUID] | None = None,
        page: PageRequest | None = None,
        name_contains: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        with_tasks: bool = True,
        with_agents: bool = True,
    ) -> list[Row[Any]]:
        """Rows of the crews asked for (by id, or a page of `first + 1`, newest first) with
        their tasks, each task's context ids and the tasks' agents, in one statement.

        The read path of `crew`/`crews`: crews ⟕ crew_tasks ⟕ tasks ⟕ task_context ⟕ agents,
        ordered by crew (newest first), task position and context position. One statement is
        one consistent snapshot without BEGIN/COMMIT and one round trip whatever the page size.
        Each shape of statement is built once and reused, so no expression objects are built per
        request and SQLAlchemy's compiled cache finds it by identity.
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
            if name_contains:
                params["name_like"] = f"%{escape_like(name_contains)}%"
            if created_after is not None:
                params["created_after"] = created_after
            if created_before is not None:
                params["created_before"] = created_before
            shape = ("page", *sorted(params))
        with_agents = with_agents and with_tasks
        stmt = _graph_statement((*shape, with_tasks, with_agents))
        return list((await self.session.execute(stmt, params)).all())


_GRAPH_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}


def _graph_statement(key: tuple[Any, ...]) -> Select[Any]:
    stmt = _GRAPH_STATEMENTS.get(key)
    if stmt is None:
        stmt = _GRAPH_STATEMENTS[key] = _build_graph_statement(key)
    return stmt


def _build_graph_statement(key: tuple[Any, ...]) -> Select[Any]:
    mode, *rest = key
    *names, with_tasks, with_agents = rest
    crews = cast(Table, Crew.__table__)
    crew_tasks = cast(Table, CrewTask.__table__)
    tasks = cast(Table, Task.__table__)
    context = cast(Table, TaskContext.__table__)
    agents = cast(Table, Agent.__table__)
    id_type = crews.c.id.type
    columns: list[Any] = [crews.c[name] for name in GraphColumns.crew]
    columns += [crew_tasks.c.position, crew_tasks.c.task_id]
    source: Any = crews.outerjoin(crew_tasks, crew_tasks.c.crew_id == crews.c.id)
    order: list[Any] = [crews.c.id.desc(), crew_tasks.c.position]
    if with_tasks:
        columns += [tasks.c[name] for name in GraphColumns.task]
        columns.append(context.c.context_task_id)
        source = source.outerjoin(
            tasks,
            and_(tasks.c.id == crew_tasks.c.task_id, tasks.c.workspace_id == crews.c.workspace_id),
        ).outerjoin(context, context.c.task_id == tasks.c.id)
        order.append(context.c.position)
        if with_agents:
            columns += [agents.c[name] for name in GraphColumns.agent]
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
