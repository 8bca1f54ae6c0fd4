"""CrewAI projects in and out: what an import takes and what import and export answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, StringConstraints

from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name, OptionalText
from backend.schemas.crew import CrewResponse

# YAML is taken as sent: stripping it would shift the line numbers errors and warnings name.
YamlText = Annotated[
    str, StringConstraints(strip_whitespace=False, min_length=1, max_length=500_000)
]
NamePrefix = Annotated[
    str, StringConstraints(strip_whitespace=False, min_length=1, max_length=50, pattern=r"^\S")
]


class CrewaiImport(InputSchema):
    name: Name = Field(description="The crew's name in crewql.")
    description: OptionalText = ""
    agents_yaml: YamlText = Field(description="The project's config/agents.yaml, as text.")
    tasks_yaml: YamlText = Field(description="The project's config/tasks.yaml, as text.")
    name_prefix: NamePrefix | None = Field(
        default=None,
        description="Put before every agent and task name (names are unique per workspace, "
        "CrewAI's keys only per project).",
    )


@dataclass(frozen=True, slots=True)
class CrewaiWarning:
    """A key the import could not map (or mapped with a caveat): said, never dropped silently."""

    file: str
    path: str
    line: int | None
    message: str


@dataclass(frozen=True, slots=True)
class CrewaiImportResult:
    crew: CrewResponse
    warnings: list[CrewaiWarning]
    # The {placeholders} the texts use: the inputs a launch must give.
    inputs: list[str]


@dataclass(frozen=True, slots=True)
class CrewaiProject:
    agents_yaml: str
    tasks_yaml: str
    warnings: list[CrewaiWarning]
