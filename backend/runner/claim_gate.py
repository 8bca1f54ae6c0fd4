"""When a runner's claim loop runs a claim, so that one queued execution costs about one claim
however many workers there are.

A runner is told when it may claim: a turn (`bus.on_turn`) names a queued execution. In embedded
mode every queued execution is the one runner's turn; in scaled mode the process that queued it
wakes one available worker, then the next if it was not taken (events/turns.py). So:

- on a turn with a free slot, claim now; without one, remember that something waits, and claim
  when a slot frees;
- a claim that filled every free slot may have left more waiting: claim again when a slot frees;
- otherwise, when other runners share the bus, claim only when the safety claim is due: about
  one per POLLS_PER_SAFETY_CLAIM polls for the whole cluster, for work queued without a turn
  anybody heard (e.g. while the bus was reconnecting). Alone on its bus, a runner claims on every
  poll, as it always did.

It only ever delays or skips a claim that would have found nothing; claiming itself (SKIP LOCKED,
the lease) is what keeps an execution from running twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Even with no turn heard, the runners claim about this many polls apart between them. Each
# runner's own interval is this times the runners available, so it is one claim per interval for
# the cluster, however many workers there are (each such claim costs a small write's CPU).
POLLS_PER_SAFETY_CLAIM = 10


class ClaimGate:
    def __init__(
        self,
        poll_seconds: float,
        peers: Callable[[], dict[str, bool] | None],
        wake: Callable[[], None],
    ) -> None:
        self._peers = peers
        self._wake = wake
        self._poll_seconds = poll_seconds
        self._safety_seconds = poll_seconds * POLLS_PER_SAFETY_CLAIM
        self._backlog = True  # unknown at start: claim
        self._last_claim = time.monotonic()

    def turn(self, room: bool) -> None:
        """This runner's turn for a queued execution (`room`: it has a free slot)."""
        if room:
            self._wake()
        else:
            self._backlog = True  # a freed slot claims it (unless another worker took it)

    def claimed(self, count: int, free: int) -> None:
        # Every free slot taken: more may be waiting, so claim again when a slot frees.
        self._backlog = count == free
        self._last_claim = time.monotonic()

    def missed(self) -> None:
        """The bus may have lost turns: what is queued is unknown until the next claim."""
        self._backlog = True

    def worth_claiming(self) -> bool:
        """On a freed slot or a poll: only if something is (or may be) waiting."""
        return self.safety_claim_in() <= 0

    def safety_claim_in(self) -> float:
        """Seconds until a claim is worth making though no turn came (0 or less: now, as
        something is or may be waiting)."""
        if self._backlog:
            return 0.0
        peers = self._peers() or {}
        runners = max(1, sum(1 for available in peers.values() if available))
        return self._last_claim + self._safety_seconds * runners - time.monotonic()

    def idle_wait(self) -> float:
        """How long the claim loop sleeps when nothing wakes it: a poll interval while something
        may be waiting, else until the safety claim is due, but at most one safety interval
        (fewer runners may share it by then). A wake-up of a sleeping Python process costs CPU
        (about 0.3 ms measured on a loaded two-core machine), so an idle worker does not poll
        for nothing."""
        due = min(self.safety_claim_in(), self._safety_seconds)
        return max(self._poll_seconds, due)
