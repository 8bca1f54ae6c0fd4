"""GraphQL types of CrewAI import and export."""

from __future__ import annotations

import strawberry

from backend.api.graphql.types.crew import Crew
from backend.schemas.crewai import CrewaiWarning as CrewaiWarningSchema


@strawberry.type(description="Something of the project that crewql read differently or not at all.")
class CrewaiWarning:
    file: str = strawberry.field(description="agents.yaml or tasks.yaml.")
    path: str = strawberry.field(
        description="The entry and key, e.g. `reporting_task.output_file`."
    )
    line: int | None = strawberry.field(description="Line in the file, when known.")
    message: str

    @classmethod
    def of(cls, warning: CrewaiWarningSchema) -> CrewaiWarning:
        return cls(file=warning.file, path=warning.path, line=warning.line, message=warning.message)


@strawberry.type(description="A CrewAI project, imported as agents, tasks and a crew.")
class CrewaiImport:
    crew: Crew
    warnings: list[CrewaiWarning] = strawberry.field(
        description="Keys that were not imported, or imported with a caveat."
    )
    inputs: list[str] = strawberry.field(
        description="The {placeholders} the texts use: the inputs a launch must give."
    )


@strawberry.type(description="A crew as CrewAI's config/agents.yaml and config/tasks.yaml.")
class CrewaiProject:
    agents_yaml: str
    tasks_yaml: str
    warnings: list[CrewaiWarning] = strawberry.field(
        description="What CrewAI will read differently from how crewql runs it."
    )
