"""The generic repository: every query of an owned table, always scoped to one workspace.

Reads return SQLAlchemy `Row`s selected column by column (no ORM identity map), because building
ORM objects costs several times more than rows on list pages and reads never modify what they get.
Repositories never commit; the unit of work does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

from sqlalchemy import ColumnElement, Row, Select, Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.base import Base
from backend.schemas.common import EVERYTHING, ListFilter, Page, PageRequest

ModelT = TypeVar("ModelT", bound=Base)


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class BaseRepository(Generic[ModelT]):
    model: ClassVar[type[Base]]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.table = cast(Table, self.model.__table__)

    def _select(self, workspace_id: uuid.UUID) -> Select[Any]:
        return select(*self.table.c).where(self.table.c.workspace_id == workspace_id)

    async def get(self, workspace_id: uuid.UUID, id_: uuid.UUID) -> Row[Any] | None:
        result = await self.session.execute(
            self._select(workspace_id).where(self.table.c.id == id_)
        )
        row: Row[Any] | None = result.first()
        return row

    async def get_many(
        self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Row[Any]]:
        if not ids:
            return {}
        stmt = self._select(workspace_id).where(self.table.c.id.in_(set(ids)))
        return {row.id: row for row in await self.session.execute(stmt)}

    async def list(
        self, workspace_id: uuid.UUID, page: PageRequest, where: ListFilter = EVERYTHING
    ) -> Page[Row[Any]]:
        """Newest first (ids are time-ordered UUIDs, so `id` alone is the keyset). Repositories
        with filters of their own add them as typed keyword arguments and call `_list`."""
        return await self._list(workspace_id, page, where)

    async def _list(
        self,
        workspace_id: uuid.UUID,
        page: PageRequest,
        where: ListFilter,
        extra: Sequence[ColumnElement[bool]] = (),
    ) -> Page[Row[Any]]:
        c = self.table.c
        stmt = self._select(workspace_id).where(*extra)
        if where.name_contains:
            pattern = f"%{escape_like(where.name_contains)}%"
            stmt = stmt.where(c.name.ilike(pattern, escape="\\"))
        if where.created_after is not None:
            stmt = stmt.where(c.created_at >= where.created_after)
        if where.created_before is not None:
            stmt = stmt.where(c.created_at < where.created_before)
        if page.after is not None:
            stmt = stmt.where(c.id < page.after)
        stmt = stmt.order_by(c.id.desc()).limit(page.first + 1)
        rows = list((await self.session.execute(stmt)).all())
        return Page(
            items=rows[: page.first],
            has_next_page=len(rows) > page.first,
            has_previous_page=page.after is not None,
        )

    async def name_taken(
        self, workspace_id: uuid.UUID, name: str, *, exclude_id: uuid.UUID | None = None
    ) -> bool:
        c = self.table.c
        stmt = select(func.count()).where(c.workspace_id == workspace_id, c.name == name)
        if exclude_id is not None:
            stmt = stmt.where(c.id != exclude_id)
        return bool(await self.session.scalar(stmt))

    async def add(self, workspace_id: uuid.UUID, values: dict[str, Any]) -> Row[Any]:
        stmt = (
            insert(self.table).values(workspace_id=workspace_id, **values).returning(*self.table.c)
        )
        return (await self.session.execute(stmt)).one()

    async def update(
        self, workspace_id: uuid.UUID, id_: uuid.UUID, values: dict[str, Any]
    ) -> Row[Any] | None:
        c = self.table.c
        stmt = (
            update(self.table)
            .where(c.workspace_id == workspace_id, c.id == id_)
            .values(**values)
            .returning(*c)
        )
        return (await self.session.execute(stmt)).first()

    async def delete(self, workspace_id: uuid.UUID, id_: uuid.UUID) -> bool:
        c = self.table.c
        stmt = delete(self.table).where(c.workspace_id == workspace_id, c.id == id_).returning(c.id)
        return (await self.session.execute(stmt)).first() is not None
