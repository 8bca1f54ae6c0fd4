from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Workspace


class WorkspaceRepository:
    """Workspaces are the tenants themselves, so this is the one repository not scoped by one."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, workspace_id: uuid.UUID) -> Row[Any] | None:
        table = Workspace.__table__
        stmt = select(*table.c).where(table.c.id == workspace_id)
        return (await self.session.execute(stmt)).first()
