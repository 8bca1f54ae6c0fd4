"""A workspace is a tenant: every other row belongs to exactly one."""

from __future__ import annotations

import uuid

from sqlalchemy import JSON, String, text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base
from backend.models.mixins import IdMixin, TimestampMixin

# Created by the first migration; requests act in it until authentication exists.
DEFAULT_WORKSPACE_ID = uuid.UUID("00000000-0000-7000-8000-000000000001")


class Workspace(IdMixin, TimestampMixin, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Hosts the `http_request` tool may reach (`api.example.com`, `*.example.com`, `host:8080`);
    # empty: none. Set by admins (`setHttpAllowlist`).
    http_allowlist: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
