"""MCP servers a workspace registered (HTTP transports only: processes come from settings).

`headers` is a list of `{"name": header, "secret": secret name}`: the header values are the
workspace's secrets, read when a run connects, so no credential is stored here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, CheckConstraint, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base
from backend.models.mixins import IdMixin, TimestampMixin, WorkspaceOwnedMixin


class McpServer(IdMixin, WorkspaceOwnedMixin, TimestampMixin, Base):
    __tablename__ = "mcp_servers"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        CheckConstraint("transport IN ('streamable_http', 'sse')", name="transport"),
    )

    name: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    transport: Mapped[str] = mapped_column(String(20))
    headers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
