"""Fencing: a worker that lost its lease writes nothing more, on both databases.

A worker frozen past its lease (SIGSTOP, a GC pause, a partition) used to commit TASK_OUTPUT
events after it resumed, before a reaper marked the execution CRASHED. Every write of a running
execution now locks the row only if the writer still holds an unexpired lease, in one statement;
here the lease simply runs out while the "worker" holds its handle, which is what a frozen
worker sees when it wakes up. No runner runs in these apps; the test plays the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette

from backend.config.settings import Settings
from backend.main import create_app
from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.schemas import ExecutionCreate, ExecutionStatus
from backend.services.bundle import Services
from backend.services.execution_lifecycle import ExecutionGone, RunHandle
from tests.conftest import _clean
from tests.integration.test_event_stream import CONFIG

LEASE = 1.5


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    short = {"runner_enabled": False, "lease_seconds": LEASE, "heartbeat_interval_seconds": 0.1}
    app: Starlette = create_app(settings.model_copy(update=short))
    try:
        yield app.state.services
    finally:
        await _clean(app)
        await app.state.engine.dispose()


async def claimed(services: Services, worker: str = "worker-a") -> RunHandle:
    created = await services.executions.create_execution(WS, ExecutionCreate(crew=CONFIG))
    [run] = await services.lifecycle.claim(worker, 1)
    assert run.id == created.id
    return run


async def last_seq(services: Services, run: RunHandle) -> int:
    return (await services.executions.get_execution(WS, run.id)).last_seq


async def test_the_lease_holder_writes(services: Services) -> None:
    run = await claimed(services)
    await services.lifecycle.task_started(run, 0)
    await services.lifecycle.heartbeat(run.worker_id, [run.id])
    await services.lifecycle.task_output(run, 0, "chunk")
    assert await services.lifecycle.complete(run, {"t": "done"}) == ExecutionStatus.COMPLETED


async def test_a_worker_whose_lease_ran_out_writes_nothing(services: Services) -> None:
    run = await claimed(services)
    await services.lifecycle.task_started(run, 0)
    before = await last_seq(services, run)
    await asyncio.sleep(LEASE * 1.5)  # "frozen" past the lease; no reaper ran yet
    await services.lifecycle.heartbeat(run.worker_id, [run.id])  # a lost lease is not renewed
    for write in (
        lambda: services.lifecycle.task_output(run, 0, "late chunk"),
        lambda: services.lifecycle.task_completed(run, 0, "late output"),
        lambda: services.lifecycle.complete(run, {"t": "late"}),
        lambda: services.lifecycle.fail(run, "late"),
        lambda: services.lifecycle.cancelled(run, "late"),
    ):
        with pytest.raises(ExecutionGone, match="lost its lease"):
            await write()
    assert await last_seq(services, run) == before  # not one event more
    # The reaper, meanwhile, may crash it; the frozen worker still writes nothing.
    assert await services.lifecycle.reap(lambda worker: False) == 1
    with pytest.raises(ExecutionGone, match="CRASHED"):
        await services.lifecycle.task_output(run, 0, "after the crash")
    execution = await services.executions.get_execution(WS, run.id)
    assert execution.status == ExecutionStatus.CRASHED


async def test_a_handle_of_another_worker_cannot_write(services: Services) -> None:
    run = await claimed(services)
    impostor = RunHandle(run.id, run.workspace_id, run.name, run.config, run.inputs, worker_id="b")
    with pytest.raises(ExecutionGone, match="run by worker-a"):
        await services.lifecycle.task_output(impostor, 0, "not mine")
    await services.lifecycle.task_output(run, 0, "mine")
