"""CrewAI import and export: parse, call CrewaiService, shape the answer."""

from __future__ import annotations

from typing import Annotated

import strawberry

from backend.api.graphql.context import Info
from backend.api.graphql.domain_result import domain_result
from backend.api.graphql.mirror import to_schema
from backend.api.graphql.pagination import parse_id
from backend.api.graphql.resolvers.crews import shaped_crew
from backend.api.graphql.types.crewai import CrewaiImport, CrewaiProject, CrewaiWarning
from backend.api.graphql.types.errors import ConflictError, ValidationError
from backend.api.graphql.types.inputs import CrewaiImportInput
from backend.core.errors import Conflict, NotFound, ValidationFailed
from backend.schemas.crewai import CrewaiImport as CrewaiImportSchema

ImportCrewaiProjectResult = Annotated[
    CrewaiImport | ValidationError | ConflictError, strawberry.union("ImportCrewaiProjectResult")
]


@strawberry.type
class CrewaiQuery:
    @strawberry.field(
        description="A crew of your workspace as CrewAI's agents.yaml and tasks.yaml, or null "
        "if there is no such crew."
    )
    async def export_crewai(self, info: Info, crew_id: strawberry.ID) -> CrewaiProject | None:
        ctx = info.context
        parsed = parse_id(crew_id)
        if parsed is None:
            return None
        try:
            project = await ctx.services.crewai.export_crew(ctx.workspace_id, parsed)
        except NotFound:
            return None
        return CrewaiProject(
            agents_yaml=project.agents_yaml,
            tasks_yaml=project.tasks_yaml,
            warnings=[CrewaiWarning.of(w) for w in project.warnings],
        )


@strawberry.type
class CrewaiMutation:
    @strawberry.mutation(
        description="Import a CrewAI project (config/agents.yaml and config/tasks.yaml) as "
        "agents, tasks and a crew, all or nothing."
    )
    @domain_result(ValidationFailed, Conflict)
    async def import_crewai_project(
        self, info: Info, input: CrewaiImportInput
    ) -> ImportCrewaiProjectResult:
        ctx = info.context
        result = await ctx.services.crewai.import_project(
            ctx.workspace_id, to_schema(CrewaiImportSchema, input)
        )
        return CrewaiImport(
            crew=await shaped_crew(info, result.crew),
            warnings=[CrewaiWarning.of(w) for w in result.warnings],
            inputs=result.inputs,
        )
