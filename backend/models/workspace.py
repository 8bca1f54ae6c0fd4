"""A workspace is a tenant: every other row belongs to exactly one."""

from __future__ import annotations

from sqlalchemy import JSON, String, text
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.identity import DEFAULT_WORKSPACE_ID
from backend.db.base import Base
from backend.models.mixins import IdMixin, TimestampMixin

__all__ = ["DEFAULT_WORKSPACE_ID", "Workspace"]


class Workspace(IdMixin, TimestampMixin, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Hosts the `http_request` tool may reach (`api.example.com`, `*.example.com`, `host:8080`);
    # empty: none. Set by admins (`setHttpAllowlist`).
    http_allowlist: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
