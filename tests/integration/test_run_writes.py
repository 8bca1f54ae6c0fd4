"""The runner's writes of several executions at once (`record_runs`): one claim takes two
executions; each keeps its own gapless, ordered event numbers, and a worker without the lease
is refused and writes nothing. No runner runs; the test plays the worker."""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from dataclasses import replace

import pytest
from sqlalchemy import Engine

from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.schemas import ExecutionCreate, ExecutionStatus
from backend.services.bundle import Services
from backend.services.execution_lifecycle import ExecutionGone, RunHandle
from backend.services.execution_progress import Step, StepKind
from tests.integration.test_event_stream import CONFIG
from tests.integration.test_fencing import services  # noqa: F401 (the fixture)
from tests.support.statements import watched_statements


async def test_one_claim_of_two_keeps_each_log_gapless(services: Services) -> None:  # noqa: F811
    ids = [
        (await services.executions.create_execution(WS, ExecutionCreate(crew=CONFIG))).id
        for _ in range(2)
    ]
    runs = await services.lifecycle.claim("worker-a", 2)
    assert [r.id for r in runs] == ids
    for run in runs:
        await services.lifecycle.task_started(run, 0)
        await services.lifecycle.task_output(run, 0, f"out of {run.id}")
    assert await services.lifecycle.complete(runs[0], {"t": "done"}) == ExecutionStatus.COMPLETED
    for run in runs:
        events = await services.executions.events(WS, run.id, after=0, limit=100)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert {e.execution_id for e in events} == {run.id}
        assert [e.type for e in events][:4] == [
            "EXECUTION_QUEUED",
            "EXECUTION_STARTED",
            "TASK_STARTED",
            "TASK_OUTPUT",
        ]
        assert (await services.executions.get_execution(WS, run.id)).last_seq == len(events)
    # Another worker holds neither lease: refused for each, and nothing is written.
    stranger = replace(runs[1], worker_id="worker-b")
    before = (await services.executions.get_execution(WS, runs[1].id)).last_seq
    with pytest.raises(ExecutionGone):
        await services.lifecycle.task_output(stranger, 0, "not mine")
    assert (await services.executions.get_execution(WS, runs[1].id)).last_seq == before
    assert await services.lifecycle.complete(runs[1], {"t": "done"}) == ExecutionStatus.COMPLETED


def fence_statements() -> AbstractContextManager[list[str]]:
    """The fence's locking reads (`leased`), one per transaction of running executions."""
    return watched_statements(Engine, lambda s: "executions.lease_expires_at >" in s)


async def claimed(svc: Services, count: int) -> list[RunHandle]:
    for _ in range(count):
        await svc.executions.create_execution(WS, ExecutionCreate(crew=CONFIG))
    runs = await svc.lifecycle.claim("worker-a", count)
    assert len(runs) == count
    return runs


async def assert_gapless(svc: Services, run: RunHandle) -> list[str]:
    events = await svc.executions.events(WS, run.id, after=0, limit=100)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert (await svc.executions.get_execution(WS, run.id)).last_seq == len(events)
    return [e.type for e in events]


async def test_writes_made_at_the_same_moment_share_one_transaction(
    services: Services,  # noqa: F811
) -> None:
    runs = await claimed(services, 3)
    with fence_statements() as fences:
        await asyncio.gather(*(services.lifecycle.task_started(r, 0) for r in runs))
        statuses = await asyncio.gather(
            *(services.lifecycle.complete(r, {"t": str(r.id)}, [out(0, "x")]) for r in runs)
        )
    assert statuses == [ExecutionStatus.COMPLETED] * 3
    assert len(fences) == 2, fences  # one per batch, not one per execution and write
    for run in runs:
        assert await assert_gapless(services, run) == [
            "EXECUTION_QUEUED",
            "EXECUTION_STARTED",
            "TASK_STARTED",
            "TASK_OUTPUT",
            "EXECUTION_COMPLETED",
        ]
        tasks = (await services.executions.tasks_of(WS, [run.id]))[run.id]
        assert tasks[0].output == "x"
        assert (await services.executions.get_execution(WS, run.id)).result == {"t": str(run.id)}


async def test_two_writes_of_one_execution_commit_in_order(services: Services) -> None:  # noqa: F811
    (run,) = await claimed(services, 1)
    first = services.lifecycle.task_output(run, 0, "a")
    second = services.lifecycle.complete(run, {}, [out(0, "b")])
    assert (await asyncio.gather(first, second))[1] == ExecutionStatus.COMPLETED
    types = await assert_gapless(services, run)
    assert types[-3:] == ["TASK_OUTPUT", "TASK_OUTPUT", "EXECUTION_COMPLETED"]
    tasks = (await services.executions.tasks_of(WS, [run.id]))[run.id]
    assert tasks[0].output == "ab"


async def test_the_fence_refuses_one_write_of_a_batch_and_the_others_commit(
    services: Services,  # noqa: F811
) -> None:
    mine, theirs = await claimed(services, 2)
    stranger = replace(theirs, worker_id="worker-b")
    before = (await services.executions.get_execution(WS, theirs.id)).last_seq
    done, refused = await asyncio.gather(
        services.lifecycle.complete(mine, {}),
        services.lifecycle.task_output(stranger, 0, "not mine"),
        return_exceptions=True,
    )
    assert done == ExecutionStatus.COMPLETED
    assert isinstance(refused, ExecutionGone)
    assert "worker-b" in refused.message
    assert (await services.executions.get_execution(WS, theirs.id)).last_seq == before
    await assert_gapless(services, mine)


async def test_a_write_that_cannot_be_stored_fails_alone(services: Services) -> None:  # noqa: F811
    good, bad = await claimed(services, 2)
    done, failed = await asyncio.gather(
        services.lifecycle.complete(good, {}),
        services.lifecycle.task_output(bad, 7, "a task it does not have"),
        return_exceptions=True,
    )
    assert done == ExecutionStatus.COMPLETED
    assert isinstance(failed, IndexError)
    assert (await services.executions.get_execution(WS, good.id)).status == "COMPLETED"
    # The other write was not stored; its execution goes on.
    assert await assert_gapless(services, bad) == ["EXECUTION_QUEUED", "EXECUTION_STARTED"]
    assert await services.lifecycle.complete(bad, {}) == ExecutionStatus.COMPLETED


async def test_a_write_whose_caller_was_cancelled_before_its_batch_writes_nothing(
    services: Services,  # noqa: F811
) -> None:
    (run,) = await claimed(services, 1)
    caller = asyncio.create_task(services.lifecycle.task_output(run, 0, "never"))
    await asyncio.sleep(0)  # queued; its batch has not started
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await services.lifecycle.complete(run, {}) == ExecutionStatus.COMPLETED
    assert await assert_gapless(services, run) == [
        "EXECUTION_QUEUED",
        "EXECUTION_STARTED",
        "EXECUTION_COMPLETED",
    ]


def out(position: int, text: str) -> Step:
    return Step(StepKind.OUTPUT, position, text)
