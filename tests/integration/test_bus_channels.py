"""The PostgreSQL bus's channels: every event on one but cancellation requests, which go on
another that workers hear too; and a queued execution's turn, sent to one worker's own channel.

A process serving subscribers hears both event channels, in commit order, as one stream; a worker
hears only cancellation requests and its turns: not an execution's steps, nor its status changes.
Notifications go out in the writing transaction, as the services send them; the events here are
notices only (no rows), since the bus carries no content by itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from backend.config.settings import Settings
from backend.db.engine import create_engine, create_sessionmaker
from backend.events.bus import STATUS_EVENTS, BusEvent
from backend.events.postgres import CANCELS_CHANNEL, CHANNEL, PostgresEventBus, decode, notices
from backend.events.turns import STAGGER_SECONDS
from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.repositories.unit_of_work import UnitOfWork
from backend.schemas import EventType, ExecutionStatus

RUNNING = ExecutionStatus.RUNNING
CANCELLING = EventType.EXECUTION_CANCELLING
# One execution's life in the order a runner writes it: status changes and steps interleaved.
LIFE = [
    (EventType.EXECUTION_QUEUED, ExecutionStatus.QUEUED),
    (EventType.EXECUTION_STARTED, RUNNING),
    (EventType.TASK_STARTED, RUNNING),
    (EventType.TASK_OUTPUT, RUNNING),
    (CANCELLING, ExecutionStatus.CANCELLING),
    (EventType.TASK_COMPLETED, ExecutionStatus.CANCELLING),
    (EventType.EXECUTION_CANCELLED, ExecutionStatus.CANCELLED),
]
WORKER = "elsewhere:1:channels"


def life(execution_id: uuid.UUID, first_seq: int = 1) -> list[BusEvent]:
    return [
        BusEvent(WS, None, execution_id, seq, kind, status)
        for seq, (kind, status) in enumerate(LIFE, start=first_seq)
    ]


def test_runs_of_each_kind_go_to_their_channel_in_order() -> None:
    events = life(uuid.uuid4())
    sent = notices(events)
    assert [channel for channel, _ in sent] == [CHANNEL, CANCELS_CHANNEL, CHANNEL]
    assert [e.seq for _, payload in sent for e in decode(payload)] == [e.seq for e in events]
    for channel, payload in sent:
        assert all((e.type == CANCELLING) == (channel == CANCELS_CHANNEL) for e in decode(payload))


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
    worker = PostgresEventBus(settings.database_url, 256, hears_events=False)
    for bus in (replica, worker):
        await bus.start()
        assert bus.listening
    try:
        yield replica, worker
    finally:
        for bus in (replica, worker):
            await bus.stop()


async def test_a_replica_hears_every_event_in_order_a_worker_its_turns_and_cancellations(
    buses: tuple[PostgresEventBus, PostgresEventBus], settings: Settings
) -> None:
    replica, worker = buses
    turns: list[uuid.UUID] = []
    worker.on_turn(turns.append)
    await worker.announce(WORKER, True)
    for _ in range(500):  # the replica hears the worker's presence
        if WORKER in replica.peers():
            break
        await asyncio.sleep(0.02)
    assert WORKER in replica.peers()
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
            # Two transactions per execution, the two executions' commits interleaved.
            batches = [life(first)[:4], life(second)[:3], life(first)[4:], life(second)[3:]]
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

            for feed, kinds in ((replica_feed, STATUS_EVENTS), (worker_feed, {CANCELLING})):
                expected = [(e.execution_id, e.seq) for e in sent if e.type in kinds]
                fed: list[BusEvent] = []
                async with asyncio.timeout(10):
                    while len(fed) < len(expected):
                        fed.extend(await feed.next_batch())
                assert [(e.execution_id, e.seq) for e in fed] == expected

            # The worker heard the last cancellation request, so everything sent before it: of
            # `first`, only the request to cancel it; and each execution's turn, once (both were
            # heard taken, so the replica passed no turn on).
            async with asyncio.timeout(10):
                on_worker = await unwatched.next_batch()
            assert [e.type for e in on_worker] == [CANCELLING]
            await asyncio.sleep(STAGGER_SECONDS * 3)
            assert turns == [first, second]
            assert replica.turns.following == 0
    finally:
        await engine.dispose()
