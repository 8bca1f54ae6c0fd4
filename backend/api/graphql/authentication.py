"""Who is calling, on both transports, and the per-key limits that go with it.

HTTP: `Authorization: Bearer <key>` on every request (the view calls `authenticate`
before Strawberry runs; GraphiQL's page itself needs no key).

Websockets (the handlers are in websocket.py): the key in `connection_init`'s payload
(`{"authorization": "Bearer <key>"}`), checked before `connection_ack`; a missing or wrong key
closes the socket with 4401 on graphql-transport-ws, and answers `connection_error` then closes
with 4401 on the legacy graphql-ws. Each `subscribe`/`start` takes a token from the key's rate
bucket and a slot of its open-subscription cap (released when the operation ends); refusals are
errors of that operation and the socket stays open.

Revocation: `RevocationWatcher` knows the open sockets of every key and asks AuthService once
a second whether each key still holds; a revoked key's sockets are closed with 4401 (Strawberry's
shutdown then runs every operation's `finally`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from graphql import GraphQLError
from loguru import logger

from backend.config.settings import Settings
from backend.core.audit import audit
from backend.core.auth import RateLimited, Unauthenticated, bearer_token
from backend.core.identity import LOCAL_PRINCIPAL, Principal
from backend.services.auth_service import public_prefix
from backend.services.bundle import Services

UNAUTHORIZED_CLOSE = 4401
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
WATCH_INTERVAL_SECONDS = 1.0

Closer = Callable[[], Awaitable[None]]


async def authenticate(
    services: Services, settings: Settings, authorization: object, operation: str
) -> Principal:
    """The caller for an `Authorization` value (a header or the websocket payload's field);
    Unauthenticated, audited with the key's public prefix only, when it does not hold."""
    if not settings.auth_enabled:
        return LOCAL_PRINCIPAL
    token = bearer_token(authorization)
    try:
        return await services.auth.authenticate(token)
    except Unauthenticated as error:
        audit(
            operation=operation,
            outcome="unauthenticated",
            key_prefix=error.key_prefix or public_prefix(token),
            detail=error.reason,
        )
        raise


def limited(principal: Principal) -> bool:
    """Per-key limits apply to keys. With authentication off (one local user on a loopback
    address, the quick start) there is no key to limit, and none applies."""
    return principal.key_id is not None


def check_rate(services: Services, principal: Principal) -> None:
    """Takes one token from the key's bucket, or raises RateLimited with the wait."""
    if not limited(principal):
        return
    wait = services.limiter.acquire(principal.limit_key)
    if wait > 0:
        raise RateLimited(wait)


def rate_limited_error(error: RateLimited) -> GraphQLError:
    return GraphQLError(
        error.message,
        extensions={"code": error.code, "retryAfter": error.retry_after_seconds},
    )


def too_many_subscriptions_error(limit: int) -> GraphQLError:
    return GraphQLError(
        f"This API key has {limit} open subscriptions already (the limit); close one first.",
        extensions={"code": TOO_MANY_SUBSCRIPTIONS},
    )


class RevocationWatcher:
    """Open websockets per key; every `interval` seconds, closes those of revoked keys.

    One task per process, started with the first registered socket; it asks AuthService once
    per distinct key (cached for `auth_cache_seconds`), not once per socket.
    """

    def __init__(self, services: Services, interval: float = WATCH_INTERVAL_SECONDS) -> None:
        self.services = services
        self.interval = interval
        self._sockets: dict[Principal, dict[object, Closer]] = {}
        self._task: asyncio.Task[None] | None = None

    def register(self, principal: Principal, owner: object, close: Closer) -> None:
        if principal.key_id is None:
            return  # authentication is off: nothing can be revoked
        self._sockets.setdefault(principal, {})[owner] = close
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unregister(self, principal: Principal | None, owner: object) -> None:
        if principal is None:
            return
        sockets = self._sockets.get(principal)
        if sockets is not None:
            sockets.pop(owner, None)
            if not sockets:
                del self._sockets[principal]

    def open_sockets(self, principal: Principal) -> int:
        return len(self._sockets.get(principal, {}))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while self._sockets:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception:  # a database hiccup must not end the watch
                logger.exception("checking open websockets for revoked keys failed")
        self._task = None

    async def sweep(self) -> None:
        for principal in list(self._sockets):
            if await self.services.auth.is_active(principal):
                continue
            closers = self._sockets.pop(principal, {})
            audit(
                operation="websocket",
                outcome="unauthenticated",
                principal=principal,
                detail=f"revoked:{len(closers)}:sockets",
            )
            self.services.limiter.forget(principal.limit_key)
            for close in closers.values():
                with contextlib.suppress(Exception):
                    await close()
