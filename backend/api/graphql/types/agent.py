"""The GraphQL Agent type: the fields of `AgentResponse`, declared there once."""

from __future__ import annotations

import strawberry

from backend.schemas import AgentResponse


@strawberry.experimental.pydantic.type(model=AgentResponse, all_fields=True)
class Agent:
    id: strawberry.ID
