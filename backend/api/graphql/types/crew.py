"""The GraphQL Crew type: the fields of `CrewResponse`, plus its tasks and their agents."""

from __future__ import annotations

import strawberry

from backend.api.graphql.types.agent import Agent
from backend.api.graphql.types.task import Task
from backend.schemas import CrewResponse


@strawberry.experimental.pydantic.type(model=CrewResponse, all_fields=True)
class Crew:
    id: strawberry.ID
    task_ids: list[strawberry.ID]
    tasks: list[Task] = strawberry.field(
        default_factory=list, description="The crew's tasks, in the order they run."
    )
    agents: list[Agent] = strawberry.field(
        default_factory=list, description="The agents its tasks use, in order of first use."
    )
