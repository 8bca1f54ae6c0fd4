"""GraphQL inputs, generated from the create/update schemas (see `mirror.input_type`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry

from backend.api.graphql.mirror import input_type
from backend.schemas import (
    AgentCreate,
    AgentUpdate,
    CrewCreate,
    CrewUpdate,
    ExecutionCreate,
    TaskCreate,
    TaskUpdate,
)
from backend.schemas.crewai import CrewaiImport
from backend.schemas.tool import McpServerCreate, McpServerUpdate

_STAY = "Fields to change; omitted fields stay as they are."

if TYPE_CHECKING:  # generated classes: mypy sees them as Any
    AgentCreateInput = Any
    AgentUpdateInput = Any
    TaskCreateInput = Any
    TaskUpdateInput = Any
    CrewCreateInput = Any
    CrewUpdateInput = Any
    McpServerCreateInput = Any
    McpServerUpdateInput = Any
    ExecutionCreateInput = Any
    CrewaiImportInput = Any
else:
    AgentCreateInput = input_type(AgentCreate, partial=False, description="A new agent.")
    AgentUpdateInput = input_type(
        AgentUpdate,
        partial=True,
        description="Fields to change; omitted fields stay, null clears an optional field.",
    )
    TaskCreateInput = input_type(TaskCreate, partial=False, description="A new task.")
    TaskUpdateInput = input_type(TaskUpdate, partial=True, description=_STAY)
    CrewCreateInput = input_type(CrewCreate, partial=False, description="A new crew.")
    CrewUpdateInput = input_type(CrewUpdate, partial=True, description=_STAY)
    McpServerCreateInput = input_type(
        McpServerCreate,
        partial=False,
        description="An MCP server reached over HTTP; header values come from secrets.",
    )
    McpServerUpdateInput = input_type(
        McpServerUpdate,
        partial=True,
        description="Fields to change; `headers` replaces the whole list when given.",
    )
    ExecutionCreateInput = input_type(
        ExecutionCreate,
        partial=False,
        description="Launch a stored crew (crewId) or an inline crew config (crew), not both.",
    )
    CrewaiImportInput = input_type(
        CrewaiImport,
        partial=False,
        description="A CrewAI project's two YAML files, and the crew's name here.",
    )


@strawberry.input(description="Narrows a list; all given conditions must hold.")
class NameTimeFilter:
    name_contains: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the name."
    )
    created_after: datetime | None = strawberry.field(
        default=None, description="Created at or after this instant."
    )
    created_before: datetime | None = strawberry.field(
        default=None, description="Created strictly before this instant."
    )


@strawberry.input(description="Narrows the task list; all given conditions must hold.")
class TaskFilter(NameTimeFilter):
    agent_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only tasks performed by this agent."
    )
