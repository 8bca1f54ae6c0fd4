"""Pydantic schemas, one folder per domain (base/create/update/response), re-exported here."""

from backend.schemas.agent import AgentCreate, AgentResponse, AgentUpdate
from backend.schemas.api_key import ApiKeyCreate, ApiKeyCreated, ApiKeyResponse
from backend.schemas.common import EVERYTHING, ListFilter, Page, PageRequest
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
    UsageResponse,
)
from backend.schemas.task import TaskCreate, TaskResponse, TaskUpdate
from backend.schemas.workspace import WorkspaceCreate, WorkspaceResponse

__all__ = [
    "EVERYTHING",
    "TERMINAL",
    "AgentConfig",
    "AgentCreate",
    "AgentResponse",
    "AgentUpdate",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyResponse",
    "CrewConfig",
    "CrewCreate",
    "CrewProcess",
    "CrewResponse",
    "CrewUpdate",
    "EventType",
    "ExecutionCreate",
    "ExecutionEventResponse",
    "ExecutionResponse",
    "ExecutionStatus",
    "ExecutionTaskResponse",
    "ListFilter",
    "Page",
    "PageRequest",
    "TaskConfig",
    "TaskCreate",
    "TaskResponse",
    "TaskStatus",
    "TaskUpdate",
    "UsageResponse",
    "WorkspaceCreate",
    "WorkspaceResponse",
]
