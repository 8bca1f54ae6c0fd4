"""Who is calling, on both transports, and the per-key limits that go with it.

HTTP: `Authorization: Bearer <key>` on every request (the view calls `authenticate_http`
before Strawberry runs; GraphiQL's page itself needs no key).

Websockets: the key in `connection_init`'s payload (`{"authorization": "Bearer <key>"}`),
checked before `connection_ack`; a missing or wrong key closes the socket with 4401 on
graphql-transport-ws, and answers `connection_error` then closes with 4401 on the legacy
graphql-ws. Each `subscribe`/`start` takes a token from the key's rate bucket and a slot of its
open-subscription cap (released when the operation ends); refusals are errors of that operation
and the socket stays open.

Revocation: `RevocationWatcher` knows the open sockets of every key and asks AuthService once
a second whether each key still holds; a revoked key's sockets are closed with 4401 (Strawberry's
shutdown then runs every operation's `finally`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from loguru import logger
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage as TransportInit,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyInit,
)
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage

from backend.api.graphql.context import Context
from backend.config.settings import Settings
from backend.core.audit import audit
from backend.core.auth import (
    LOCAL_PRINCIPAL,
    Principal,
    RateLimited,
    Unauthenticated,
    bearer_token,
)
from backend.services.auth_service import public_prefix
from backend.services.container import Services

if TYPE_CHECKING:
    from backend.api.graphql.view import GraphQLView

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


class _SocketAuth:
    """What both protocol handlers share: authenticate the init payload, hold the key's slots."""

    context: Context

    @property
    def _view(self) -> GraphQLView:
        view: GraphQLView = self.view  # type: ignore[attr-defined]
        return view

    def _setup(self) -> None:
        # operation id -> the slot it holds (an id may be reused after its operation ended)
        self._slots: dict[str, object] = {}
        self._registered: Principal | None = None

    async def _authenticate(self, payload: object) -> bool:
        params = payload if isinstance(payload, dict) else {}
        authorization = params.get("authorization", params.get("Authorization"))
        try:
            principal = await authenticate(
                self._view.services, self._view.settings, authorization, "connection_init"
            )
        except Unauthenticated:
            return False
        self.context.principal = principal
        self.context.renew_loaders()
        self._view.revocations.register(principal, self, self._close_unauthorized)
        self._registered = principal
        return True

    async def _close_unauthorized(self) -> None:
        raise NotImplementedError

    def _admit(self, operation_id: str) -> GraphQLError | None:
        """None when the operation may start (and then holds a subscription slot)."""
        principal = self.context.principal
        assert principal is not None  # operations start only after the ack
        services = self._view.services
        try:
            check_rate(services, principal)
        except RateLimited as error:
            return rate_limited_error(error)
        if not limited(principal):
            return None
        if not services.subscriptions.try_acquire(principal.limit_key):
            return too_many_subscriptions_error(services.subscriptions.limit)
        self._slots[operation_id] = object()
        return None

    def _holds(self, operation_id: str, task: asyncio.Task[Any] | None) -> None:
        """Releases the slot when the operation's task ends, however it ends (a done callback
        runs even for a task cancelled before it started)."""
        slot = self._slots.get(operation_id)
        if task is None:
            self._release(operation_id, slot)
            return
        task.add_done_callback(lambda _: self._release(operation_id, slot))

    def _release(self, operation_id: str, slot: object | None) -> None:
        principal = self.context.principal
        if slot is not None and self._slots.get(operation_id) is slot and principal is not None:
            del self._slots[operation_id]
            self._view.services.subscriptions.release(principal.limit_key)

    def _forget_socket(self) -> None:
        self._view.revocations.unregister(self._registered, self)
        self._registered = None


class TransportWSHandler(_SocketAuth, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws (the graphql-ws library's protocol)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup()

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            self._forget_socket()

    async def handle_connection_init(self, message: TransportInit) -> None:
        payload = message.get("payload", {})
        if (
            not self.connection_timed_out
            and not self.connection_init_received
            and isinstance(payload, dict)
            and not await self._authenticate(payload)
        ):
            if self.connection_init_timeout_task:
                self.connection_init_timeout_task.cancel()
            self.connection_init_received = True
            await self.websocket.close(code=UNAUTHORIZED_CLOSE, reason="Unauthorized")
            return
        await super().handle_connection_init(message)

    async def _close_unauthorized(self) -> None:
        await self.websocket.close(code=UNAUTHORIZED_CLOSE, reason="API key revoked")

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        operation_id = message["id"]
        if not self.connection_acknowledged or operation_id in self.operations:
            await super().handle_subscribe(message)  # closes the socket (4401 / 4409)
            return
        refusal = self._admit(operation_id)
        if refusal is not None:
            await self.send_message(
                {"id": operation_id, "type": "error", "payload": [refusal.formatted]}
            )
            return
        try:
            await super().handle_subscribe(message)
        finally:
            operation = self.operations.get(operation_id)
            self._holds(operation_id, operation.task if operation is not None else None)


class LegacyWSHandler(_SocketAuth, BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol (subscriptions-transport-ws)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup()

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            self._forget_socket()

    async def handle_connection_init(self, message: LegacyInit) -> None:
        payload = message.get("payload")
        if (payload is None or isinstance(payload, dict)) and not await self._authenticate(payload):
            await self.send_message(
                {
                    "type": "connection_error",
                    "payload": {
                        "message": Unauthenticated.MESSAGE,
                        "extensions": {"code": Unauthenticated.code},
                    },
                }
            )
            await self.websocket.close(code=UNAUTHORIZED_CLOSE, reason="Unauthorized")
            return
        await super().handle_connection_init(message)

    async def _close_unauthorized(self) -> None:
        await self.websocket.close(code=UNAUTHORIZED_CLOSE, reason="API key revoked")

    async def handle_start(self, message: StartMessage) -> None:
        operation_id = message["id"]
        if not self.connection_acknowledged:
            await super().handle_start(message)  # closes the socket with 4401
            return
        if operation_id in self.tasks:
            await self.cleanup_operation(operation_id)
            self._release(operation_id, self._slots.get(operation_id))
        refusal = self._admit(operation_id)
        if refusal is not None:
            await self.send_message(
                {"type": "error", "id": operation_id, "payload": refusal.formatted}
            )
            return
        try:
            await super().handle_start(message)
        finally:
            self._holds(operation_id, self.tasks.get(operation_id))
