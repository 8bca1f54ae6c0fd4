"""The `usage` query: what a workspace's executions used, grouped by day, model or crew."""

from __future__ import annotations

from datetime import datetime

import strawberry

from backend.api.graphql.context import Info
from backend.api.graphql.errors import ClientError
from backend.api.graphql.pagination import filter_id
from backend.api.graphql.types.execution import Usage
from backend.schemas.usage import UsageFilter as UsageFilterSchema
from backend.schemas.usage import UsageGroupBy

strawberry.enum(UsageGroupBy, description="How `usage` groups what it adds up.")


@strawberry.input(description="Narrows `usage`; all given conditions must hold.")
class UsageFilter:
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="Executions created at or after this instant."
    )
    to: datetime | None = strawberry.field(
        default=None, description="Executions created before this instant."
    )
    crew_id: strawberry.ID | None = strawberry.field(
        default=None, description="Executions launched from this crew."
    )
    model: str | None = strawberry.field(
        default=None, description="Tasks whose agent called this model (e.g. openai/gpt-4o-mini)."
    )


@strawberry.type(description="What one day, model or crew used.")
class UsageGroup:
    key: str = strawberry.field(
        description="The day (YYYY-MM-DD, UTC), the model, or the crew's id (`inline` for "
        "crews launched inline)."
    )
    day: str | None
    model: str | None
    crew_id: strawberry.ID | None
    crew_name: str | None
    executions: int = strawberry.field(description="Executions with a task in this group.")
    usage: Usage


@strawberry.type
class UsageQuery:
    @strawberry.field(
        description="Tokens, model requests and cost of your workspace's executions, grouped "
        "(in order of the group's key)."
    )
    async def usage(
        self,
        info: Info,
        filter: UsageFilter | None = None,
        group_by: UsageGroupBy = UsageGroupBy.DAY,
    ) -> list[UsageGroup]:
        ctx = info.context
        flt = filter or UsageFilter()
        crew_id = filter_id(flt.crew_id, "crewId")
        if flt.from_ is not None and flt.to is not None and flt.from_ > flt.to:
            raise ClientError("`filter.from` is after `filter.to`.", argument="filter")
        groups = await ctx.services.usage.usage(
            ctx.workspace_id,
            UsageFilterSchema(flt.from_, flt.to, crew_id, flt.model),
            group_by,
        )
        return [
            UsageGroup(
                key=g.key,
                day=g.day,
                model=g.model,
                crew_id=strawberry.ID(str(g.crew_id)) if g.crew_id else None,
                crew_name=g.crew_name,
                executions=g.executions,
                usage=Usage.from_pydantic(g.usage),
            )
            for g in groups
        ]
