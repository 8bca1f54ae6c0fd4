from __future__ import annotations

from sqlalchemy import JSON, Float, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base
from backend.models.mixins import IdMixin, TimestampMixin, WorkspaceOwnedMixin


class Agent(IdMixin, WorkspaceOwnedMixin, TimestampMixin, Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(Text)
    goal: Mapped[str] = mapped_column(Text)
    backstory: Mapped[str] = mapped_column(Text, default="")
    llm: Mapped[str] = mapped_column(String(200), default="simulated")
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_iterations: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Catalog names (`http_request`, `mcp:<server>/<tool>`); the task's are added to them.
    tools: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    # The workspace secret holding the provider's key; None: the provider's default name.
    api_key_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
