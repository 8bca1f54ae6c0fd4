"""API keys: a workspace's credentials, each with a role.

Only a hash of a key's secret is stored; `public_id` (the 8 characters after `cq_`) is what finds
the row, and it is safe to show, log and type, so operators name keys by it. A key is revoked, not
deleted: `revoked_at` keeps the record of who had access and until when.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base
from backend.db.types import UTCDateTime
from backend.models.mixins import IdMixin, TimestampMixin, WorkspaceOwnedMixin


class ApiKey(IdMixin, WorkspaceOwnedMixin, TimestampMixin, Base):
    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('viewer', 'editor', 'admin')", name="role"),)

    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    public_id: Mapped[str] = mapped_column(String(16), unique=True)
    # sha256 of the secret, hex: the secret is 256 random bits, so a fast hash is enough.
    secret_hash: Mapped[str] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
