"""The runner's writes of several executions at once (`record_runs`): one claim takes two
executions; each keeps its own gapless, ordered event numbers, and a worker without the lease
is refused and writes nothing. No runner runs; the test plays the worker."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.schemas import ExecutionCreate, ExecutionStatus
from backend.services.bundle import Services
from backend.services.execution_lifecycle import ExecutionGone
from tests.integration.test_event_stream import CONFIG
from tests.integration.test_fencing import services  # noqa: F401 (the fixture)


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
