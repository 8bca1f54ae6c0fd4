"""Crew queries and mutations: parse, call CrewService, shape the answer."""

from __future__ import annotations

from typing import Annotated

import strawberry

from backend.api.graphql.context import Info
from backend.api.graphql.errors import error_result
from backend.api.graphql.mirror import to_schema
from backend.api.graphql.pagination import connection, page_request, parse_id, time_range
from backend.api.graphql.prefetch import Graph
from backend.api.graphql.types.crew import Crew
from backend.api.graphql.types.errors import ConflictError, Deleted, NotFoundError, ValidationError
from backend.api.graphql.types.inputs import CrewCreateInput, CrewUpdateInput, NameTimeFilter
from backend.api.graphql.types.pagination import Connection
from backend.core.errors import DomainError, NotFound
from backend.schemas import CrewCreate, CrewUpdate

CreateCrewResult = Annotated[
    Crew | ValidationError | ConflictError, strawberry.union("CreateCrewResult")
]
UpdateCrewResult = Annotated[
    Crew | ValidationError | NotFoundError | ConflictError, strawberry.union("UpdateCrewResult")
]
DeleteCrewResult = Annotated[
    Deleted | NotFoundError | ConflictError, strawberry.union("DeleteCrewResult")
]


@strawberry.type
class CrewQuery:
    @strawberry.field(description="One crew of your workspace, or null if there is none.")
    async def crew(self, info: Info, id: strawberry.ID) -> Crew | None:
        crew_id = parse_id(id)
        if crew_id is None:
            return None
        found = await info.context.loaders.crew.load(crew_id)
        return None if found is None else (await Graph(info).crews([found]))[0]

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
        page = await ctx.services.crews.list_crews(
            ctx.workspace_id,
            page_request(ctx.settings, first, after),
            name_contains=flt.name_contains,
            created=time_range(flt.created_after, flt.created_before),
        )
        return connection(
            await Graph(info).crews(page.items),
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
        )


@strawberry.type
class CrewMutation:
    @strawberry.mutation(description="Define a crew: its tasks, in the order they run.")
    async def create_crew(self, info: Info, input: CrewCreateInput) -> CreateCrewResult:
        ctx = info.context
        try:
            crew = await ctx.services.crews.create_crew(
                ctx.workspace_id, to_schema(CrewCreate, input)
            )
        except DomainError as error:
            return error_result(error)  # type: ignore[no-any-return]
        return (await Graph(info).crews([crew]))[0]

    @strawberry.mutation(description="Change a crew; fields you omit stay as they are.")
    async def update_crew(
        self, info: Info, id: strawberry.ID, input: CrewUpdateInput
    ) -> UpdateCrewResult:
        ctx = info.context
        try:
            crew_id = parse_id(id)
            if crew_id is None:
                raise NotFound("Crew", id)
            crew = await ctx.services.crews.update_crew(
                ctx.workspace_id, crew_id, to_schema(CrewUpdate, input)
            )
        except DomainError as error:
            return error_result(error)  # type: ignore[no-any-return]
        return (await Graph(info).crews([crew]))[0]

    @strawberry.mutation(description="Delete a crew (its tasks and agents stay).")
    async def delete_crew(self, info: Info, id: strawberry.ID) -> DeleteCrewResult:
        ctx = info.context
        try:
            crew_id = parse_id(id)
            if crew_id is None:
                raise NotFound("Crew", id)
            deleted = await ctx.services.crews.delete_crew(ctx.workspace_id, crew_id)
        except DomainError as error:
            return error_result(error)  # type: ignore[no-any-return]
        return Deleted(id=strawberry.ID(str(deleted)))
