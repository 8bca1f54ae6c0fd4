"""The execution status rules (docs/executions.md), in one place.

QUEUED → RUNNING → COMPLETED | FAILED; QUEUED → CANCELLED; RUNNING → CANCELLING → CANCELLED
(or COMPLETED/FAILED if it finishes first); RUNNING | CANCELLING → CRASHED. Terminal statuses
have no way out. ExecutionService asks `check` before every status write.

Human input: RUNNING → WAITING_FOR_INPUT once a task that asks for it has answered. A wait holds
no runner and no lease, so it cannot crash; it ends by a response or its timeout: back to QUEUED
(approved, or feedback to redo the task: any runner picks it up again), FAILED (rejected, or
timed out when timeouts fail), or CANCELLED.
"""

from __future__ import annotations

import uuid

from backend.core.errors import InvalidTransition
from backend.schemas import TERMINAL, ExecutionStatus

S = ExecutionStatus

ALLOWED: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLING, S.CRASHED, S.WAITING_FOR_INPUT}),
    S.CANCELLING: frozenset({S.CANCELLED, S.COMPLETED, S.FAILED, S.CRASHED}),
    S.WAITING_FOR_INPUT: frozenset({S.QUEUED, S.FAILED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.CRASHED: frozenset(),
}

ACTIONS = {
    S.QUEUED: "resume",
    S.WAITING_FOR_INPUT: "wait for input on",
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


def check_respond(execution_id: uuid.UUID, current: ExecutionStatus) -> None:
    """Only an execution that waits for input takes a response."""
    if current != S.WAITING_FOR_INPUT:
        raise InvalidTransition(execution_id, current.value, "respond to")


def check_retry(execution_id: uuid.UUID, current: ExecutionStatus) -> None:
    """Only a finished execution can be retried: a running one is still trying."""
    if current not in TERMINAL:
        raise InvalidTransition(execution_id, current.value, "retry")
