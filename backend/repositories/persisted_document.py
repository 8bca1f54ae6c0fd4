from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Row, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import PersistedDocument


class PersistedDocumentRepository:
    """Documents by hash, shared by every workspace (see models/persisted_document.py)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.table = cast(Table, PersistedDocument.__table__)

    async def get(self, sha256: str) -> Row[Any] | None:
        stmt = select(*self.table.c).where(self.table.c.sha256 == sha256)
        return (await self.session.execute(stmt)).first()

    async def get_by_document_id(self, document_id: str) -> Row[Any] | None:
        stmt = select(*self.table.c).where(self.table.c.document_id == document_id)
        return (await self.session.execute(stmt)).first()

    async def count_registered(self) -> int:
        """APQ registrations: the documents nobody made trusted."""
        stmt = select(func.count()).select_from(self.table).where(self.table.c.trusted.is_(False))
        return int((await self.session.execute(stmt)).scalar_one())

    async def add(self, sha256: str, document: str) -> None:
        """Stores an APQ registration; a document already stored (by anyone) stays as it is."""
        stmt = self._insert().values(sha256=sha256, document=document, trusted=False)
        await self.session.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))

    async def add_trusted(self, sha256: str, document: str, document_id: str | None) -> None:
        """Stores a trusted document, or makes the stored one trusted (keeping its id if the
        manifest gives none)."""
        stmt = self._insert().values(
            sha256=sha256, document=document, document_id=document_id, trusted=True
        )
        kept_id = document_id if document_id is not None else self.table.c.document_id
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["sha256"], set_={"trusted": True, "document_id": kept_id}
            )
        )

    def _insert(self) -> Any:
        # INSERT … ON CONFLICT exists in both dialects, under each dialect's own `insert`.
        dialect = self.session.get_bind().dialect.name
        module = postgresql if dialect == "postgresql" else sqlite
        return module.insert(self.table)
