from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field

from backend.schemas.base import ResponseSchema
from backend.schemas.execution.status import ExecutionStatus, TaskStatus


class UsageResponse(ResponseSchema):
    """Model requests and their tokens; cost in USD, null when a model used has no price."""

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = Field(default=0, description="Model requests made.")
    cost_usd: float | None = Field(
        default=0.0,
        description="USD, from the server's price table; null when a model used has no price "
        "(unknown, not free).",
    )


USAGE_COLUMNS = ("input_tokens", "output_tokens", "requests", "cost_usd")


class ExecutionTaskResponse(ResponseSchema):
    position: int
    name: str
    agent_name: str
    status: TaskStatus
    output: str
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    model: str | None = Field(
        default=None,
        description="The model its agent called, as priced (openai/gpt-4o-mini, simulated); "
        "null until its first model request.",
    )
    usage: UsageResponse = Field(
        default_factory=UsageResponse, description="Its model requests, tokens and cost so far."
    )
    output_json: Any = Field(
        default=None,
        description="The answer as JSON, when the task has an output schema (it validated).",
    )

    @classmethod
    def of_row(cls, values: Mapping[Any, Any]) -> ExecutionTaskResponse:
        """From a stored row, whose usage is in columns of its own."""
        usage = UsageResponse.model_construct(**{k: values[k] for k in USAGE_COLUMNS})
        return cls.model_construct(**values, usage=usage)


class ExecutionResponse(ResponseSchema):
    id: uuid.UUID
    name: str
    status: ExecutionStatus
    crew_id: uuid.UUID | None
    crew_name: str
    inputs: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    error_code: str | None = Field(
        default=None,
        description="Why it failed, as a code: BUDGET_EXCEEDED, MODEL_ERROR, TASK_TIMEOUT, "
        "MAX_ITERATIONS, TASK_FAILED ...",
    )
    max_tokens: int | None = Field(default=None, description="The launch's token budget.")
    max_cost_usd: float | None = Field(default=None, description="The launch's USD budget.")
    parent_id: uuid.UUID | None
    idempotency_key: str | None
    last_seq: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # While WAITING_FOR_INPUT: when the wait ends by itself (CREWQL_INPUT_TIMEOUT_ACTION).
    input_deadline_at: datetime | None = None
