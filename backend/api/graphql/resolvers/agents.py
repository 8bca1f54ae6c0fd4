"""Agent queries and mutations: parse, call CrewService, shape the answer."""

from __future__ import annotations

from typing import Annotated

import strawberry

from backend.api.graphql.context import Info
from backend.api.graphql.domain_result import domain_result
from backend.api.graphql.mirror import to_schema
from backend.api.graphql.pagination import (
    connection,
    known_id,
    list_filter,
    load_by_id,
    page_request,
)
from backend.api.graphql.prefetch import Graph
from backend.api.graphql.types.agent import Agent
from backend.api.graphql.types.errors import (
    ConflictError,
    Deleted,
    InUseError,
    NotFoundError,
    ValidationError,
)
from backend.api.graphql.types.inputs import AgentCreateInput, AgentUpdateInput, NameTimeFilter
from backend.api.graphql.types.pagination import Connection
from backend.core.errors import Conflict, InUse, NotFound, ValidationFailed
from backend.schemas import AgentCreate, AgentUpdate

CreateAgentResult = Annotated[
    Agent | ValidationError | ConflictError, strawberry.union("CreateAgentResult")
]
UpdateAgentResult = Annotated[
    Agent | ValidationError | NotFoundError | ConflictError, strawberry.union("UpdateAgentResult")
]
DeleteAgentResult = Annotated[
    Deleted | NotFoundError | InUseError | ConflictError, strawberry.union("DeleteAgentResult")
]


@strawberry.type
class AgentQuery:
    @strawberry.field(description="One agent of your workspace, or null if there is none.")
    async def agent(self, info: Info, id: strawberry.ID) -> Agent | None:
        found = await load_by_id(info.context.loaders.agent, id)
        return None if found is None else Graph(info).agents([found])[0]

    @strawberry.field(description="Agents of your workspace, newest first.")
    async def agents(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: NameTimeFilter | None = None,
    ) -> Connection[Agent]:
        ctx = info.context
        flt = filter or NameTimeFilter()
        page = await ctx.services.crews.list_agents(
            ctx.workspace_id,
            page_request(ctx.settings, first, after),
            list_filter(flt),
        )
        return connection(Graph(info).agents(page.items), page)


@strawberry.type
class AgentMutation:
    @strawberry.mutation(description="Define an agent: who it is and which model it uses.")
    @domain_result(ValidationFailed, Conflict)
    async def create_agent(self, info: Info, input: AgentCreateInput) -> CreateAgentResult:
        ctx = info.context
        agent = await ctx.services.crews.create_agent(
            ctx.workspace_id, to_schema(AgentCreate, input)
        )
        return Graph(info).agents([agent])[0]

    @strawberry.mutation(description="Change an agent; fields you omit stay as they are.")
    @domain_result(ValidationFailed, NotFound, Conflict)
    async def update_agent(
        self, info: Info, id: strawberry.ID, input: AgentUpdateInput
    ) -> UpdateAgentResult:
        ctx = info.context
        agent = await ctx.services.crews.update_agent(
            ctx.workspace_id, known_id(id, "Agent"), to_schema(AgentUpdate, input)
        )
        return Graph(info).agents([agent])[0]

    @strawberry.mutation(description="Delete an agent that no task uses.")
    @domain_result(NotFound, Conflict, InUse)
    async def delete_agent(self, info: Info, id: strawberry.ID) -> DeleteAgentResult:
        ctx = info.context
        return Deleted.of(
            await ctx.services.crews.delete_agent(ctx.workspace_id, known_id(id, "Agent"))
        )
