from __future__ import annotations

from sqlalchemy import Float, Integer, String, Text, UniqueConstraint
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
