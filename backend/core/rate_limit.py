"""Per-key limits kept in process memory: a request rate (token bucket) and a concurrency cap.

Both are per process. With N API replicas a key may use up to N times the rate and the open
subscriptions set here; that is the price of not asking the database (or another server) on
every request, and the limits exist to stop a runaway client, not to bill one. The per-key cap
on running executions is the exception: it must hold across workers, so it lives in the claim
query, not here.

Neither awaits anything, so under one event loop each call is atomic; neither is thread-safe.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

# Belt and braces: buckets are keyed by authenticated key, so there are as many as keys in use;
# if something ever keyed them by attacker-chosen strings, memory would still stay bounded.
MAX_BUCKETS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """`rate` tokens a second, up to `burst` saved up; a request takes one.

    A key may send `burst` requests at once after a quiet spell, then `rate` a second for as long
    as it likes. `acquire` answers how long to wait when the bucket is empty, which becomes the
    `Retry-After` hint: exact, because the refill is deterministic.

    Memory: a bucket untouched for `burst / rate` seconds has refilled completely and is the same
    as no bucket at all, so it is dropped. Buckets are kept in order of last use, so the sweep
    only looks at the oldest ones and costs O(1) amortised per call.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Clock = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 (0: no limit) and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._full_after = self.burst / rate if rate > 0 else 0.0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str, cost: float = 1.0) -> float:
        """Takes `cost` tokens from `key`'s bucket if it has them and answers 0.0; otherwise takes
        nothing and answers the seconds until it will have them."""
        if not self.enabled:
            return 0.0
        if cost > self.burst:
            raise ValueError(f"a cost of {cost} can never fit in a burst of {self.burst}")
        now = self._clock()
        self._evict(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate

    def wait(self, key: str, cost: float = 1.0) -> float:
        """The seconds until `key`'s bucket holds `cost` tokens (0.0: it does now); takes none."""
        if not self.enabled:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        elapsed = max(0.0, self._clock() - bucket.updated)
        tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        return max(0.0, (cost - tokens) / self.rate)

    def forget(self, key: str) -> None:
        """Drops a key's bucket (a revoked key needs none)."""
        self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if now - oldest.updated < self._full_after:
                break
            buckets.popitem(last=False)
        while len(buckets) >= self._max_buckets:
            buckets.popitem(last=False)


class ConcurrencyCap:
    """At most `limit` things at once per key (open subscriptions of one key, say).

    `try_acquire` and `release` pair up; keys whose count drops to zero are forgotten, so memory
    follows what is open now, not every key ever seen. `limit` 0 means no cap.
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0 (0: no cap)")
        self.limit = limit
        self._counts: dict[str, int] = {}

    def try_acquire(self, key: str) -> bool:
        count = self._counts.get(key, 0)
        if self.limit and count >= self.limit:
            return False
        self._counts[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)

    def __len__(self) -> int:
        return len(self._counts)
