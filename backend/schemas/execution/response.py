from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from backend.schemas.base import ResponseSchema
from backend.schemas.execution.status import ExecutionStatus, TaskStatus


class ExecutionTaskResponse(ResponseSchema):
    position: int
    name: str
    agent_name: str
    status: TaskStatus
    output: str
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


class ExecutionResponse(ResponseSchema):
    id: uuid.UUID
    name: str
    status: ExecutionStatus
    crew_id: uuid.UUID | None
    crew_name: str
    inputs: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    parent_id: uuid.UUID | None
    idempotency_key: str | None
    last_seq: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # While WAITING_FOR_INPUT: when the wait ends by itself (CREWQL_INPUT_TIMEOUT_ACTION).
    input_deadline_at: datetime | None = None
