"""SQLAlchemy models; importing this package registers every table on `Base.metadata`."""

from backend.models.agent import Agent
from backend.models.api_key import ApiKey
from backend.models.crew import Crew, CrewTask
from backend.models.execution import Execution, ExecutionEvent, ExecutionTask
from backend.models.mcp_server import McpServer
from backend.models.persisted_document import PersistedDocument
from backend.models.secret import Secret
from backend.models.task import Task, TaskContext
from backend.models.workspace import DEFAULT_WORKSPACE_ID, Workspace

__all__ = [
    "DEFAULT_WORKSPACE_ID",
    "Agent",
    "ApiKey",
    "Crew",
    "CrewTask",
    "Execution",
    "ExecutionEvent",
    "ExecutionTask",
    "McpServer",
    "PersistedDocument",
    "Secret",
    "Task",
    "TaskContext",
    "Workspace",
]
