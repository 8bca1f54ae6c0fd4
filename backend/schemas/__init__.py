"""Pydantic schemas, one folder per domain (base/create/update/response), re-exported here."""

from backend.schemas.agent import AgentCreate, AgentResponse, AgentUpdate
from backend.schemas.common import Page, PageRequest, TimeRange
from backend.schemas.crew import CrewCreate, CrewProcess, CrewResponse, CrewUpdate
from backend.schemas.task import TaskCreate, TaskResponse, TaskUpdate

__all__ = [
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
