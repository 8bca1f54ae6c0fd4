"""A crew runs its tasks in the order `crew_tasks.position` gives; its agents are those its
tasks use, so they are derived rather than stored twice."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base
from backend.models.mixins import IdMixin, TimestampMixin, WorkspaceOwnedMixin


class Crew(IdMixin, WorkspaceOwnedMixin, TimestampMixin, Base):
    __tablename__ = "crews"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    process: Mapped[str] = mapped_column(String(20), default="sequential")


class CrewTask(Base):
    __tablename__ = "crew_tasks"
    __table_args__ = (UniqueConstraint("crew_id", "task_id"),)

    crew_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("crews.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tasks.id", ondelete="RESTRICT"), index=True
    )
