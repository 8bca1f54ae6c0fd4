"""Riding out a lost database connection without overwriting what others decided meanwhile.

A runner that cannot reach the database keeps its executions (their engines wait at their next
report) and retries with backoff, but only while its lease can still be valid: once more than a
lease has passed since its last successful heartbeat, another process may have marked the
execution CRASHED, so the runner stops it instead of writing over that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from loguru import logger

from backend.repositories.connection_errors import is_connection_error
from backend.services.execution_lifecycle import ExecutionGone

T = TypeVar("T")

__all__ = ["LeaseClock", "is_connection_error", "level_of", "persist"]


def level_of(exc: BaseException) -> str:
    """How loud a failed background step is: a lost connection, which the loop rides out, is a
    WARNING (an operator sees the blip); anything else is an ERROR (a bug, or a wrong setup)."""
    return "WARNING" if is_connection_error(exc) else "ERROR"


class LeaseClock:
    """When this runner last proved to the database that it is alive."""

    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self.last_renewed = time.monotonic()

    def renewed(self) -> None:
        self.last_renewed = time.monotonic()

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.last_renewed > self.lease_seconds


async def persist(
    write: Callable[[], Awaitable[T]], clock: LeaseClock, what: str, max_delay: float = 2.0
) -> T:
    """Runs `write`, retrying through connection failures while the lease may still hold."""
    delay = 0.1
    while True:
        try:
            result = await write()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            if clock.expired:
                raise ExecutionGone(
                    f"The database was unreachable for longer than the lease ({what}); "
                    "another worker may have taken over, so this one stops."
                ) from exc
            logger.warning(
                "database unreachable while {} ({}); retrying in {:.1f}s", what, exc, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        clock.renewed()
        return result
