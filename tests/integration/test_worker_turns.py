"""Workers take turns on PostgreSQL: a queued execution is claimed by one worker instead of being
raced for by all of them (runner/claim_gate.py), and still runs exactly once.

Three runners in this process, each with its own engine, services and PostgreSQL bus (as three
`crewql worker` processes have), on the session's migrated database. Their worker ids name other
hosts, so no reaper takes the others for dead processes of this one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.config.settings import Settings
from backend.container import build_runner, build_services
from backend.db.engine import create_engine
from backend.models import DEFAULT_WORKSPACE_ID as WS
from backend.models import ExecutionEvent
from backend.runner.agent.models import ModelFactory
from backend.runner.runner import Runner
from backend.schemas import EventType, ExecutionCreate, ExecutionStatus
from backend.services.bundle import Services
from backend.services.execution_lifecycle import RunHandle
from tests.integration.test_event_stream import CONFIG

WORKERS = 3
EXECUTIONS = 12


@dataclass
class Worker:
    runner: Runner
    services: Services
    models: ModelFactory
    engine: AsyncEngine
    claims: int = 0
    empty: int = 0


async def start_worker(settings: Settings, number: int, host: str | None = None) -> Worker:
    """A runner of its own pid space (`elsewhere-N`), or of `host`'s with pid 1 (alive)."""
    engine = create_engine(settings)
    services = build_services(engine, settings, serves_subscribers=False)
    models = ModelFactory(settings)
    worker_id = f"{host or f'elsewhere-{number}'}:1:test{number}"
    runner = build_runner(services, models, settings, worker_id=worker_id)
    worker = Worker(runner, services, models, engine)
    claim = services.lifecycle.claim

    async def counted(worker_id: str, limit: int) -> list[RunHandle]:
        claimed = await claim(worker_id, limit)
        worker.claims += 1
        worker.empty += not claimed
        return claimed

    services.lifecycle.claim = counted  # type: ignore[method-assign]
    await services.bus.start()
    await runner.start()
    return worker


@pytest.fixture
async def workers(backend: str, settings: Settings) -> AsyncIterator[list[Worker]]:
    if backend != "postgres":
        pytest.skip("taking turns needs other processes on the bus: PostgreSQL only")
    scaled = settings.model_copy(update={"mode": "scaled", "runner_poll_interval_seconds": 0.5})
    started = [await start_worker(scaled, n) for n in range(WORKERS)]
    try:
        yield started
    finally:
        for worker in started:
            await worker.runner.stop()
            await worker.models.aclose()
            await worker.services.bus.stop()
            await worker.engine.dispose()


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached: {what}")


async def test_each_queued_execution_is_claimed_by_one_worker_and_runs_once(
    workers: list[Worker],
) -> None:
    api = workers[0].services
    names = {w.runner.worker_id for w in workers}

    async def everyone_heard_everyone() -> bool:
        return all(set(w.services.bus.peers() or {}) == names for w in workers)

    await wait_for(everyone_heard_everyone, "every worker hears the others announce")
    before = [dataclasses.replace(w) for w in workers]
    for _ in range(EXECUTIONS):  # one at a time: every worker has a free slot for each
        created = await api.executions.create_execution(WS, ExecutionCreate(crew=CONFIG))

        async def finished(execution_id: uuid.UUID = created.id) -> bool:
            execution = await api.executions.get_execution(WS, execution_id)
            return execution.status == ExecutionStatus.COMPLETED

        await wait_for(finished, f"execution {created.id} completes")
    claims = sum(w.claims - b.claims for w, b in zip(workers, before, strict=True))
    empty = sum(w.empty - b.empty for w, b in zip(workers, before, strict=True))
    # Racing, every worker claimed for each launch and again when its slot freed: about
    # (WORKERS + 1) x EXECUTIONS claims. Taking turns, about one each (a turn that comes before
    # the first claim's notice arrives, on a slow machine, costs one more).
    assert claims - empty == EXECUTIONS
    assert empty < EXECUTIONS, (claims, empty)
    async with workers[0].engine.connect() as connection:
        started = await connection.scalar(
            select(func.count()).where(ExecutionEvent.type == EventType.EXECUTION_STARTED)
        )
    assert started == EXECUTIONS  # and no execution ran twice
    assert sum(1 for w, b in zip(workers, before, strict=True) if w.claims > b.claims) > 1
