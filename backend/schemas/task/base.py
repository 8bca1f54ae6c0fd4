from __future__ import annotations

import uuid

from pydantic import Field

from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name, Text


class TaskBase(InputSchema):
    name: Name
    description: Text
    expected_output: Text
    agent_id: uuid.UUID
    # Ids of the tasks whose output this one reads, in the order they are presented to the model.
    context_task_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
