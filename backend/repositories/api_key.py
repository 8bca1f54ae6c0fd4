"""API keys. Everything is scoped to a workspace, except finding a key by its public id:
authentication is how a request learns its workspace, so that one lookup cannot know it yet."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update

from backend.models import ApiKey
from backend.repositories.base import BaseRepository

# Everything but the hash: what listing and managing keys may read.
PUBLIC_COLUMNS = (
    "id",
    "workspace_id",
    "name",
    "role",
    "public_id",
    "created_at",
    "updated_at",
    "last_used_at",
    "revoked_at",
)


class ApiKeyRepository(BaseRepository[ApiKey]):
    model = ApiKey

    def _public(self) -> list[Any]:
        return [self.table.c[name] for name in PUBLIC_COLUMNS]

    async def by_public_id(self, public_id: str) -> Row[Any] | None:
        """The key with this public id, in any workspace, hash included (for authentication)."""
        c = self.table.c
        columns = [c.id, c.workspace_id, c.role, c.public_id, c.secret_hash, c.revoked_at]
        stmt = select(*columns).where(c.public_id == public_id)
        row: Row[Any] | None = (await self.session.execute(stmt)).first()
        return row

    async def public_id_taken(self, public_id: str) -> bool:
        c = self.table.c
        return (await self.session.scalar(select(c.id).where(c.public_id == public_id))) is not None

    async def of_workspace(self, workspace_id: uuid.UUID) -> list[Row[Any]]:
        """Every key of a workspace, newest first; a workspace holds tens of keys, not pages."""
        c = self.table.c
        stmt = select(*self._public()).where(c.workspace_id == workspace_id).order_by(c.id.desc())
        return list((await self.session.execute(stmt)).all())

    async def find(self, workspace_id: uuid.UUID, key_id: uuid.UUID) -> Row[Any] | None:
        c = self.table.c
        stmt = select(*self._public()).where(c.workspace_id == workspace_id, c.id == key_id)
        return (await self.session.execute(stmt)).first()

    async def find_by_public_id(self, workspace_id: uuid.UUID, public_id: str) -> Row[Any] | None:
        c = self.table.c
        stmt = select(*self._public()).where(
            c.workspace_id == workspace_id, c.public_id == public_id
        )
        return (await self.session.execute(stmt)).first()

    async def revoke(
        self, workspace_id: uuid.UUID, key_id: uuid.UUID, now: datetime
    ) -> Row[Any] | None:
        """Marks the key revoked (once: a second revocation keeps the first time)."""
        c = self.table.c
        stmt = (
            update(self.table)
            .where(c.workspace_id == workspace_id, c.id == key_id, c.revoked_at.is_(None))
            .values(revoked_at=now, updated_at=now)
        )
        await self.session.execute(stmt)
        return await self.find(workspace_id, key_id)

    async def touch(self, key_id: uuid.UUID, now: datetime, not_since: datetime) -> None:
        """Records a use unless one after `not_since` is recorded already.

        The condition keeps several processes from writing the same row many times a minute;
        `updated_at` stays as it is, because a use is not a change to the key.
        """
        c = self.table.c
        stmt = (
            update(self.table)
            .where(c.id == key_id, (c.last_used_at.is_(None)) | (c.last_used_at < not_since))
            # Named, or the column's `onupdate` would set it.
            .values(last_used_at=now, updated_at=c.updated_at)
        )
        await self.session.execute(stmt)
