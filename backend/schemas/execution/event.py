from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from backend.schemas.base import ResponseSchema
from backend.schemas.execution.status import ExecutionStatus


class EventType(StrEnum):
    EXECUTION_QUEUED = "EXECUTION_QUEUED"
    EXECUTION_STARTED = "EXECUTION_STARTED"
    TASK_STARTED = "TASK_STARTED"
    TASK_OUTPUT = "TASK_OUTPUT"
    TASK_COMPLETED = "TASK_COMPLETED"
    TASK_FAILED = "TASK_FAILED"
    LLM_REQUEST = "LLM_REQUEST"
    TOOL_CALL_STARTED = "TOOL_CALL_STARTED"
    TOOL_CALL_COMPLETED = "TOOL_CALL_COMPLETED"
    TOOL_CALL_FAILED = "TOOL_CALL_FAILED"
    LOG = "LOG"
    INPUT_REQUESTED = "INPUT_REQUESTED"
    INPUT_RECEIVED = "INPUT_RECEIVED"
    EXECUTION_CANCELLING = "EXECUTION_CANCELLING"
    EXECUTION_COMPLETED = "EXECUTION_COMPLETED"
    EXECUTION_FAILED = "EXECUTION_FAILED"
    EXECUTION_CANCELLED = "EXECUTION_CANCELLED"
    EXECUTION_CRASHED = "EXECUTION_CRASHED"


class ExecutionEventResponse(ResponseSchema):
    execution_id: uuid.UUID
    seq: int
    type: EventType
    status: ExecutionStatus
    task_position: int | None
    message: str
    data: dict[str, Any]
    created_at: datetime
