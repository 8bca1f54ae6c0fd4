"""A workspace is a tenant: every other row belongs to exactly one."""

from __future__ import annotations

import uuid

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base
from backend.models.mixins import IdMixin, TimestampMixin

# Created by the first migration; requests act in it until authentication exists.
DEFAULT_WORKSPACE_ID = uuid.UUID("00000000-0000-7000-8000-000000000001")


class Workspace(IdMixin, TimestampMixin, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(100), unique=True)
