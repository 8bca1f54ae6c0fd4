"""The PostgreSQL bus's two event channels: the status changes workers act on (queued, taken,
cancelled) on one, every other event on another.

A process serving subscribers hears both, in commit order, as one stream; a worker hears only the
first: not an execution's steps, nor how a run it did not take ended. Notifications go out in the
writing transaction, as the services send them; the events here are notices only (no rows), since
the bus carries no content by itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from backend.config.settings import Settings
from backend.db.engine import create_engine, create_sessionmaker
from backend.events.bus import QUEUE_EVENTS, STATUS_EVENTS, BusEvent
from backend.events.postgres import CHANNEL, PROGRESS_CHANNEL, PostgresEventBus, decode, notices
from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.repositories.unit_of_work import UnitOfWork
from backend.schemas import EventType, ExecutionStatus

RUNNING, CANCELLED = ExecutionStatus.RUNNING, ExecutionStatus.CANCELLED
# One execution's life in the order a runner writes it: status changes and steps interleaved.
LIFE = [
    (EventType.EXECUTION_QUEUED, ExecutionStatus.QUEUED),
    (EventType.EXECUTION_STARTED, RUNNING),
    (EventType.TASK_STARTED, RUNNING),
    (EventType.TASK_OUTPUT, RUNNING),
    (EventType.TASK_COMPLETED, RUNNING),
    (EventType.TASK_STARTED, RUNNING),
    (EventType.TASK_COMPLETED, RUNNING),
    (EventType.EXECUTION_COMPLETED, ExecutionStatus.COMPLETED),
]


def life(execution_id: uuid.UUID, first_seq: int = 1) -> list[BusEvent]:
    return [
        BusEvent(WS, None, execution_id, seq, kind, status)
        for seq, (kind, status) in enumerate(LIFE, start=first_seq)
    ]


def test_runs_of_each_kind_go_to_their_channel_in_order() -> None:
    events = life(uuid.uuid4())
    sent = notices(events)
    assert [channel for channel, _ in sent] == [CHANNEL, PROGRESS_CHANNEL]
    assert [e.seq for _, payload in sent for e in decode(payload)] == [e.seq for e in events]
    for channel, payload in sent:
        assert all((e.type in QUEUE_EVENTS) == (channel == CHANNEL) for e in decode(payload))
    # A cancellation while queued is for workers; the end of a run is not.
    cancelled = BusEvent(WS, None, uuid.uuid4(), 1, EventType.EXECUTION_CANCELLED, CANCELLED)
    assert [channel for channel, _ in notices([cancelled])] == [CHANNEL]


def test_a_long_run_is_cut_into_payloads_of_fifty() -> None:
    execution_id = uuid.uuid4()
    chunks = [
        BusEvent(WS, None, execution_id, n, EventType.TASK_OUTPUT, RUNNING) for n in range(120)
    ]
    assert [len(decode(payload)) for _, payload in notices(chunks)] == [50, 50, 20]


@pytest.fixture
async def buses(backend: str, settings: Settings) -> AsyncIterator[tuple[PostgresEventBus, ...]]:
    if backend != "postgres":
        pytest.skip("LISTEN/NOTIFY: PostgreSQL only")
    replica = PostgresEventBus(settings.database_url, 256)
    worker = PostgresEventBus(settings.database_url, 256, progress=False)
    for bus in (replica, worker):
        await bus.start()
        assert bus.listening
    try:
        yield replica, worker
    finally:
        for bus in (replica, worker):
            await bus.stop()


async def test_a_replica_hears_every_event_in_order_and_a_worker_only_queue_changes(
    buses: tuple[PostgresEventBus, PostgresEventBus], settings: Settings
) -> None:
    replica, worker = buses
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    first, second = uuid.uuid4(), uuid.uuid4()
    try:
        async with (
            replica.subscribe(first) as watched,
            replica.subscribe_updates(lambda _item: True) as replica_feed,
            worker.subscribe(first) as unwatched,
            worker.subscribe_updates(lambda _item: True, internal=True) as worker_feed,
        ):
            # Two transactions per execution, the two executions' commits interleaved; then a
            # third execution queued, after which the worker has heard all it ever will.
            last = life(uuid.uuid4())[:1]
            batches = [life(first)[:4], life(second)[:3], life(first)[4:], life(second)[3:], last]
            for batch in batches:
                async with UnitOfWork(sessions) as uow:
                    await replica.stage(uow, batch)
            sent = [e for batch in batches for e in batch]

            heard: list[BusEvent] = []
            async with asyncio.timeout(10):
                while len(heard) < len(LIFE):
                    heard.extend(await watched.next_batch())
            assert [(e.seq, e.type) for e in heard] == [
                (e.seq, e.type) for e in sent if e.execution_id == first
            ]

            for feed, kinds in ((replica_feed, STATUS_EVENTS), (worker_feed, QUEUE_EVENTS)):
                expected = [(e.execution_id, e.seq) for e in sent if e.type in kinds]
                fed: list[BusEvent] = []
                async with asyncio.timeout(10):
                    while len(fed) < len(expected):
                        fed.extend(await feed.next_batch())
                assert [(e.execution_id, e.seq) for e in fed] == expected

            # The worker heard the last execution queued, so everything sent before it: of
            # `first`, only that it was queued and taken (no step, not its completion).
            async with asyncio.timeout(10):
                on_worker = await unwatched.next_batch()
            assert [e.type for e in on_worker] == [
                EventType.EXECUTION_QUEUED,
                EventType.EXECUTION_STARTED,
            ]
    finally:
        await engine.dispose()
