from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from backend.schemas.base import ResponseSchema


class TaskResponse(ResponseSchema):
    id: uuid.UUID
    name: str
    description: str
    expected_output: str
    agent_id: uuid.UUID
    context_task_ids: list[uuid.UUID]
    human_input: bool
    output_schema: dict[str, Any] | None
    tools: list[str]
    created_at: datetime
    updated_at: datetime
