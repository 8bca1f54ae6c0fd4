"""The Alembic revision the database is at, read on the unit of work's connection."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.migrate import revision_of


class SchemaRevisionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def current(self) -> str | None:
        """None when the database was never migrated."""
        connection = await self.session.connection()
        return await connection.run_sync(revision_of)
