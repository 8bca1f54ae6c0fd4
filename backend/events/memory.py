"""The in-memory bus of the embedded mode: one process, so publishing is a function call
made right after the transaction commits."""

from __future__ import annotations

from backend.events.bus import BusEvent
from backend.events.fanout import LocalFanout
from backend.repositories.unit_of_work import UnitOfWork


class InMemoryEventBus(LocalFanout):
    async def stage(self, uow: UnitOfWork, events: list[BusEvent]) -> None:
        uow.after_commit(lambda: self.deliver(events))

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
