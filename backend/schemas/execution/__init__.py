from backend.schemas.execution.config import AgentConfig, CrewConfig, TaskConfig
from backend.schemas.execution.create import ExecutionCreate
from backend.schemas.execution.event import EventType, ExecutionEventResponse
from backend.schemas.execution.response import (
    ExecutionResponse,
    ExecutionTaskResponse,
    UsageResponse,
)
from backend.schemas.execution.status import TERMINAL, ExecutionStatus, TaskStatus

__all__ = [
    "TERMINAL",
    "AgentConfig",
    "CrewConfig",
    "EventType",
    "ExecutionCreate",
    "ExecutionEventResponse",
    "ExecutionResponse",
    "ExecutionStatus",
    "ExecutionTaskResponse",
    "TaskConfig",
    "TaskStatus",
    "UsageResponse",
]
