from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, select

from backend.models import Crew, CrewTask, Task, TaskContext
from backend.repositories.base import BaseRepository
from backend.repositories.ordered_links import OrderedLinks
from backend.schemas.common import EVERYTHING, ListFilter, Page, PageRequest

_CONTEXT = OrderedLinks(
    cast(Table, Task.__table__), cast(Table, TaskContext.__table__), "task_id", "context_task_id"
)


class TaskRepository(BaseRepository[Task]):
    model = Task

    async def context_ids(
        self, workspace_id: uuid.UUID, task_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Each task's context, in order; every asked id gets an entry."""
        return await _CONTEXT.read(self.session, workspace_id, task_ids)

    async def set_context(
        self, workspace_id: uuid.UUID, task_id: uuid.UUID, context_ids: Sequence[uuid.UUID]
    ) -> None:
        """Replaces a task's context (the context ids were validated by the service)."""
        await _CONTEXT.replace(self.session, workspace_id, task_id, context_ids)

    async def names_using_as_context(
        self, workspace_id: uuid.UUID, task_id: uuid.UUID, limit: int = 10
    ) -> list[str]:
        stmt = (
            select(Task.name)
            .join(TaskContext, TaskContext.task_id == Task.id)
            .where(Task.workspace_id == workspace_id, TaskContext.context_task_id == task_id)
            .order_by(Task.name)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def crews_containing(
        self, workspace_id: uuid.UUID, task_id: uuid.UUID
    ) -> list[tuple[uuid.UUID, str]]:
        stmt = (
            select(Crew.id, Crew.name)
            .join(CrewTask, CrewTask.crew_id == Crew.id)
            .where(Crew.workspace_id == workspace_id, CrewTask.task_id == task_id)
            .order_by(Crew.name)
        )
        return [(row.id, row.name) for row in await self.session.execute(stmt)]

    async def list(
        self,
        workspace_id: uuid.UUID,
        page: PageRequest,
        where: ListFilter = EVERYTHING,
        *,
        agent_id: uuid.UUID | None = None,
    ) -> Page[Row[Any]]:
        """`agent_id`: only the tasks of that agent."""
        extra = [] if agent_id is None else [self.table.c.agent_id == agent_id]
        return await self._list(workspace_id, page, where, extra)
