"""The execution status rules (DESIGN.md §1), in one place.

QUEUED → RUNNING → COMPLETED | FAILED; QUEUED → CANCELLED; RUNNING → CANCELLING → CANCELLED
(or COMPLETED/FAILED if it finishes first); RUNNING | CANCELLING → CRASHED. Terminal statuses
have no way out. ExecutionService asks `check` before every status write.
"""

from __future__ import annotations

import uuid

from backend.core.errors import InvalidTransition
from backend.schemas import TERMINAL, ExecutionStatus

S = ExecutionStatus

ALLOWED: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLING, S.CRASHED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.COMPLETED, S.FAILED, S.CRASHED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.CRASHED: frozenset(),
}

ACTIONS = {
    S.RUNNING: "start",
    S.CANCELLING: "cancel",
    S.CANCELLED: "cancel",
    S.COMPLETED: "complete",
    S.FAILED: "fail",
    S.CRASHED: "mark as crashed",
}


def can_transition(current: ExecutionStatus, target: ExecutionStatus) -> bool:
    return target in ALLOWED[current]


def check(execution_id: uuid.UUID, current: ExecutionStatus, target: ExecutionStatus) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(execution_id, current.value, ACTIONS.get(target, "move"))


def check_retry(execution_id: uuid.UUID, current: ExecutionStatus) -> None:
    """Only a finished execution can be retried: a running one is still trying."""
    if current not in TERMINAL:
        raise InvalidTransition(execution_id, current.value, "retry")
