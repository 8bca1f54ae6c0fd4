"""Group commit: writes made at the same moment by different callers share one transaction.

One writer task drains a queue: it takes what is queued (up to `max_batch`), writes it in one
unit of work, answers each caller once that unit of work committed, and goes on with what
arrived meanwhile; the busier it is, the more writes share a commit. `apply` writes a batch and
returns one outcome per item: a value, or an exception that item's caller alone receives (a
refused write). Items with the same `key` never share a batch, so they commit in the order they
were made. A batch that fails as a whole is written again one item at a time, so a write that
cannot be stored fails only its own caller; a lost connection fails every caller of the batch
(each retries as it would have alone). A caller cancelled before its batch starts writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from backend.repositories.connection_errors import is_connection_error
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")
R = TypeVar("R")
Apply = Callable[[UnitOfWork, list[T]], Awaitable[list[R | Exception]]]


@dataclass(frozen=True)
class _Queued(Generic[T, R]):
    item: T
    done: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        apply: Apply[T, R],
        key: Callable[[T], Hashable] | None = None,
        max_batch: int = 64,
    ) -> None:
        self._uow = uow
        self._apply = apply
        self._key = key
        self._max_batch = max_batch
        self._queue: list[_Queued[T, R]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Writes `item` with whatever else is ready; returns its outcome once committed."""
        loop = asyncio.get_running_loop()
        queued: _Queued[T, R] = _Queued(item, loop.create_future())
        self._queue.append(queued)
        if self._writer is None:
            self._writer = loop.create_task(self._drain())
        return await queued.done

    async def _drain(self) -> None:
        try:
            while self._queue:
                await asyncio.sleep(0)  # writes made at this same moment join the batch
                batch: list[_Queued[T, R]] = []
                later: list[_Queued[T, R]] = []
                keys: set[Hashable] = set()
                for queued in self._queue:
                    if queued.done.done():  # its caller was cancelled: it writes nothing
                        continue
                    key = self._key(queued.item) if self._key is not None else None
                    if len(batch) >= self._max_batch or (key is not None and key in keys):
                        later.append(queued)
                    else:
                        keys.add(key)
                        batch.append(queued)
                self._queue = later
                if not batch:
                    continue
                try:
                    await self._commit(batch)
                except Exception as exc:  # a bug of `apply`'s: its callers hear it, none hangs
                    for queued in batch:
                        if not queued.done.done():
                            queued.done.set_exception(exc)
        finally:
            self._writer = None

    async def _commit(self, batch: list[_Queued[T, R]]) -> None:
        outcomes: list[R | Exception]
        try:
            async with self._uow() as uow:
                outcomes = await self._apply(uow, [q.item for q in batch])
        except Exception as exc:
            if len(batch) > 1 and not is_connection_error(exc):
                for queued in batch:
                    await self._commit([queued])
                return
            outcomes = [exc] * len(batch)
        for queued, outcome in zip(batch, outcomes, strict=True):
            if queued.done.done():
                continue
            if isinstance(outcome, Exception):
                queued.done.set_exception(outcome)
            else:
                queued.done.set_result(outcome)
