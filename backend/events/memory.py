"""The in-memory bus of the embedded mode: one process, so publishing is a function call
made right after the transaction commits."""

from __future__ import annotations

from backend.events.bus import BusEvent
from backend.events.fanout import LocalFanout
from backend.repositories.unit_of_work import UnitOfWork
from backend.schemas import EventType


class InMemoryEventBus(LocalFanout):
    async def stage(self, uow: UnitOfWork, events: list[BusEvent]) -> None:
        uow.after_commit(lambda: self._committed(events))

    def _committed(self, events: list[BusEvent]) -> None:
        self.deliver(events)
        for event in events:
            if event.type == EventType.EXECUTION_QUEUED:
                self.take_turn(event.execution_id)  # the one runner's, always

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def announce(self, name: str, available: bool) -> None:
        return None  # one process, one runner: nobody to tell

    async def depart(self, name: str) -> None:
        return None

    def peers(self) -> dict[str, bool] | None:
        """None: no other process shares this bus, so the runner need not take turns."""
        return None
