"""A runner that loses the database retries while its lease can hold, then stops."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.exc import OperationalError

from backend.runner.resilience import LeaseClock, persist
from backend.services.execution_lifecycle import ExecutionGone


def outage(failures: int) -> tuple[list[int], object]:
    calls: list[int] = []

    async def write() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise OperationalError("UPDATE ...", {}, ConnectionRefusedError("db down"))
        return "written"

    return calls, write


async def test_retries_through_a_short_outage() -> None:
    calls, write = outage(2)
    clock = LeaseClock(lease_seconds=30)
    assert await persist(write, clock, "testing") == "written"  # type: ignore[arg-type]
    assert len(calls) == 3


async def test_stops_once_the_lease_may_have_expired() -> None:
    calls, write = outage(1_000)
    clock = LeaseClock(lease_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(ExecutionGone, match="longer than the lease"):
        await persist(write, clock, "testing")  # type: ignore[arg-type]
    assert 0.3 <= time.monotonic() - started < 3
    assert len(calls) >= 2


async def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    async def write() -> None:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await persist(write, LeaseClock(30), "testing")
    assert calls == [1]
