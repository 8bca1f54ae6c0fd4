"""Runners' presence on the PostgreSQL bus: one runner per host does the periodic reaping, and a
runner that stops says so, so that the others forget it at once (not after the presence TTL) and
the reaping passes to the next one.

Three runners of this host's pid space in this process (pid 1 in their ids: a process that is
alive, so none takes another for a stopped one), each with its own engine, services and bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from backend.config.settings import Settings
from backend.events.postgres import PRESENCE_TTL_SECONDS
from backend.runner.worker_ids import pid_space
from tests.integration.test_worker_turns import Worker, start_worker, wait_for


@pytest.fixture
async def neighbours(backend: str, settings: Settings) -> AsyncIterator[list[Worker]]:
    if backend != "postgres":
        pytest.skip("presence needs other processes on the bus: PostgreSQL only")
    scaled = settings.model_copy(update={"mode": "scaled"})
    started = [await start_worker(scaled, n, host=pid_space()) for n in range(3)]
    try:
        yield started
    finally:
        for worker in started:
            await worker.runner.stop()
            await worker.models.aclose()
            await worker.services.bus.stop()
            await worker.engine.dispose()


async def test_one_runner_per_host_reaps_and_hands_it_on_when_it_stops(
    neighbours: list[Worker],
) -> None:
    names = {w.runner.worker_id for w in neighbours}

    async def everyone_heard_everyone() -> bool:
        return all(set(w.services.bus.peers() or {}) == names for w in neighbours)

    await wait_for(everyone_heard_everyone, "every runner hears the others announce")
    first, second, third = sorted(neighbours, key=lambda w: w.runner.worker_id)
    assert [w.runner.presence.reaps_here() for w in (first, second, third)] == [True, False, False]

    neighbours.remove(first)  # stopped here, not again by the fixture
    try:
        await first.runner.stop()
    finally:
        await first.models.aclose()
        await first.services.bus.stop()
        await first.engine.dispose()
    gone = first.runner.worker_id
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PRESENCE_TTL_SECONDS / 2  # well before its presence would lapse
    while any(gone in (w.services.bus.peers() or {}) for w in (second, third)):
        assert loop.time() < deadline, "the others still count the runner that said it left"
        await asyncio.sleep(0.02)
    assert [w.runner.presence.reaps_here() for w in (second, third)] == [True, False]
