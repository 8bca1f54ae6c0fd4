"""Identical reads asked for at the same time share one round trip, and none gets an answer
older than its own question.

Why: a burst of subscribers to one execution (thousands of dashboards opening, or reconnecting
after a deploy) asked the database the same three questions each: every subscribe checked out a
pooled connection per read, the pool's queue grew past its checkout timeout, and subscribes
failed with INTERNAL (docs/performance.md, *Fan-out*, 5,000 subscribers).

How: per key, one read runs at a time. A caller joins the round that has not started yet, or
opens one; a round starts when the previous one of its key has finished, and answers everyone
who joined it. So each caller's answer comes from a read that started after it asked (what a
subscriber needs: it subscribes to the bus and then reads, and may not be served a read from
before its subscription), and a burst of N identical reads costs about two reads, not N.

A round runs in its own task: a caller that goes away (cancelled) neither cancels the read the
others wait for nor leaves them waiting. Its outcome, error included, goes to everyone in it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class _Key:
    """What one key has going: the round not yet started, and the turn of its reads."""

    __slots__ = ("pending", "turn", "users")

    def __init__(self) -> None:
        self.pending: asyncio.Task[Any] | None = None
        self.turn = asyncio.Lock()
        self.users = 0  # rounds of this key not finished yet (the entry goes with the last)


class Coalescer:
    def __init__(self) -> None:
        self._keys: dict[Hashable, _Key] = {}

    async def read(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """`read()`'s answer, from a read of `key` that started after this call; callers with
        the same key at the same time share it."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key()
        if state.pending is None:
            state.users += 1
            state.pending = asyncio.ensure_future(self._round(key, state, read))
            state.pending.add_done_callback(_retrieve)
        result: T = await asyncio.shield(state.pending)
        return result

    async def _round(self, key: Hashable, state: _Key, read: Callable[[], Awaitable[T]]) -> T:
        try:
            async with state.turn:
                # Started: whoever asks from now on may have asked after this read began, so
                # joins the next round.
                state.pending = None
                return await read()
        finally:
            state.users -= 1
            if state.users == 0 and self._keys.get(key) is state:
                del self._keys[key]

    @property
    def keys(self) -> int:
        """Keys with a round pending or running (0 when idle: nothing is kept)."""
        return len(self._keys)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """The callers get a round's error; when all of them went away, nobody does, and that
    must not be logged as an exception never retrieved."""
    if not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()
