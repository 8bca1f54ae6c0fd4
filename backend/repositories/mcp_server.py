"""MCP servers registered by a workspace, and which agents and tasks name their tools."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, String, cast, select

from backend.models import Agent, McpServer, Task
from backend.repositories.base import BaseRepository, escape_like


class McpServerRepository(BaseRepository[McpServer]):
    model = McpServer

    async def of_workspace(self, workspace_id: uuid.UUID) -> list[Row[Any]]:
        """Every server of a workspace by name; there are a handful, not pages."""
        c = self.table.c
        stmt = self._select(workspace_id).order_by(c.name)
        return list((await self.session.execute(stmt)).all())

    async def named(self, workspace_id: uuid.UUID, names: Sequence[str]) -> dict[str, Row[Any]]:
        if not names:
            return {}
        stmt = self._select(workspace_id).where(self.table.c.name.in_(set(names)))
        return {row.name: row for row in await self.session.execute(stmt)}

    async def users_of(self, workspace_id: uuid.UUID, server: str, limit: int = 10) -> list[str]:
        """Agents and tasks whose tools include one of this server's (`agent:x`, `task:y`).

        Tools are stored as a JSON list; its text contains `"mcp:<server>/` exactly when one of
        them belongs to the server, on both databases."""
        pattern = f'%"mcp:{escape_like(server)}/%'
        found: list[str] = []
        for model, kind in ((Agent, "agent"), (Task, "task")):
            stmt = (
                select(model.name)
                .where(
                    model.workspace_id == workspace_id,
                    cast(model.tools, String).like(pattern, escape="\\"),
                )
                .order_by(model.name)
                .limit(limit)
            )
            found.extend(f"{kind}:{name}" for name in await self.session.scalars(stmt))
        return found[:limit]
