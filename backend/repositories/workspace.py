from __future__ import annotations

import builtins
import uuid
from typing import Any, cast

from sqlalchemy import Row, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Workspace


class WorkspaceRepository:
    """Workspaces are the tenants themselves, so this is the one repository not scoped by one."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.table = cast(Table, Workspace.__table__)

    async def get(self, workspace_id: uuid.UUID) -> Row[Any] | None:
        stmt = select(*self.table.c).where(self.table.c.id == workspace_id)
        return (await self.session.execute(stmt)).first()

    async def get_by_name(self, name: str) -> Row[Any] | None:
        stmt = select(*self.table.c).where(self.table.c.name == name)
        return (await self.session.execute(stmt)).first()

    async def list(self) -> list[Row[Any]]:
        """Every workspace, by name: there are few, and operators read them as a list."""
        stmt = select(*self.table.c).order_by(self.table.c.name)
        return list((await self.session.execute(stmt)).all())

    async def add(self, name: str) -> Row[Any]:
        stmt = insert(self.table).values(name=name).returning(*self.table.c)
        return (await self.session.execute(stmt)).one()

    async def http_allowlist(self, workspace_id: uuid.UUID) -> builtins.list[str]:
        stmt = select(self.table.c.http_allowlist).where(self.table.c.id == workspace_id)
        hosts = await self.session.scalar(stmt)
        return list(hosts or [])

    async def set_http_allowlist(self, workspace_id: uuid.UUID, hosts: builtins.list[str]) -> bool:
        c = self.table.c
        stmt = update(self.table).where(c.id == workspace_id).values(http_allowlist=hosts)
        return bool((await self.session.execute(stmt.returning(c.id))).first())
