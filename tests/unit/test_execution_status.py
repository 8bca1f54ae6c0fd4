"""Every allowed and every refused status transition, one test each."""

from __future__ import annotations

import itertools
import uuid

import pytest

from backend.core.errors import InvalidTransition
from backend.schemas import ExecutionStatus as S
from backend.services import execution_status

ALLOWED = {
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.CANCELLED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLING),
    (S.RUNNING, S.CRASHED),
    (S.RUNNING, S.WAITING_FOR_INPUT),
    (S.WAITING_FOR_INPUT, S.QUEUED),
    (S.WAITING_FOR_INPUT, S.FAILED),
    (S.WAITING_FOR_INPUT, S.CANCELLED),
    (S.CANCELLING, S.CANCELLED),
    (S.CANCELLING, S.COMPLETED),
    (S.CANCELLING, S.FAILED),
    (S.CANCELLING, S.CRASHED),
}
ALL_PAIRS = [(a, b) for a, b in itertools.product(S, S) if a != b]


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed(current: S, target: S) -> None:
    execution_status.check(uuid.uuid4(), current, target)


@pytest.mark.parametrize(("current", "target"), [pair for pair in ALL_PAIRS if pair not in ALLOWED])
def test_refused_with_current_status(current: S, target: S) -> None:
    with pytest.raises(InvalidTransition) as info:
        execution_status.check(uuid.uuid4(), current, target)
    assert info.value.current_status == current.value
    assert current.value in info.value.message


@pytest.mark.parametrize("status", list(S))
def test_retry_only_from_terminal(status: S) -> None:
    terminal = {S.COMPLETED, S.FAILED, S.CANCELLED, S.CRASHED}
    if status in terminal:
        execution_status.check_retry(uuid.uuid4(), status)
    else:
        with pytest.raises(InvalidTransition, match=status.value):
            execution_status.check_retry(uuid.uuid4(), status)


@pytest.mark.parametrize("status", list(S))
def test_respond_only_while_waiting(status: S) -> None:
    if status == S.WAITING_FOR_INPUT:
        execution_status.check_respond(uuid.uuid4(), status)
    else:
        with pytest.raises(InvalidTransition, match=f"Cannot respond to .* it is {status.value}"):
            execution_status.check_respond(uuid.uuid4(), status)
