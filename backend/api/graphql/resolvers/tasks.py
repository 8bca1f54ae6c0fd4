"""Task queries and mutations: parse, call CrewService, shape the answer."""

from __future__ import annotations

from typing import Annotated

import strawberry

from backend.api.graphql.context import Info
from backend.api.graphql.domain_result import domain_result
from backend.api.graphql.mirror import to_schema
from backend.api.graphql.pagination import (
    connection,
    filter_id,
    known_id,
    list_filter,
    load_by_id,
    page_request,
)
from backend.api.graphql.prefetch import Graph
from backend.api.graphql.types.errors import (
    ConflictError,
    Deleted,
    InUseError,
    NotFoundError,
    ValidationError,
)
from backend.api.graphql.types.inputs import TaskCreateInput, TaskFilter, TaskUpdateInput
from backend.api.graphql.types.pagination import Connection
from backend.api.graphql.types.task import Task
from backend.core.errors import Conflict, InUse, NotFound, ValidationFailed
from backend.schemas import TaskCreate, TaskUpdate

CreateTaskResult = Annotated[
    Task | ValidationError | ConflictError, strawberry.union("CreateTaskResult")
]
UpdateTaskResult = Annotated[
    Task | ValidationError | NotFoundError | ConflictError, strawberry.union("UpdateTaskResult")
]
DeleteTaskResult = Annotated[
    Deleted | NotFoundError | InUseError | ConflictError, strawberry.union("DeleteTaskResult")
]


@strawberry.type
class TaskQuery:
    @strawberry.field(description="One task of your workspace, or null if there is none.")
    async def task(self, info: Info, id: strawberry.ID) -> Task | None:
        found = await load_by_id(info.context.loaders.task, id)
        return None if found is None else (await Graph(info).tasks([found]))[0]

    @strawberry.field(description="Tasks of your workspace, newest first.")
    async def tasks(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: TaskFilter | None = None,
    ) -> Connection[Task]:
        ctx = info.context
        flt = filter or TaskFilter()
        agent_id = filter_id(flt.agent_id, "agentId")
        page = await ctx.services.crews.list_tasks(
            ctx.workspace_id,
            page_request(ctx.settings, first, after),
            list_filter(flt),
            agent_id=agent_id,
        )
        return connection(await Graph(info).tasks(page.items), page)


@strawberry.type
class TaskMutation:
    @strawberry.mutation(description="Define a task for an agent, reading earlier tasks' output.")
    @domain_result(ValidationFailed, Conflict)
    async def create_task(self, info: Info, input: TaskCreateInput) -> CreateTaskResult:
        ctx = info.context
        task = await ctx.services.crews.create_task(ctx.workspace_id, to_schema(TaskCreate, input))
        return (await Graph(info).tasks([task]))[0]

    @strawberry.mutation(description="Change a task; fields you omit stay as they are.")
    @domain_result(ValidationFailed, NotFound, Conflict)
    async def update_task(
        self, info: Info, id: strawberry.ID, input: TaskUpdateInput
    ) -> UpdateTaskResult:
        ctx = info.context
        task = await ctx.services.crews.update_task(
            ctx.workspace_id, known_id(id, "Task"), to_schema(TaskUpdate, input)
        )
        return (await Graph(info).tasks([task]))[0]

    @strawberry.mutation(description="Delete a task that no crew and no other task uses.")
    @domain_result(NotFound, Conflict, InUse)
    async def delete_task(self, info: Info, id: strawberry.ID) -> DeleteTaskResult:
        ctx = info.context
        return Deleted.of(
            await ctx.services.crews.delete_task(ctx.workspace_id, known_id(id, "Task"))
        )
