"""Both websocket protocols: Strawberry's handlers, with keys, limits and every frame answered.

What we add to Strawberry's handlers, and why:
- Keys (authentication.py): checked on `connection_init` before the ack; a wrong key closes with
  4401 (legacy: `connection_error` first); per client address, failed checks are limited
  (guards.py): once spent, `connection_init` closes with 4429 before the key is looked at.
- Unauthenticated sockets are bounded: a cap per address and per process (over it: close 1013,
  "try again later"), and both protocols close a socket that has not been acknowledged within
  CREWQL_WS_INIT_TIMEOUT_SECONDS with 4408 (Strawberry does so on graphql-transport-ws only).
- Every frame is checked against its protocol (ws_frames.py) before a handler indexes into it,
  and at most CREWQL_WS_MESSAGES_PER_SECOND arrive per socket (over it: close 1008).
- The legacy protocol runs queries and mutations too (subscriptions-transport-ws lets `start`
  carry any operation); every refusal of an operation is an `error` carrying GraphQL errors.
- Each `subscribe`/`start` takes a token of the key's rate and a slot of its subscription cap.
- Each operation's task has a DirectSink (direct.py): events its sharing group already executed
  go to the socket as one pre-encoded frame, past Strawberry's per-result work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from graphql import GraphQLError
from loguru import logger
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage as TransportInit,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message as TransportMessage,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyInit,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    OperationMessage as LegacyMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from backend.api.graphql.authentication import (
    UNAUTHORIZED_CLOSE,
    authenticate,
    check_rate,
    limited,
    rate_limited_error,
    too_many_subscriptions_error,
)
from backend.api.graphql.context import Context
from backend.api.graphql.direct import DIRECT, DirectSink, frame_head
from backend.api.graphql.errors import INTERNAL, UNEXPECTED_ERROR
from backend.api.graphql.guards import UNKNOWN_ADDRESS
from backend.api.graphql.ws_frames import LEGACY_FRAMES, TRANSPORT_FRAMES, check_frame
from backend.core.auth import RateLimited, Unauthenticated
from backend.core.identity import Principal

if TYPE_CHECKING:
    from backend.api.graphql.view import GraphQLView

INIT_TIMEOUT_CLOSE = 4408  # graphql-transport-ws's code; the legacy protocol has none of its own
TOO_MANY_ATTEMPTS_CLOSE = 4429
TRY_AGAIN_LATER_CLOSE = 1013  # RFC 6455: the server is over a limit, the client may come back
BAD_REQUEST = "BAD_REQUEST"


@dataclass(frozen=True)
class Refusal:
    close_code: int
    reason: str
    message: str
    code: str


class _SocketGuard:
    """What both protocol handlers share: the socket's address and counts, the init payload's
    key, and the key's slots."""

    context: Context
    websocket: Any

    @property
    def _view(self) -> GraphQLView:
        view: GraphQLView = self.view  # type: ignore[attr-defined]
        return view

    def _setup(self) -> None:
        # operation id -> the slot it holds (an id may be reused after its operation ended)
        self._slots: dict[str, object] = {}
        self._registered: Principal | None = None
        client = self.context.request.client
        self._address = client.host if client is not None else UNKNOWN_ADDRESS
        self._counted = False

    async def _admit_socket(self) -> bool:
        """Counts the socket as unauthenticated, or closes it (1013) when over a cap."""
        if not self._view.guards.admit_socket(self._address):
            await self.websocket.close(
                TRY_AGAIN_LATER_CLOSE, "Too many unauthenticated connections; try again later"
            )
            return False
        self._counted = True
        return True

    def _settle(self) -> None:
        if self._counted:
            self._counted = False
            self._view.guards.socket_settled(self._address)

    async def _authenticate(self, payload: object) -> Refusal | None:
        guards = self._view.guards
        try:
            guards.check_address(self._address)
        except RateLimited as error:
            return Refusal(
                TOO_MANY_ATTEMPTS_CLOSE, "Too many failed attempts", error.message, error.code
            )
        params = payload if isinstance(payload, dict) else {}
        authorization = params.get("authorization", params.get("Authorization"))
        try:
            principal = await authenticate(
                self._view.services, self._view.settings, authorization, "connection_init"
            )
        except Unauthenticated:
            guards.auth_failed(self._address)
            return Refusal(
                UNAUTHORIZED_CLOSE, "Unauthorized", Unauthenticated.MESSAGE, Unauthenticated.code
            )
        self.context.principal = principal
        self.context.renew_loaders()
        self._view.revocations.register(principal, self, self._close_unauthorized)
        self._registered = principal
        return None

    async def _close_unauthorized(self) -> None:
        await self.websocket.close(code=UNAUTHORIZED_CLOSE, reason="API key revoked")

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

    def _direct(self, message: dict[str, object]) -> None:
        """Gives the running operation's task (and only it: a context variable) a DirectSink
        sending frames that start as `message` does."""
        view = self._view
        head = frame_head(view.encode_json, message)
        DIRECT.set(DirectSink(self.websocket.send_text, head, view.shared_events, view.encode_json))

    def _forget_socket(self) -> None:
        self._settle()
        self._view.revocations.unregister(self._registered, self)
        self._registered = None


