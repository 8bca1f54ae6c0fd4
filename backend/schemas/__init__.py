"""Pydantic schemas, one folder per domain (base/create/update/response), re-exported here."""

from backend.schemas import execution
from backend.schemas.agent import AgentCreate, AgentResponse, AgentUpdate
from backend.schemas.api_key import ApiKeyCreate, ApiKeyCreated, ApiKeyResponse
from backend.schemas.common import EVERYTHING, ListFilter, Page, PageRequest
from backend.schemas.crew import CrewCreate, CrewProcess, CrewResponse, CrewUpdate
from backend.schemas.execution import *  # noqa: F403  (its __all__, re-exported below)
from backend.schemas.task import TaskCreate, TaskResponse, TaskUpdate
from backend.schemas.workspace import WorkspaceCreate, WorkspaceResponse

__all__ = [
    "EVERYTHING",
    "AgentCreate",
    "AgentResponse",
    "AgentUpdate",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyResponse",
    "CrewCreate",
    "CrewProcess",
    "CrewResponse",
    "CrewUpdate",
    "ListFilter",
    "Page",
    "PageRequest",
    "TaskCreate",
    "TaskResponse",
    "TaskUpdate",
    "WorkspaceCreate",
    "WorkspaceResponse",
    *execution.__all__,
]
