"""Workspace secrets. Listing never selects the ciphertext: only `value_of` and the key rotation
read it, so a listing cannot leak even an encrypted value."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, func, select, update

from backend.models import Agent, McpServer, Secret
from backend.repositories.base import BaseRepository

PUBLIC_COLUMNS = ("id", "workspace_id", "name", "set_by", "created_at", "updated_at")


class SecretRepository(BaseRepository[Secret]):
    model = Secret

    def _public(self) -> list[Any]:
        return [self.table.c[name] for name in PUBLIC_COLUMNS]

    async def of_workspace(self, workspace_id: uuid.UUID) -> list[Row[Any]]:
        """Every secret of a workspace by name; a workspace holds tens of them, not pages."""
        c = self.table.c
        stmt = select(*self._public()).where(c.workspace_id == workspace_id).order_by(c.name)
        return list((await self.session.execute(stmt)).all())

    async def find(self, workspace_id: uuid.UUID, name: str) -> Row[Any] | None:
        c = self.table.c
        stmt = select(*self._public()).where(c.workspace_id == workspace_id, c.name == name)
        return (await self.session.execute(stmt)).first()

    async def ciphertexts(self, workspace_id: uuid.UUID, names: Sequence[str]) -> dict[str, str]:
        c = self.table.c
        stmt = select(c.name, c.ciphertext).where(
            c.workspace_id == workspace_id, c.name.in_(set(names))
        )
        return {row.name: row.ciphertext for row in await self.session.execute(stmt)}

    async def replace_value(
        self, workspace_id: uuid.UUID, name: str, ciphertext: str, set_by: str
    ) -> Row[Any] | None:
        c = self.table.c
        stmt = (
            update(self.table)
            .where(c.workspace_id == workspace_id, c.name == name)
            .values(ciphertext=ciphertext, set_by=set_by)
            .returning(*self._public())
        )
        return (await self.session.execute(stmt)).first()

    async def insert_value(
        self, workspace_id: uuid.UUID, name: str, ciphertext: str, set_by: str
    ) -> Row[Any]:
        row = await self.add(
            workspace_id, {"name": name, "ciphertext": ciphertext, "set_by": set_by}
        )
        return row

    async def delete_named(self, workspace_id: uuid.UUID, name: str) -> bool:
        c = self.table.c
        stmt = (
            delete(self.table).where(c.workspace_id == workspace_id, c.name == name).returning(c.id)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def count_all(self) -> int:
        """Secrets in every workspace (start-up refuses to run without a key when there are)."""
        return int(await self.session.scalar(select(func.count()).select_from(self.table)) or 0)

    async def ciphertext_batch(self, after: uuid.UUID | None, batch: int = 500) -> list[Any]:
        """(id, name, ciphertext) of the next secrets after `after`, in any workspace, by id
        (key rotation walks them all)."""
        c = self.table.c
        stmt = select(c.id, c.name, c.ciphertext).order_by(c.id).limit(batch)
        if after is not None:
            stmt = stmt.where(c.id > after)
        return list((await self.session.execute(stmt)).all())

    async def users_of(self, workspace_id: uuid.UUID, name: str, limit: int = 10) -> list[str]:
        """MCP servers whose headers send this secret and agents that name it for their key."""
        servers = McpServer.__table__.c
        agents = Agent.__table__.c
        # A workspace has a handful of MCP servers: their headers are checked here, not in SQL.
        rows = await self.session.execute(
            select(servers.name, servers.headers)
            .where(servers.workspace_id == workspace_id)
            .order_by(servers.name)
        )
        found = [
            f"mcp_server:{row.name}"
            for row in rows
            if any(header.get("secret") == name for header in row.headers or [])
        ]
        found += [
            f"agent:{n}"
            for n in await self.session.scalars(
                select(agents.name)
                .where(agents.workspace_id == workspace_id, agents.api_key_secret == name)
                .order_by(agents.name)
                .limit(limit)
            )
        ]
        return found[:limit]

    async def set_ciphertext(self, secret_id: uuid.UUID, ciphertext: str) -> None:
        """A re-encrypted value; `updated_at` and `set_by` stay: the value did not change."""
        c = self.table.c
        stmt = (
            update(self.table)
            .where(c.id == secret_id)
            .values(ciphertext=ciphertext, updated_at=c.updated_at)
        )
        await self.session.execute(stmt)
