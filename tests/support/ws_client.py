"""A small async GraphQL-over-websocket client for tests, speaking both subscription protocols.

`graphql-transport-ws` (the graphql-ws library's protocol) and the legacy `graphql-ws`
(subscriptions-transport-ws) name the same things differently; this client maps both onto one
vocabulary so a test can run unchanged on either:

| here        | graphql-transport-ws | graphql-ws            |
| ----------- | -------------------- | --------------------- |
| subscribe   | `subscribe`          | `start`               |
| `next`      | `next`               | `data`                |
| `error`     | `error`              | `error`               |
| `complete`  | `complete`           | `complete`            |
| stop        | `complete` (client)  | `stop`                |

Every wait is bounded (`timeout`), so a server that never answers fails the test instead of
hanging it. Several operations can share one socket: messages for other operations are kept
until someone asks for them.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

Protocol = Literal["graphql-transport-ws", "graphql-ws"]
TRANSPORT_WS: Protocol = "graphql-transport-ws"
LEGACY_WS: Protocol = "graphql-ws"
PROTOCOLS: tuple[Protocol, ...] = (TRANSPORT_WS, LEGACY_WS)

DEFAULT_TIMEOUT = 10.0  # seconds; every wait takes `within` to change it

Kind = Literal["next", "error", "complete"]


class UnexpectedMessage(AssertionError):
    """The server sent something the protocol does not allow at this point."""


@dataclass(frozen=True)
class OperationMessage:
    """One server message about one operation, in protocol-neutral terms."""

    kind: Kind
    id: str
    payload: Any = None

    @property
    def data(self) -> dict[str, Any] | None:
        """`payload.data` of a `next` message."""
        if self.kind != "next" or not isinstance(self.payload, dict):
            return None
        data = self.payload.get("data")
        return data if isinstance(data, dict) else None

    @property
    def errors(self) -> list[dict[str, Any]]:
        """GraphQL errors: an `error` message's payload, or `payload.errors` of a `next`."""
        if self.kind == "error":
            payload = self.payload
            if isinstance(payload, dict):  # legacy servers may send a single error object
                return [payload]
            return list(payload or [])
        if self.kind == "next" and isinstance(self.payload, dict):
            return list(self.payload.get("errors") or [])
        return []


@dataclass
class OperationResult:
    """Everything one operation received until the server ended it."""

    results: list[dict[str, Any]] = field(default_factory=list)  # `data` of each `next`
    errors: list[dict[str, Any]] = field(default_factory=list)
    ended_by: Kind | None = None  # "complete" or "error"

    def field(self, name: str) -> list[dict[str, Any]]:
        """The values of one root field, e.g. `executionEvents`, in arrival order."""
        return [r[name] for r in self.results if r.get(name) is not None]


class GraphQLWebSocket:
    """One websocket to a GraphQL server, after `connection_init` was acknowledged."""

    def __init__(self, connection: ClientConnection, protocol: Protocol) -> None:
        self.connection = connection
        self.protocol = protocol
        self._pending: defaultdict[str, deque[OperationMessage]] = defaultdict(deque)
        self._next_id = 0

    # ------------------------------------------------------------------ connection

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        protocol: Protocol,
        *,
        init_payload: dict[str, Any] | None = None,
        within: float = DEFAULT_TIMEOUT,
    ) -> AsyncIterator[GraphQLWebSocket]:
        """Opens the socket, negotiates `protocol` and waits for `connection_ack`.

        On exit the socket is closed politely unless the test already closed or aborted it.
        """
        connection = await asyncio.wait_for(
            connect(
                url,
                subprotocols=[Subprotocol(protocol)],
                proxy=None,
                open_timeout=within,
                close_timeout=2,
                ping_interval=None,
                max_size=None,
            ),
            within,
        )
        try:
            if connection.subprotocol != protocol:
                raise UnexpectedMessage(f"server chose subprotocol {connection.subprotocol!r}")
            client = cls(connection, protocol)
            await client._init(init_payload, within)
            yield client
        finally:
            await connection.close()

    async def _init(self, payload: dict[str, Any] | None, within: float) -> None:
        await self.send({"type": "connection_init", "payload": payload or {}})
        message = await self.receive_raw(within)
        if message.get("type") != "connection_ack":
            raise UnexpectedMessage(f"expected connection_ack, got {message}")

    def abort(self) -> None:
        """Drops the TCP connection without a close handshake, as a crashed client would."""
        self.connection.transport.abort()

    async def close(self) -> None:
        await self.connection.close()

    # ------------------------------------------------------------------ raw frames

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive_raw(self, within: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next JSON message, answering pings and skipping keep-alives on the way."""
        while True:
            try:
                frame = await asyncio.wait_for(self.connection.recv(), within)
            except TimeoutError:
                raise TimeoutError(f"no message from the server within {within:g}s") from None
            message = json.loads(frame)
            if not isinstance(message, dict):
                raise UnexpectedMessage(f"not a JSON object: {frame!r}")
            kind = message.get("type")
            if kind == "ping" and self.protocol == TRANSPORT_WS:
                await self.send({"type": "pong"})
                continue
            if kind in ("ka", "pong"):
                continue
            return message

    # ------------------------------------------------------------------ operations

    def new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    async def subscribe(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        operation_id: str | None = None,
    ) -> str:
        """Starts an operation and returns its id (no answer is awaited)."""
        op_id = operation_id or self.new_id()
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.send({"type": kind, "id": op_id, "payload": payload})
        return op_id

    async def stop(self, operation_id: str) -> None:
        """Tells the server the client is no longer interested in an operation."""
        kind = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self.send({"type": kind, "id": operation_id})

    async def receive(self, operation_id: str, within: float = DEFAULT_TIMEOUT) -> OperationMessage:
        """The next message for one operation; messages for others are kept for later."""
        queue = self._pending[operation_id]
        deadline = asyncio.get_running_loop().time() + within
        while not queue:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                self._keep(await self.receive_raw(remaining))
            except TimeoutError:
                raise TimeoutError(
                    f"no message for operation {operation_id} within {within:g}s"
                ) from None
        return queue.popleft()

    def _keep(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "data":
            kind = "next"
        if kind not in ("next", "error", "complete") or "id" not in message:
            raise UnexpectedMessage(f"unexpected message {message}")
        op_id = str(message["id"])
        self._pending[op_id].append(OperationMessage(kind, op_id, message.get("payload")))

    async def collect(
        self,
        operation_id: str,
        *,
        limit: int | None = None,
        within: float = DEFAULT_TIMEOUT,
    ) -> OperationResult:
        """Receives until the server ends the operation (or after `limit` results).

        `timeout` bounds each wait, not the whole collection.
        """
        result = OperationResult()
        while limit is None or len(result.results) < limit:
            message = await self.receive(operation_id, within)
            result.errors.extend(message.errors)
            if message.kind == "next":
                if message.data is not None:
                    result.results.append(message.data)
                continue
            result.ended_by = message.kind
            break
        return result

    async def results(
        self, operation_id: str, *, within: float = DEFAULT_TIMEOUT
    ) -> AsyncIterator[OperationMessage]:
        """Every message of one operation, the last one being `complete` or `error`."""
        while True:
            message = await self.receive(operation_id, within)
            yield message
            if message.kind != "next":
                return

    async def expect_silence(self, seconds: float) -> None:
        """Asserts that nothing at all arrives for `seconds`."""
        try:
            message = await self.receive_raw(seconds)
        except TimeoutError:
            return
        raise UnexpectedMessage(f"expected no message, got {message}")
