"""What a runner holds of an execution it claimed (`RunHandle`), and the error that tells it
to stop (`ExecutionGone`): shared by the lifecycle and its group-committed writes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from backend.core.errors import DomainError
from backend.schemas import CrewConfig, UsageResponse
from backend.services.execution_resume import Resume


class ExecutionGone(DomainError):
    """The execution was finished elsewhere (cancelled, crashed by a reaper): stop running it."""

    code = "EXECUTION_GONE"


@dataclass(frozen=True)
class RunHandle:
    """What the runner needs to run one claimed execution."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    config: CrewConfig
    inputs: dict[str, Any]
    # Where it starts: from the top, or after a wait for human input (execution_resume.py).
    resume: Resume = field(default_factory=Resume)
    # The launching request's trace context, which the run's trace links to.
    traceparent: str | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    # What its tasks used before a wait for human input (counted against the budget).
    used: dict[int, UsageResponse] = field(default_factory=dict)
    # The worker that claimed it: with the lease's expiry, the fencing token of every write.
    worker_id: str = ""
