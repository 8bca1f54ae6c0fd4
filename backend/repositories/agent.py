from __future__ import annotations

import uuid

from sqlalchemy import select

from backend.models import Agent, Task
from backend.repositories.base import BaseRepository


class AgentRepository(BaseRepository[Agent]):
    model = Agent

    async def task_names_using(
        self, workspace_id: uuid.UUID, agent_id: uuid.UUID, limit: int = 10
    ) -> list[str]:
        stmt = (
            select(Task.name)
            .where(Task.workspace_id == workspace_id, Task.agent_id == agent_id)
            .order_by(Task.name)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())
