"""Crew queries and mutations: parse, call CrewService, shape the answer."""

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
    page_request,
    parse_id,
)
from backend.api.graphql.prefetch import Graph
from backend.api.graphql.types.crew import Crew
from backend.api.graphql.types.errors import ConflictError, Deleted, NotFoundError, ValidationError
from backend.api.graphql.types.inputs import CrewCreateInput, CrewUpdateInput, NameTimeFilter
from backend.api.graphql.types.pagination import Connection
from backend.core.errors import Conflict, NotFound, ValidationFailed
from backend.schemas import CrewCreate, CrewResponse, CrewUpdate

CreateCrewResult = Annotated[
    Crew | ValidationError | ConflictError, strawberry.union("CreateCrewResult")
]
UpdateCrewResult = Annotated[
    Crew | ValidationError | NotFoundError | ConflictError, strawberry.union("UpdateCrewResult")
]
DeleteCrewResult = Annotated[
    Deleted | NotFoundError | ConflictError, strawberry.union("DeleteCrewResult")
]


async def shaped_crew(info: Info, crew: CrewResponse) -> Crew:
    """A crew a mutation returns, with what the selection asks for read in one statement."""
    graph = Graph(info)
    if not {"tasks", "agents"} & graph.names:
        return (await graph.crews([crew]))[0]
    # Read after the write committed; a crew deleted in between is answered as written.
    return await graph.crew_by_id(crew.id, fresh=True) or (await graph.crews([crew]))[0]


@strawberry.type
class CrewQuery:
    @strawberry.field(description="One crew of your workspace, or null if there is none.")
    async def crew(self, info: Info, id: strawberry.ID) -> Crew | None:
        crew_id = parse_id(id)
        if crew_id is None:
            return None
        return await Graph(info).crew_by_id(crew_id)

    @strawberry.field(description="Crews of your workspace, newest first.")
    async def crews(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: NameTimeFilter | None = None,
    ) -> Connection[Crew]:
        ctx = info.context
        flt = filter or NameTimeFilter()
        graph = Graph(info)
        with_tasks, with_agents = graph.graph_shape
        page = await ctx.services.crews.crew_graph(
            ctx.workspace_id,
            page=page_request(ctx.settings, first, after),
            where=list_filter(flt),
            with_tasks=with_tasks,
            with_agents=with_agents,
            fields=graph.graph_fields,
        )
        return connection(await graph.crew_graph(page), page)


@strawberry.type
class CrewMutation:
    @strawberry.mutation(description="Define a crew: its tasks, in the order they run.")
    @domain_result(ValidationFailed, Conflict)
    async def create_crew(self, info: Info, input: CrewCreateInput) -> CreateCrewResult:
        ctx = info.context
        crew = await ctx.services.crews.create_crew(ctx.workspace_id, to_schema(CrewCreate, input))
        return await shaped_crew(info, crew)

    @strawberry.mutation(description="Change a crew; fields you omit stay as they are.")
    @domain_result(ValidationFailed, NotFound, Conflict)
    async def update_crew(
        self, info: Info, id: strawberry.ID, input: CrewUpdateInput
    ) -> UpdateCrewResult:
        ctx = info.context
        crew = await ctx.services.crews.update_crew(
            ctx.workspace_id, known_id(id, "Crew"), to_schema(CrewUpdate, input)
        )
        return await shaped_crew(info, crew)

    @strawberry.mutation(description="Delete a crew (its tasks and agents stay).")
    @domain_result(NotFound, Conflict)
    async def delete_crew(self, info: Info, id: strawberry.ID) -> DeleteCrewResult:
        ctx = info.context
        return Deleted.of(
            await ctx.services.crews.delete_crew(ctx.workspace_id, known_id(id, "Crew"))
        )
