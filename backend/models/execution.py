"""Executions and their event log.

An execution keeps a snapshot of the crew as launched (`config`), so later edits to the crew do
not change what it runs or what it reports. `last_seq` is the per-execution event counter:
incrementing it in the same transaction that inserts the event makes `seq` gapless, and the row
lock (PostgreSQL) or the write lock (SQLite) keeps two writers from taking the same number.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base
from backend.db.types import UTCDateTime
from backend.models.mixins import IdMixin, TimestampMixin, WorkspaceOwnedMixin
from backend.utils.time import utcnow


class Execution(IdMixin, WorkspaceOwnedMixin, TimestampMixin, Base):
    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_executions_status_id", "status", "id"),
        # The runner counts a key's RUNNING executions before claiming more of its QUEUED ones.
        Index("ix_executions_api_key_id_status", "api_key_id", "status"),
    )

    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    crew_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("crews.id", ondelete="SET NULL"), nullable=True, index=True
    )
    crew_name: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("executions.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # The key that launched it (None: launched with authentication off), for the per-key cap on
    # running executions. Keys are revoked, not deleted; should a row go, the execution stays.
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True
    )
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_force: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Human input: this launch's wait limit (None: the setting), when the current wait ends by
    # itself, and the response a resumed run acts on ({"position", "feedback", "answer"}).
    input_timeout_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    input_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    input_response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The W3C `traceparent` of the request that launched it: the run's trace links to it, in
    # whichever process runs it (observability/tracing.py).
    traceparent: Mapped[str | None] = mapped_column(String(55), nullable=True)
    # The launch's budget (None: no limit), and the code of the failure that ended it.
    max_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(40), nullable=True)


class ExecutionTask(Base):
    """The state and output of one task of one execution (a projection of its events)."""

    __tablename__ = "execution_tasks"

    execution_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    agent_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    output: Mapped[str] = mapped_column(Text, default="")
    # The answer as JSON, when the task has an output schema (it validated against it).
    output_json: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Its model requests so far; cost None: the model has no price in the table (not free).
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    requests: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_usd: Mapped[float | None] = mapped_column(
        Float, nullable=True, default=0.0, server_default="0"
    )


class ExecutionEvent(Base):
    __tablename__ = "execution_events"
    __table_args__ = (UniqueConstraint("execution_id", "seq"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    execution_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("executions.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    task_position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
