"""The event log and its streams, at the service level: gapless seq under concurrent writers,
history-then-live with no gap or duplicate, slow subscribers caught up, nothing left behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from starlette.applications import Starlette

from backend.config.settings import Settings
from backend.events.bus import BusEvent, UpdateSubscription
from backend.main import create_app
from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.schemas import (
    CrewConfig,
    EventType,
    ExecutionCreate,
    ExecutionEventResponse,
    ExecutionStatus,
)
from backend.services.bundle import Services
from backend.services.execution_lifecycle import RunHandle
from tests.conftest import _clean

CONFIG = CrewConfig.model_validate(
    {
        "name": "c",
        "agents": [{"name": "a", "role": "r", "goal": "g"}],
        "tasks": [{"name": "t", "description": "d", "expected_output": "e", "agent": "a"}],
    }
)


@pytest.fixture
async def small_buffer_app(settings: Settings) -> AsyncIterator[Starlette]:
    app = create_app(settings.model_copy(update={"subscriber_buffer": 2}))
    try:
        yield app
    finally:
        await _clean(app)
        await app.state.engine.dispose()


async def running_execution(services: Services) -> RunHandle:
    created = await services.executions.create_execution(WS, ExecutionCreate(crew=CONFIG))
    [run] = await services.lifecycle.claim("test-worker", 1)
    assert run.id == created.id
    await services.lifecycle.task_started(run, 0)
    return run


async def collect(stream: AsyncIterator[ExecutionEventResponse]) -> list[ExecutionEventResponse]:
    return [event async for event in stream]


async def test_concurrent_writers_never_share_a_seq(small_buffer_app: Starlette) -> None:
    services: Services = small_buffer_app.state.services
    run = await running_execution(services)
    await asyncio.gather(
        *(services.lifecycle.task_output(run, 0, f"chunk {i} ") for i in range(30))
    )
    await services.lifecycle.complete(run, {"final": "x"})
    events = await services.executions.events(WS, run.id, limit=1000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(events) == 3 + 30 + 1
    tasks = (await services.executions.tasks_of(WS, [run.id]))[run.id]
    assert sorted(tasks[0].output.split("chunk ")[1:]) == sorted(f"{i} " for i in range(30))


async def test_stream_replays_then_follows_live(small_buffer_app: Starlette) -> None:
    services: Services = small_buffer_app.state.services
    run = await running_execution(services)
    stream = services.watch.stream_events(WS, run.id)
    consumer = asyncio.create_task(collect(stream))
    await asyncio.sleep(0.05)  # the consumer has read the history and waits for live events
    for i in range(20):  # many more than the buffer of 2 holds: the stream must catch up
        await services.lifecycle.task_output(run, 0, f"{i};")
    await services.lifecycle.task_completed(run, 0, "done")
    await services.lifecycle.complete(run, {"final": "done"})
    events = await asyncio.wait_for(consumer, timeout=5)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == EventType.EXECUTION_COMPLETED
    assert services.bus.subscriber_count == 0


async def test_stream_after_and_finished_executions(small_buffer_app: Starlette) -> None:
    services: Services = small_buffer_app.state.services
    run = await running_execution(services)
    await services.lifecycle.complete(run, {"final": "x"})
    everything = await collect(services.watch.stream_events(WS, run.id))
    assert [e.seq for e in everything] == [1, 2, 3, 4]
    tail = await collect(services.watch.stream_events(WS, run.id, after=2))
    assert [e.seq for e in tail] == [3, 4]
    assert await collect(services.watch.stream_events(WS, run.id, after=4)) == []


async def test_stream_of_unknown_execution_fails_at_once(small_buffer_app: Starlette) -> None:
    services: Services = small_buffer_app.state.services
    with pytest.raises(Exception, match="does not exist"):
        await collect(services.watch.stream_events(WS, uuid.uuid4()))
    assert services.bus.subscriber_count == 0


async def test_abandoned_stream_leaves_nothing_behind(small_buffer_app: Starlette) -> None:
    services: Services = small_buffer_app.state.services
    run = await running_execution(services)
    streams = [services.watch.stream_events(WS, run.id) for _ in range(5)]
    for stream in streams:
        await stream.__anext__()
    assert services.bus.subscriber_count == 5
    for stream in streams:
        await stream.aclose()
    assert services.bus.subscriber_count == 0
    updates = services.watch.stream_updates(WS)
    reader = asyncio.create_task(updates.__anext__())
    await asyncio.sleep(0.01)
    assert services.bus.subscriber_count == 1
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await updates.aclose()
    assert services.bus.subscriber_count == 0


async def test_update_feed_filters_by_workspace(small_buffer_app: Starlette) -> None:
    services: Services = small_buffer_app.state.services
    other_workspace = uuid.uuid4()
    feed = services.watch.stream_updates(WS)
    foreign = services.watch.stream_updates(other_workspace)
    first = asyncio.create_task(feed.__anext__())
    foreign_first = asyncio.create_task(foreign.__anext__())
    await asyncio.sleep(0.01)
    run = await running_execution(services)
    event = await asyncio.wait_for(first, timeout=2)
    assert event.execution_id == run.id
    # Read later: the feed still holds every change, oldest first.
    await services.lifecycle.complete(run, {})
    await asyncio.sleep(0.01)
    started = await asyncio.wait_for(feed.__anext__(), timeout=2)
    assert started.type == EventType.EXECUTION_STARTED
    latest = await asyncio.wait_for(feed.__anext__(), timeout=2)
    assert latest.type == EventType.EXECUTION_COMPLETED
    assert not foreign_first.done()
    foreign_first.cancel()
    await asyncio.gather(foreign_first, return_exceptions=True)
    await feed.aclose()
    await foreign.aclose()


def test_update_feed_coalesces_only_when_it_lags() -> None:
    feed = UpdateSubscription(lambda item: True, capacity=3)
    first, second = uuid.uuid4(), uuid.uuid4()

    def change(execution_id: uuid.UUID, seq: int) -> BusEvent:
        event = ExecutionEventResponse(
            execution_id=execution_id,
            seq=seq,
            type=EventType.LOG,
            status=ExecutionStatus.RUNNING,
            task_position=None,
            message="",
            data={},
            created_at=datetime.now(UTC),
        )
        return BusEvent.of(WS, None, event)

    for seq in (1, 2, 3):
        feed.offer(change(first, seq))
    assert [i.seq for i in feed._pending] == [1, 2, 3]
    feed.offer(change(second, 1))  # over capacity: newest per execution only
    assert [(i.execution_id, i.seq) for i in feed._pending] == [
        (first, 3),
        (second, 1),
    ]
    assert feed.dropped == 0


async def test_after_beyond_the_end_of_a_running_execution_completes_at_its_end(
    small_buffer_app: Starlette,
) -> None:
    services: Services = small_buffer_app.state.services
    run = await running_execution(services)
    consumer = asyncio.create_task(collect(services.watch.stream_events(WS, run.id, after=1_000)))
    await asyncio.sleep(0.05)
    assert not consumer.done()
    await services.lifecycle.complete(run, {})
    assert await asyncio.wait_for(consumer, timeout=5) == []
    assert services.bus.subscriber_count == 0
