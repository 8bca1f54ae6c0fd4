from __future__ import annotations

import uuid
from datetime import datetime

from backend.schemas.base import ResponseSchema


class WorkspaceResponse(ResponseSchema):
    id: uuid.UUID
    name: str
    created_at: datetime