def bad_request(message: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": BAD_REQUEST}}


class TransportWSHandler(_SocketGuard, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws (the graphql-ws library's protocol)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup()

    async def handle(self) -> None:
        try:
            if await self._admit_socket():
                await super().handle()
        finally:
            self._forget_socket()

    async def handle_message(self, message: TransportMessage) -> None:
        problem = check_frame(message, TRANSPORT_FRAMES)
        if problem is not None:
            # "Receiving a message of a type or format which is not specified in this document
            # will result in an immediate socket closure with the event 4400" (PROTOCOL.md).
            await self.handle_invalid_message(problem.close_reason)
            return
        await super().handle_message(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        self._direct({"id": operation.id, "type": "next"})
        await super().run_operation(operation)

    async def handle_connection_init(self, message: TransportInit) -> None:
        payload = message.get("payload", {})
        if (
            not self.connection_timed_out
            and not self.connection_init_received
            and isinstance(payload, dict)
        ):
            refusal = await self._authenticate(payload)
            if refusal is not None:
                if self.connection_init_timeout_task:
                    self.connection_init_timeout_task.cancel()
                self.connection_init_received = True
                await self.websocket.close(code=refusal.close_code, reason=refusal.reason)
                return
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self._settle()

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


class LegacyWSHandler(_SocketGuard, BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol (subscriptions-transport-ws)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup()

    async def handle(self) -> None:
        deadline = asyncio.get_running_loop().create_task(self._init_deadline())
        try:
            if await self._admit_socket():
                await super().handle()
        finally:
            deadline.cancel()
            self._forget_socket()

    async def _init_deadline(self) -> None:
        await asyncio.sleep(self._view.settings.ws_init_timeout_seconds)
        if not self.connection_acknowledged:
            with contextlib.suppress(Exception):  # the socket may be closing already
                await self.websocket.close(INIT_TIMEOUT_CLOSE, "Connection initialisation timeout")

    async def handle_message(self, message: LegacyMessage) -> None:
        problem = check_frame(message, LEGACY_FRAMES)
        if problem is None:
            await super().handle_message(message)
        elif problem.not_an_object:
            # What subscriptions-transport-ws servers answer to a frame they cannot parse.
            await self.send_message(
                {"type": "connection_error", "payload": bad_request(problem.reason)}
            )
        else:
            await self._send_error(problem.operation_id, [bad_request(problem.reason)])

    async def _send_error(
        self, operation_id: str | None, errors: Sequence[Mapping[str, object]]
    ) -> None:
        """An `error` message; its payload is the list of GraphQL errors (clients of this
        protocol accept a list or a single error)."""
        message: dict[str, Any] = {"type": "error", "payload": errors}
        if operation_id is not None:
            message["id"] = operation_id
        await self.send_message(cast(LegacyMessage, message))

    async def handle_connection_init(self, message: LegacyInit) -> None:
        payload = message.get("payload")
        if payload is None or isinstance(payload, dict):
            refusal = await self._authenticate(payload)
            if refusal is not None:
                error = {"message": refusal.message, "extensions": {"code": refusal.code}}
                await self.send_message(
                    cast(LegacyMessage, {"type": "connection_error", "payload": error})
                )
                await self.websocket.close(code=refusal.close_code, reason=refusal.reason)
                return
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self._settle()

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
            await self._send_error(operation_id, [refusal.formatted])
            return
        try:
            await super().handle_start(message)
        finally:
            self._holds(operation_id, self.tasks.get(operation_id))

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """Strawberry's, with any operation type (it subscribes only), every request error in
        the `error` message (it sent the first), and a closed socket ending the task quietly
        (it raised from the task: "Task exception was never retrieved")."""
        self._direct({"type": "data", "id": operation_id})
        try:
            source = await self.schema.stream(
                query=query,
                variable_values=variables,
                operation_name=operation_name,
                context_value=self.context,
                root_value=self.root_value,
            )
            self.subscriptions[operation_id] = source
            async with aclosing(source):
                async for result in source:
                    if isinstance(result, PreExecutionError):
                        errors = [error.formatted for error in result.errors or []]
                        await self._send_error(operation_id, errors)
                        return
                    if not isinstance(result, ExecutionResult):  # @defer / @stream patches
                        message = "Incremental delivery is not supported over graphql-ws."
                        await self._send_error(operation_id, [bad_request(message)])
                        return
                    await self.send_data_message(result, operation_id)
            await self._final({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            # A `stop`, or the socket closing: confirm with `complete` if anyone still listens.
            await self._final({"type": "complete", "id": operation_id})
        except Exception:  # a bug of ours: logged, and the operation ends with an error
            logger.exception("websocket operation {} failed", operation_id)
            await self._final(
                {
                    "type": "error",
                    "id": operation_id,
                    "payload": [{"message": UNEXPECTED_ERROR, "extensions": {"code": INTERNAL}}],
                }
            )
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)

    async def _final(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the socket may be gone; nobody to tell
            await self.send_message(cast(LegacyMessage, message))
