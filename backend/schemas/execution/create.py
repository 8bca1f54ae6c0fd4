from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field, model_validator

from backend.schemas.base import InputSchema
from backend.schemas.execution.config import CrewConfig


class ExecutionCreate(InputSchema):
    crew_id: uuid.UUID | None = Field(
        default=None, description="The stored crew to launch (or give `crew`)."
    )
    crew: CrewConfig | None = Field(
        default=None, description="An inline crew config to launch (or give `crewId`)."
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Values for {placeholders} in task texts."
    )
    name: str | None = Field(default=None, max_length=200, description="Generated when omitted.")
    input_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86_400,
        description="How long a wait for human input may last in this execution (default: "
        "the server's setting); what its end does is the server's setting too.",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=10**12,
        description="Stop the run (FAILED, BUDGET_EXCEEDED) once its tokens exceed this.",
    )
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="Stop the run (FAILED, BUDGET_EXCEEDED) once its cost exceeds this many "
        "USD; every model the crew uses needs a price.",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Repeating a request with the same key returns the same execution.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ExecutionCreate:
        if (self.crew_id is None) == (self.crew is None):
            raise ValueError("give exactly one of crewId or crew")
        return self
