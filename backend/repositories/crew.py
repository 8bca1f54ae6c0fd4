from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, insert, select

from backend.models import Crew, CrewTask
from backend.repositories.base import BaseRepository


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
