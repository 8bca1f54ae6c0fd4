"""A burst of subscribers to one execution (dashboards opening at once, or reconnecting after
a deploy) shares the reads that start each stream: before, each subscribe read the database
three times, and 5,000 at once waited on the connection pool until checkouts timed out
(INTERNAL). Each stream must still get its own history and live events, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import AbstractContextManager, aclosing

from starlette.applications import Starlette

from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.schemas import EventType, ExecutionEventResponse
from backend.services.bundle import Services
from tests.integration.test_event_stream import running_execution
from tests.support.statements import watched_statements

SUBSCRIBERS = 200


def count_reads(app: Starlette) -> AbstractContextManager[list[str]]:
    return watched_statements(
        app.state.engine.sync_engine, lambda s: s.lstrip().upper().startswith("SELECT")
    )


async def first_events(
    stream: AsyncGenerator[ExecutionEventResponse, None], count: int, ready: asyncio.Event
) -> list[int]:
    seqs: list[int] = []
    async with aclosing(stream):
        async for item in stream:
            seqs.append(item.seq)
            if len(seqs) == 2:  # the stored history: EXECUTION_QUEUED, EXECUTION_STARTED...
                ready.set()
            if len(seqs) == count:
                return seqs
    return seqs


async def test_a_burst_of_subscribers_shares_its_reads(app: Starlette) -> None:
    services: Services = app.state.services
    run = await running_execution(services)
    history = await services.executions.events(WS, run.id, limit=100)
    readies = [asyncio.Event() for _ in range(SUBSCRIBERS)]
    with count_reads(app) as reads:
        consumers = [
            asyncio.create_task(
                first_events(services.watch.stream_events(WS, run.id), len(history) + 1, ready)
            )
            for ready in readies
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
        subscribing_reads = len(reads)
    # Three reads a stream before (execution, history page, execution again): 600 here.
    assert subscribing_reads <= 12, subscribing_reads
    await services.lifecycle.task_output(run, 0, "live")
    got = await asyncio.wait_for(asyncio.gather(*consumers), 30)
    expected = [e.seq for e in history] + [len(history) + 1]
    assert all(seqs == expected for seqs in got)
    live = await services.executions.events(WS, run.id, after=len(history))
    assert live[0].type == EventType.TASK_OUTPUT
