"""The schema's enums, registered with Strawberry once, before any type refers to them.

Importing this module first keeps one definition per enum (a second, implicit one would make
Strawberry refuse the schema).
"""

from __future__ import annotations

import strawberry

from backend.core.identity import Role
from backend.schemas import CrewProcess, EventType, ExecutionStatus, TaskStatus
from backend.schemas.tool import McpTransport, ToolSource

strawberry.enum(CrewProcess, description="How a crew runs its tasks.")
strawberry.enum(ExecutionStatus, description="Where an execution is in its lifecycle.")
strawberry.enum(EventType, description="What an execution event records.")
strawberry.enum(TaskStatus, description="Where one task of an execution is.")
strawberry.enum(
    McpTransport,
    description="How an MCP server is reached: streamable HTTP (current) or SSE (older servers).",
)
strawberry.enum(ToolSource, description="Where a tool comes from.")
strawberry.enum(
    Role,
    name="ApiKeyRole",
    description="What a key may do: VIEWER reads and subscribes, EDITOR also changes crews, "
    "agents, tasks and executions, ADMIN also manages the workspace's keys.",
)

__all__ = [
    "CrewProcess",
    "EventType",
    "ExecutionStatus",
    "McpTransport",
    "Role",
    "TaskStatus",
    "ToolSource",
]
