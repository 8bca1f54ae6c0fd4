"""GraphQL types for executions: mirrors of the execution response schemas, plus relations.

Unlike crews (whose lists are hot and prefetched), an execution's relations resolve through
per-operation DataLoaders: one batch per relation per operation, whatever the page size.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from backend.api.graphql.context import Info
from backend.api.graphql.errors import ClientError
from backend.api.graphql.mirror import to_type
from backend.core.usage import Usage as UsageSum
from backend.schemas import (
    ExecutionEventResponse,
    ExecutionResponse,
    ExecutionTaskResponse,
    UsageResponse,
)

if TYPE_CHECKING:
    from backend.api.graphql.types.crew import Crew


CrewRef = Annotated["Crew", strawberry.lazy("backend.api.graphql.types.crew")]
ExecutionRef = Annotated["Execution", strawberry.lazy("backend.api.graphql.types.execution")]


@strawberry.experimental.pydantic.type(model=UsageResponse, all_fields=True)
class Usage:
    input_tokens: strawberry.auto
    output_tokens: strawberry.auto

    @strawberry.field(description="Input and output tokens.")
    def total_tokens(self) -> int:
        return int(self.input_tokens + self.output_tokens)


@strawberry.experimental.pydantic.type(model=ExecutionTaskResponse, all_fields=True)
class ExecutionTask:
    output_json: JSON | None = strawberry.field(
        description="The answer as JSON, when the task has an output schema (it validated)."
    )


@strawberry.experimental.pydantic.type(model=ExecutionEventResponse, all_fields=True)
class ExecutionEvent:
    execution_id: strawberry.ID
    data: JSON


@strawberry.experimental.pydantic.type(model=ExecutionResponse, all_fields=True)
class Execution:
    id: strawberry.ID
    crew_id: strawberry.ID | None
    parent_id: strawberry.ID | None
    inputs: JSON
    result: JSON | None

    @strawberry.field(description="The state and output of each task, in running order.")
    async def tasks(self, info: Info) -> list[ExecutionTask]:
        found = await info.context.loaders.execution_tasks.load(_uuid(self.id))
        return [execution_task_type(t) for t in found]

    @strawberry.field(
        description="Model requests, tokens and cost of all its tasks so far (cost null when a "
        "model used has no price)."
    )
    async def usage(self, info: Info) -> Usage:
        found = await info.context.loaders.execution_tasks.load(_uuid(self.id))
        total = sum(
            (
                UsageSum(u.input_tokens, u.output_tokens, u.requests, u.cost_usd)
                for u in (t.usage for t in found)
            ),
            UsageSum(),
        )
        return Usage(
            input_tokens=total.input_tokens,
            output_tokens=total.output_tokens,
            requests=total.requests,
            cost_usd=total.cost_usd,
        )

    @strawberry.field(description="The crew it was launched from (null for inline configs).")
    async def crew(self, info: Info) -> CrewRef | None:
        if self.crew_id is None:
            return None
        from backend.api.graphql.prefetch import Graph

        found = await info.context.loaders.crew.load(_uuid(self.crew_id))
        return None if found is None else (await Graph(info).crews([found]))[0]

    @strawberry.field(description="The execution this one retries, if any.")
    async def parent(self, info: Info) -> ExecutionRef | None:
        if self.parent_id is None:
            return None
        found = await info.context.loaders.execution.load(_uuid(self.parent_id))
        return None if found is None else execution_type(found)

    @strawberry.field(description="Executions that retried this one, oldest first.")
    async def retries(self, info: Info) -> list[ExecutionRef]:
        found = await info.context.loaders.retries.load(_uuid(self.id))
        return [execution_type(e) for e in found]

    @strawberry.field(description="Stored events with seq > after, in order (at most `first`).")
    async def events(self, info: Info, after: int = 0, first: int = 100) -> list[ExecutionEvent]:
        ctx = info.context
        if not 0 <= first <= ctx.settings.max_page_size * 10:
            raise ClientError(f"`first` must be between 0 and {ctx.settings.max_page_size * 10}.")
        found = await ctx.loaders.events.load((_uuid(self.id), max(after, 0), first))
        return [event_type(e) for e in found]


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(str(value))


execution_type = to_type(Execution, ExecutionResponse)
execution_task_type = to_type(ExecutionTask, ExecutionTaskResponse)
event_type = to_type(ExecutionEvent, ExecutionEventResponse)
