"""Pydantic schemas, one folder per domain (base/create/update/response), re-exported here."""

from backend.schemas.agent import AgentCreate, AgentResponse, AgentUpdate
from backend.schemas.common import Page, PageRequest, TimeRange
from backend.schemas.crew import CrewCreate, CrewProcess, CrewResponse, CrewUpdate
from backend.schemas.execution import (
    TERMINAL,
    AgentConfig,
    CrewConfig,
    EventType,
    ExecutionCreate,
    ExecutionEventResponse,
    ExecutionResponse,
    ExecutionStatus,
    ExecutionTaskResponse,
    TaskConfig,
    TaskStatus,
)
from backend.schemas.task import TaskCreate, TaskResponse, TaskUpdate

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
    "AgentCreate",
    "AgentResponse",
    "AgentUpdate",
    "CrewCreate",
    "CrewProcess",
    "CrewResponse",
    "CrewUpdate",
    "Page",
    "PageRequest",
    "TaskCreate",
    "TaskResponse",
    "TaskUpdate",
    "TimeRange",
]
