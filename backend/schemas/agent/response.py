from __future__ import annotations

import uuid
from datetime import datetime

from backend.schemas.base import ResponseSchema


class AgentResponse(ResponseSchema):
    id: uuid.UUID
    name: str
    role: str
    goal: str
    backstory: str
    llm: str
    temperature: float | None
    max_iterations: int | None
    tools: list[str]
    api_key_secret: str | None
    created_at: datetime
    updated_at: datetime
