"""Usage over a workspace: filters, groupings and their totals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from backend.schemas.execution.response import UsageResponse


class UsageGroupBy(StrEnum):
    DAY = "DAY"
    MODEL = "MODEL"
    CREW = "CREW"


@dataclass(frozen=True)
class UsageFilter:
    """Executions created in [start, end), of one crew, tasks of one model (None: any)."""

    start: datetime | None = None
    end: datetime | None = None
    crew_id: uuid.UUID | None = None
    model: str | None = None


@dataclass(frozen=True)
class UsageGroup:
    key: str  # the day (YYYY-MM-DD), the model, or the crew's id ("inline" for inline configs)
    day: str | None
    model: str | None
    crew_id: uuid.UUID | None
    crew_name: str | None
    executions: int
    usage: UsageResponse
