"""Tasks stand on their own (a crew lists them in order), and name the tasks whose output they
read as context; `task_context` keeps that ordered list."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base
from backend.models.mixins import IdMixin, TimestampMixin, WorkspaceOwnedMixin


class Task(IdMixin, WorkspaceOwnedMixin, TimestampMixin, Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    expected_output: Mapped[str] = mapped_column(Text)
    # RESTRICT: an agent that tasks use cannot vanish underneath them.
    agent_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="RESTRICT"), index=True
    )
    # The execution waits for a person to approve its answer (or send feedback) before going on.
    human_input: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A JSON Schema the final answer must validate against (checked when it is set).
    output_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Tools for this task on top of its agent's (catalog names).
    tools: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))


class TaskContext(Base):
    __tablename__ = "task_context"
    __table_args__ = (UniqueConstraint("task_id", "context_task_id"),)

    task_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    context_task_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tasks.id", ondelete="RESTRICT"), index=True
    )
