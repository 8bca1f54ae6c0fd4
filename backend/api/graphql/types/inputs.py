"""GraphQL inputs, generated from the create/update schemas (see `mirror.input_type`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry

from backend.api.graphql.mirror import input_type
from backend.schemas import AgentCreate, AgentUpdate, CrewCreate, CrewUpdate, TaskCreate, TaskUpdate

if TYPE_CHECKING:  # generated classes: mypy sees them as Any
    AgentCreateInput = Any
    AgentUpdateInput = Any
    TaskCreateInput = Any
    TaskUpdateInput = Any
    CrewCreateInput = Any
    CrewUpdateInput = Any
else:
    AgentCreateInput = input_type(
        AgentCreate, "AgentCreateInput", partial=False, description="A new agent."
    )
    AgentUpdateInput = input_type(
        AgentUpdate,
        "AgentUpdateInput",
        partial=True,
        description="Fields to change; omitted fields stay, null clears an optional field.",
    )
    TaskCreateInput = input_type(
        TaskCreate, "TaskCreateInput", partial=False, description="A new task."
    )
    TaskUpdateInput = input_type(
        TaskUpdate,
        "TaskUpdateInput",
        partial=True,
        description="Fields to change; omitted fields stay as they are.",
    )
    CrewCreateInput = input_type(
        CrewCreate, "CrewCreateInput", partial=False, description="A new crew."
    )
    CrewUpdateInput = input_type(
        CrewUpdate,
        "CrewUpdateInput",
        partial=True,
        description="Fields to change; omitted fields stay as they are.",
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
