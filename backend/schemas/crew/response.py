from __future__ import annotations

import uuid
from datetime import datetime

from backend.schemas.base import ResponseSchema
from backend.schemas.crew.base import CrewProcess


class CrewResponse(ResponseSchema):
    id: uuid.UUID
    name: str
    description: str
    process: CrewProcess
    task_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime
