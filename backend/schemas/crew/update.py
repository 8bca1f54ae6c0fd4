from __future__ import annotations

import uuid

from pydantic import Field

from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name, OptionalText
from backend.schemas.crew.base import CrewProcess


class CrewUpdate(InputSchema):
    name: Name | None = None
    description: OptionalText | None = None
    process: CrewProcess | None = None
    task_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=100)
