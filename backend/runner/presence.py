"""A runner's presence on a shared bus (scaled mode): telling the other runners it is alive and
whether it has a free slot, and deciding from what it hears who does the host's periodic reaping.

The claim gate (claim_gate.py) uses the same presence to order claims. Announcements go out every
PRESENCE_SECONDS and at once when the runner fills up or frees a slot; a runner that stops says so,
and the others forget it at once instead of after the bus's presence TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from loguru import logger

from backend.events.bus import EventBus
from backend.runner.resilience import level_of
from backend.runner.worker_ids import pid_space_of, stopped_local_worker

# How often a runner tells the others it is alive. Each announcement wakes every worker and its
# PostgreSQL backend; a runner that dies without a word is forgotten after the bus's TTL (25 s).
PRESENCE_SECONDS = 10.0


class Presence:
    def __init__(self, bus: EventBus, worker_id: str, available: Callable[[], bool]) -> None:
        self._bus = bus
        self._worker_id = worker_id
        self._available = available
        self._changed = asyncio.Event()
        self._stopped = stopped_local_worker(worker_id)

    def changed(self) -> None:
        """The runner filled up or freed a slot: tell the others now."""
        self._changed.set()

    async def announce(self) -> None:
        try:
            await self._bus.announce(self._worker_id, self._available())
        except Exception as exc:  # best effort: the others then wait a turn longer for it
            logger.log(level_of(exc), "announcing this runner failed: {}", exc)

    async def depart(self) -> None:
        try:
            await self._bus.depart(self._worker_id)
        except Exception as exc:  # best effort: the others forget it when its presence lapses
            logger.log(level_of(exc), "announcing this runner's departure failed: {}", exc)

    async def run(self) -> None:
        """Announces every PRESENCE_SECONDS, and at once on a change; until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=PRESENCE_SECONDS)
            self._changed.clear()
            await self.announce()

    def reaps_here(self) -> bool:
        """Whether this runner does the periodic reaping: alone on its bus, or the first (lowest
        id) of the live runners of its pid space. One per host is enough: a stopped process of
        this host is recognised by any runner of it, an expired lease by any runner at all; every
        further runner would repeat the same reads (a third of an idle worker's CPU, measured).
        A runner heard lately whose process is gone (killed: it could not say it was leaving)
        does not count, so the next one reaps its executions at once."""
        peers = self._bus.peers()
        if peers is None:
            return True
        me = self._worker_id
        space = pid_space_of(me)
        return not any(
            name < me and pid_space_of(name) == space and not self._stopped(name) for name in peers
        )
