"""When a runner's claim loop runs a claim, so that one queued execution costs about one claim
however many workers there are.

Measured before this existed (4 workers, an execution every 0.5 s): every EXECUTION_QUEUED notice
woke every worker, each ran a claim transaction, and all but one found nothing; each worker also
claimed again whenever one of its executions ended. A claim that finds nothing costs as much CPU
as a small write (~2.6 ms in the worker, 0.25 ms in PostgreSQL, loaded machine), and those claims
made 4 workers cost 1.3x what 1 did per execution.

So, when other runners share the bus (the scaled mode), the gate keeps what the bus says:

- which executions are QUEUED and not since claimed (their notices), so a worker whose slot
  frees, or whose poll comes round, claims only when something is waiting;
- the runners alive and with free slots (presence, from the bus), so the notice of a queued
  execution is answered by one of them first: each orders the available runners by a hash of the
  execution id and its name, the first claims at once, the next after STAGGER_SECONDS if it is
  still queued, and so on. A runner that is full, gone, or slow only delays the next one.

It only ever delays or skips a claim that would have found nothing; claiming itself (SKIP LOCKED,
the lease) is what keeps an execution from running twice. Alone on its bus (embedded mode,
`peers()` None), a runner claims on every wake and poll, as it always did.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable

from backend.schemas import EventType

# Longer than a claim's transaction and its notice take to reach the others, so the next runner
# usually hears the execution is taken before its turn comes.
STAGGER_SECONDS = 0.05
# Even with nothing heard queued, the runners claim about this many polls apart between them: a
# safety net for work queued without a notice they heard (e.g. before they listened). Each runner's
# own interval is this times the runners available, so it is one claim per interval for the
# cluster, however many workers there are (each such claim costs a small write's CPU).
POLLS_PER_SAFETY_CLAIM = 10
MAX_TRACKED = 10_000


def turn(execution_id: uuid.UUID, name: str) -> bytes:
    """The same order in every process (str hashes are salted per process), a different one per
    execution. Not CRC32: it is linear, so one worker came first for about half the executions."""
    return hashlib.blake2b(execution_id.bytes + name.encode(), digest_size=8).digest()


class ClaimGate:
    def __init__(
        self,
        name: str,
        poll_seconds: float,
        peers: Callable[[], dict[str, bool] | None],
        wake: Callable[[], None],
    ) -> None:
        self.name = name
        self._peers = peers
        self._wake = wake
        self._poll_seconds = poll_seconds
        self._safety_seconds = poll_seconds * POLLS_PER_SAFETY_CLAIM
        # Heard QUEUED, not since heard taken or withdrawn; with the timer of this runner's turn
        # to claim it, cancelled when it goes (a cancelled timer never wakes the loop).
        self._queued: dict[uuid.UUID, asyncio.TimerHandle | None] = {}
        self._backlog = True  # unknown at start: claim
        self._last_claim = time.monotonic()

    def heard(self, execution_id: uuid.UUID, kind: EventType, room: bool) -> None:
        """A status notice of any execution; a queued one wakes the claim loop when this
        runner's turn comes (`room`: it has a free slot; if not, a freed slot claims it later)."""
        peers = self._peers()
        if peers is None:
            if kind == EventType.EXECUTION_QUEUED:
                self._wake()
            return
        if kind != EventType.EXECUTION_QUEUED:
            self._forget(execution_id)
            return
        self._forget(execution_id)  # queued again (resumed): one turn, the new one
        self._queued[execution_id] = None
        while len(self._queued) > MAX_TRACKED:
            self._forget(next(iter(self._queued)))
        if not room:
            return
        mine = turn(execution_id, self.name)
        others = [n for n, available in peers.items() if available and n != self.name]
        ahead = sum(1 for n in others if turn(execution_id, n) < mine)
        if ahead == 0:
            self._wake()
        else:
            loop = asyncio.get_running_loop()
            timer = loop.call_later(ahead * STAGGER_SECONDS, self._turn_came, execution_id)
            self._queued[execution_id] = timer

    def _turn_came(self, execution_id: uuid.UUID) -> None:
        if execution_id in self._queued:
            self._queued[execution_id] = None
            self._wake()

    def _forget(self, execution_id: uuid.UUID) -> None:
        timer = self._queued.pop(execution_id, None)
        if timer is not None:
            timer.cancel()

    def claimed(self, ids: list[uuid.UUID], free: int) -> None:
        for execution_id in ids:
            self._forget(execution_id)
        # Every free slot taken: more may be waiting, so claim again when a slot frees.
        self._backlog = len(ids) == free
        self._last_claim = time.monotonic()

    def missed(self) -> None:
        """The bus may have lost notices: what is queued is unknown until the next claim."""
        for execution_id in list(self._queued):
            self._forget(execution_id)
        self._backlog = True

    def worth_claiming(self) -> bool:
        """On a freed slot or a poll: only if something is (or may be) waiting."""
        return self.safety_claim_in() <= 0

    def safety_claim_in(self) -> float:
        """Seconds until a claim is worth making though nothing was heard queued (0 or less:
        now, as something is or may be waiting)."""
        if self._queued or self._backlog:
            return 0.0
        peers = self._peers() or {}
        runners = max(1, sum(1 for available in peers.values() if available))
        return self._last_claim + self._safety_seconds * runners - time.monotonic()

    def idle_wait(self) -> float:
        """How long the claim loop sleeps when nothing wakes it: a poll interval while something
        is or may be waiting (it retries then), else until the safety claim is due, but at most
        one safety interval (fewer runners may share it by then). Each wake-up of a Python
        process costs about 0.1 ms of CPU here, so an idle worker does not poll for nothing."""
        due = min(self.safety_claim_in(), self._safety_seconds)
        return max(self._poll_seconds, due)
