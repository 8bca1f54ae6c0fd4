"""Operations over a streaming HTTP response: Apollo's multipart protocol and graphql-sse.

Strawberry implements both transports (`multipart/mixed;subscriptionSpec=1.0` and
`text/event-stream`, with heartbeats); what we add here is what the websocket handlers add to
theirs, so an HTTP stream is held to the same rules as a socket:
- the caller's key holds one slot of its open-subscription cap while its stream is open
  (TOO_MANY_SUBSCRIPTIONS, 429, when none is free);
- a revoked key's streams end within about a second, like its sockets (RevocationWatcher);
- a subscription sent without a streaming `Accept` is told which transports carry it, instead of
  being executed as a query (which can only fail).
Authentication, the rate limit, error masking and role checks already run for every HTTP request
(the view's `admit`, the schema's extensions), streamed or not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable

from strawberry.http.streaming import (
    HTTPStreamTransport,
    MultipartSubscriptionTransport,
    SSETransport,
)
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.types.graphql import OperationType

from backend.api.graphql.authentication import (
    TOO_MANY_SUBSCRIPTIONS,
    RevocationWatcher,
    limited,
)
from backend.core.identity import Principal
from backend.services.bundle import Services

# Websockets first: what Strawberry offers in the handshake keeps its order.
PROTOCOLS = (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
    GRAPHQL_SSE_PROTOCOL,
)

SUBSCRIPTION_NEEDS_STREAM = (
    "A subscription needs a streaming transport: POST it with "
    "`Accept: multipart/mixed;subscriptionSpec=1.0` (Apollo's multipart protocol) or "
    "`Accept: text/event-stream` (graphql-sse), or open a websocket on this path "
    "(graphql-transport-ws or graphql-ws)."
)


class MultipartTransport(MultipartSubscriptionTransport):
    """Apollo's multipart protocol for any operation: a query or mutation sent with the
    multipart `Accept` (gql and Apollo do that for every operation when told to) gets its one
    result as one part, then the closing boundary. Strawberry's own refuses all but
    subscriptions, which would make such a client fail on its first query."""

    def allowed_operation_types(
        self, allowed_operation_types: set[OperationType]
    ) -> Iterable[OperationType]:
        return allowed_operation_types


class EventStreamTransport(SSETransport):
    """graphql-sse with lines ended by LF alone. CRLF is valid SSE, but urql's parser splits
    events on a blank line written `\n\n` only, and so never saw an event from Strawberry's."""

    def encode_event(self, event: str, data: str | None = None) -> str:
        return super().encode_event(event, data).replace("\r\n", "\n")

    def encode_comment(self, comment: str) -> str:
        return super().encode_comment(comment).replace("\r\n", "\n")


STREAM_TRANSPORTS: dict[str, type[HTTPStreamTransport]] = {
    MULTIPART_SUBSCRIPTION_PROTOCOL: MultipartTransport,
    GRAPHQL_SSE_PROTOCOL: EventStreamTransport,
}


def too_many_streams_message(limit: int) -> str:
    return f"This API key has {limit} open subscriptions already (the limit); close one first."


class StreamSlots:
    """Holds a key's subscription slot for the life of one HTTP stream, and ends the stream
    when the key is revoked (the websocket side does the same in authentication.py)."""

    code = TOO_MANY_SUBSCRIPTIONS

    def __init__(self, services: Services, revocations: RevocationWatcher) -> None:
        self.services = services
        self.revocations = revocations

    def acquire(self, principal: Principal | None) -> bool:
        """False when the key has no free slot; the stream must not start then."""
        if principal is None or not limited(principal):
            return True
        return self.services.subscriptions.try_acquire(principal.limit_key)

    def hold(
        self, principal: Principal | None, stream: Callable[[], AsyncIterator[str]]
    ) -> Callable[[], AsyncGenerator[str, None]]:
        """`stream`, releasing the slot `acquire` took and unregistering when it ends, however
        it ends (completion, the client going away, revocation)."""

        async def held() -> AsyncGenerator[str, None]:
            revoked = asyncio.Event()
            owner = object()

            async def close() -> None:
                revoked.set()

            if principal is not None:
                self.revocations.register(principal, owner, close)
            source = stream()
            try:
                async for chunk in _until(source, revoked):
                    yield chunk
            finally:
                with contextlib.suppress(Exception):
                    await source.aclose()  # type: ignore[attr-defined]
                if principal is not None:
                    self.revocations.unregister(principal, owner)
                    if limited(principal):
                        self.services.subscriptions.release(principal.limit_key)

        return held


async def _until(source: AsyncIterator[str], stop: asyncio.Event) -> AsyncGenerator[str, None]:
    """The chunks of `source` until it ends or `stop` is set, whichever comes first."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while True:
            following = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if following not in done:
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await following
                return
            try:
                chunk = following.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        stopping.cancel()
