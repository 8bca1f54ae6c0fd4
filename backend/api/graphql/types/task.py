"""The GraphQL Task type: the fields of `TaskResponse`, plus its agent and context tasks.

The relations are plain attributes filled in batches by `prefetch` from what the operation
selects, so resolving them costs no per-item coroutine (see docs/performance.md).
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from backend.api.graphql.types.agent import Agent
from backend.schemas import TaskResponse


@strawberry.experimental.pydantic.type(model=TaskResponse, all_fields=True)
class Task:
    id: strawberry.ID
    agent_id: strawberry.ID
    context_task_ids: list[strawberry.ID]
    output_schema: JSON | None = strawberry.field(
        description="The JSON Schema the answer must validate against, if any."
    )
    agent: Agent = strawberry.field(
        default=None,
        description="The agent that performs this task.",
    )
    context: list[Annotated[Task, strawberry.lazy("backend.api.graphql.types.task")]] = (
        strawberry.field(
            default_factory=list, description="Tasks whose output this task reads, in order."
        )
    )
