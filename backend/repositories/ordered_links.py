"""An ordered list of ids kept beside a row: a task's context tasks, a crew's tasks.

Both are stored the same way, in a table of (parent id, position, child id) rows; the parent
table carries the workspace, so reads join it to stay inside one workspace.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.utils.groups import group_by


@dataclass(frozen=True)
class OrderedLinks:
    owner: Table  # the parent table (it has `id` and `workspace_id`)
    links: Table  # the (parent, position, child) table
    parent: str  # its column naming the parent row
    child: str  # its column naming the linked row

    async def read(
        self, session: AsyncSession, workspace_id: uuid.UUID, parent_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Each parent's ids in order; every asked parent gets an entry."""
        if not parent_ids:
            return {}
        parent, child = self.links.c[self.parent], self.links.c[self.child]
        stmt = (
            select(parent, child)
            .join(self.owner, self.owner.c.id == parent)
            .where(self.owner.c.workspace_id == workspace_id, parent.in_(set(parent_ids)))
            .order_by(parent, self.links.c.position)
        )
        rows = await session.execute(stmt)
        return group_by(parent_ids, rows, itemgetter(0), itemgetter(1))

    async def replace(
        self,
        session: AsyncSession,
        workspace_id: uuid.UUID,
        parent_id: uuid.UUID,
        child_ids: Sequence[uuid.UUID],
    ) -> None:
        """Replaces a parent's list; the service validated the ids. The links table has no
        workspace of its own, so a parent outside the workspace is refused here (a bug of the
        caller's, not a client error)."""
        owner = self.owner.c
        owned = select(owner.id).where(owner.id == parent_id, owner.workspace_id == workspace_id)
        if (await session.execute(owned)).first() is None:
            raise LookupError(f"{self.owner.name} {parent_id} is not in workspace {workspace_id}")
        await session.execute(delete(self.links).where(self.links.c[self.parent] == parent_id))
        if child_ids:
            rows: list[dict[str, Any]] = [
                {self.parent: parent_id, "position": i, self.child: child_id}
                for i, child_id in enumerate(child_ids)
            ]
            await session.execute(insert(self.links), rows)
