"""Whose turn it is to claim a queued execution, in scaled mode: the process that queues an
execution wakes one worker, not all of them.

Every process on the PostgreSQL bus hears the workers' presence (alive, and whether each has a
free slot). The process writing an EXECUTION_QUEUED event orders the available workers by a hash
of the execution id and each worker's name (a different order per execution, so the work
spreads) and sends the turn to the first one's own channel, in the writing transaction, so it
arrives when (and only if) the execution is committed. A process that hears executions taken
(an API replica hears every EXECUTION_STARTED and EXECUTION_CANCELLED) then follows up: if the
execution is still not taken STAGGER_SECONDS later, the next worker gets the turn, and so on;
after the last, every worker at once (TURNS_CHANNEL), whoever has a free slot claims.

Why: when every worker heard every queued execution and every claim, each notice woke each worker
process (about 0.3 ms of CPU per wake-up on a loaded two-core machine), so every further worker
added about 4 % to what an execution cost. Now a worker wakes for its own turns, cancellations
and presence. A worker that is full, has just died, or is slow costs the next one
STAGGER_SECONDS; claiming itself (SKIP LOCKED, the lease) is what keeps an execution from running
twice, whoever claims.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable

from loguru import logger

# Longer than a claim's transaction and its notice take to reach the process that follows up, so
# the next worker is woken only when the one before did not take the execution.
STAGGER_SECONDS = 0.05
TURNS_CHANNEL = "crewql_turns"  # every worker listens: a turn for whoever has a free slot
MAX_FOLLOWED = 10_000

Send = Callable[[str, str], Awaitable[None]]


def turn_channel(name: str) -> str:
    """The channel only worker `name` listens to for its turns (a hash: channel names are
    identifiers of at most 63 bytes, worker ids are not)."""
    return "crewql_turn_" + hashlib.blake2b(name.encode(), digest_size=8).hexdigest()


def rank(execution_id: uuid.UUID, name: str) -> bytes:
    """The same order in every process (str hashes are salted per process), a different one per
    execution. Not CRC32: it is linear, so one worker came first for about half the executions."""
    return hashlib.blake2b(execution_id.bytes + name.encode(), digest_size=8).digest()


def order(execution_id: uuid.UUID, peers: dict[str, bool]) -> list[str]:
    """The available workers, in their turns for this execution."""
    available = [name for name, free in peers.items() if free]
    return sorted(available, key=lambda name: rank(execution_id, name))


class TurnRouter:
    def __init__(self, send: Send, follows: bool) -> None:
        """`send(channel, payload)`: a notification outside any transaction. `follows`: this
        process hears executions taken, so it can pass a turn on that was not taken."""
        self._send = send
        self._follows = follows
        self._pending: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def first(self, execution_id: uuid.UUID, peers: dict[str, bool]) -> tuple[str, list[str]]:
        """The channel for the first turn (TURNS_CHANNEL when no worker is known available,
        e.g. just after this process started), and the workers after it, in order."""
        turns = order(execution_id, peers)
        if not turns:
            return TURNS_CHANNEL, []
        return turn_channel(turns[0]), turns[1:]

    def follow(self, execution_id: uuid.UUID, rest: list[str]) -> None:
        """Called once the execution is committed: the next turn in STAGGER_SECONDS unless it is
        heard taken meanwhile."""
        if not self._follows:
            return
        while len(self._pending) >= MAX_FOLLOWED:
            self.taken(next(iter(self._pending)))
        loop = asyncio.get_running_loop()
        self._pending[execution_id] = loop.call_later(
            STAGGER_SECONDS, self._pass_on, execution_id, rest
        )

    def taken(self, execution_id: uuid.UUID) -> None:
        """It was claimed or withdrawn: no further turn (a cancelled timer never wakes anyone)."""
        timer = self._pending.pop(execution_id, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        for execution_id in list(self._pending):
            self.taken(execution_id)

    @property
    def following(self) -> int:
        return len(self._pending)

    def _pass_on(self, execution_id: uuid.UUID, rest: list[str]) -> None:
        if self._pending.pop(execution_id, None) is None:
            return
        channel = turn_channel(rest[0]) if rest else TURNS_CHANNEL
        task = asyncio.create_task(self._notify(channel, execution_id))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        if rest:
            self.follow(execution_id, rest[1:])

    async def _notify(self, channel: str, execution_id: uuid.UUID) -> None:
        try:
            await self._send(channel, str(execution_id))
        except Exception as exc:  # best effort: the workers' safety claim still finds it
            logger.warning("passing the turn for execution {} on failed: {}", execution_id, exc)
