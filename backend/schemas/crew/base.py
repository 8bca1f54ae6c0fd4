from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import Field

from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name, OptionalText


class CrewProcess(StrEnum):
    SEQUENTIAL = "sequential"


class CrewBase(InputSchema):
    name: Name
    description: OptionalText = ""
    process: CrewProcess = CrewProcess.SEQUENTIAL
    # The crew's tasks in the order they run.
    task_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)
