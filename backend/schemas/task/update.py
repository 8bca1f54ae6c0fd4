from __future__ import annotations

import uuid

from pydantic import Field

from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name, Text
from backend.schemas.task.base import OutputSchema
from backend.schemas.tool.names import ToolList


class TaskUpdate(InputSchema):
    name: Name | None = None
    description: Text | None = None
    expected_output: Text | None = None
    agent_id: uuid.UUID | None = None
    context_task_ids: list[uuid.UUID] | None = Field(default=None, max_length=50)
    human_input: bool | None = None
    output_schema: OutputSchema | None = Field(default=None, description="null removes it.")
    tools: ToolList | None = None
