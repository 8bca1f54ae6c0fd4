"""Limits on callers who have not proven who they are, keyed by client address, per process.

Per-key limits (rate, subscriptions) start once a key is known; before that, a client can only be
told apart by its address. Two things are bounded here:
- failed key checks: a burst, then a steady rate; once spent, every further attempt from that
  address is refused (HTTP 429, websocket close 4429) without the key being looked at, so
  guessing keys, or flooding the audit log with failures, costs the guesser time;
- websockets that have not (yet) been acknowledged: a cap per address and one for the process,
  so sockets opened and left silent cannot pile up (each also ends at the init timeout).
The address is the one uvicorn reports (X-Forwarded-For only from trusted proxies).
"""

from __future__ import annotations

from backend.config.settings import Settings
from backend.core.auth import RateLimited
from backend.core.rate_limit import ConcurrencyCap, TokenBucketLimiter

UNKNOWN_ADDRESS = "unknown"


class TooManyFailures(RateLimited):
    """RateLimited (code RATE_LIMITED, Retry-After) for an address, not for a key."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.message = (
            "Too many failed authentication attempts from this address; "
            f"retry after {self.retry_after_seconds} s."
        )
        self.args = (self.message,)


class ClientGuards:
    def __init__(self, settings: Settings) -> None:
        self.failures = TokenBucketLimiter(
            settings.auth_failure_rate_per_second, settings.auth_failure_burst
        )
        self.unauthenticated = ConcurrencyCap(settings.ws_max_unauthenticated_per_address)
        self.max_unauthenticated = settings.ws_max_unauthenticated
        self._unauthenticated_total = 0

    def check_address(self, address: str) -> None:
        """Raises TooManyFailures while `address` may not have a key checked."""
        wait = self.failures.wait(address)
        if wait > 0:
            raise TooManyFailures(wait)

    def auth_failed(self, address: str) -> None:
        self.failures.acquire(address)

    def admit_socket(self, address: str) -> bool:
        """Counts a new unauthenticated socket; False (nothing counted) when over a cap."""
        if self._unauthenticated_total >= self.max_unauthenticated:
            return False
        if not self.unauthenticated.try_acquire(address):
            return False
        self._unauthenticated_total += 1
        return True

    def socket_settled(self, address: str) -> None:
        """The socket was acknowledged, or closed: it no longer counts as unauthenticated."""
        self.unauthenticated.release(address)
        self._unauthenticated_total -= 1

    @property
    def unauthenticated_sockets(self) -> int:
        return self._unauthenticated_total
