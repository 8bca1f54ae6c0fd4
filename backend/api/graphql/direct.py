"""Direct delivery: a websocket subscriber of a sharing group gets an event's `next` frame
straight from its own source stream, past Strawberry's and graphql-core's per-result work.

With one execution and one encoded payload per event for the group (shared_events.py), what was
left per subscriber and event was mostly machinery around an answer already known: graphql-core
mapping the event to a per-event executor, Strawberry's result handling and the extension hooks
it runs on every streamed result, the transport handler building the message, the resolver
converting the event to its GraphQL type (docs/performance.md, section *Direct delivery*).

How: the websocket handler puts a DirectSink in a context variable of the operation's task; the
executor (SharingExecutionContext) tells it the operation's sharing group once, when it is
built; the subscription resolver, in the same task, offers each event to the sink before
yielding it. The sink sends the event's frame when a subscriber of the same group already
executed that event without errors (SharedEvents holds the result), and declines otherwise: the
event then takes the ordinary path (executed, handled and sent by Strawberry; its result stored
for the others when it has no errors). One task sends both kinds, one event after the other, so
the subscriber's order is its source stream's order. Everything that decides what a subscriber
gets is unchanged: its own source stream (ExecutionWatch: its `after`, catch-up, bounded bus
buffer and lag handling), its operation id, errors, `complete`; a slow socket holds up only its
own task, which awaits the socket's flow control as before.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Hashable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocketDisconnect

if TYPE_CHECKING:
    from graphql import Executor

    from backend.api.graphql.relay import Joined
    from backend.api.graphql.shared_events import SharedEvents
    from backend.observability.metrics import DeliveryClock


class DirectSink:
    """One websocket operation's way to the socket for the frames its group shares."""

    __slots__ = ("_encode", "_head", "_send", "_shared", "executor", "group")

    def __init__(
        self,
        send_text: Callable[[str], Coroutine[Any, Any, None]],
        head: str,
        shared: SharedEvents,
        encode: Callable[[object], str],
    ) -> None:
        self._send = send_text
        self._head = head
        self._shared = shared
        self._encode = encode
        # The operation's sharing group; set by the executor when it is built (None: the
        # operation does not share, and every event takes the ordinary path).
        self.group: Hashable | None = None
        self.executor: Executor[Any] | None = None  # the operation's executor (set with `group`)

    def relay(self, execution_id: uuid.UUID, clock: DeliveryClock | None) -> Joined | None:
        """This operation's way into its group's relay for `execution_id` (relay.py): None when
        it does not share."""
        if self.group is None or self.executor is None:
            return None
        from backend.api.graphql.relay import Joined  # relay.py imports this module

        key = (self.group, execution_id.int)
        return Joined(self._shared, key, self._send, self._head, self.executor, clock, self._encode)

    async def offer(self, execution_id: uuid.UUID, seq: int) -> bool:
        """Sends the event's shared frame; False (nothing sent) when there is none."""
        if self.group is None:
            return False
        payload = self._shared.encoded(event_key(self.group, execution_id, seq), self._encode)
        if payload is None:
            return False
        try:
            await self._send(f"{self._head}{payload}}}")
        except WebSocketDisconnect:
            # The client went away. The handler ends every operation of a closed socket by
            # cancelling its task; end this one the same way now, rather than as a failure of
            # the subscription (an error result, logged as unexpected, sent to nobody).
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)
            raise  # not reached: the cancellation is raised at the sleep
        return True


def event_key(group: Hashable, execution_id: object, seq: int) -> Hashable:
    """SharedEvents' key of one event for one group (its interned number). The executor sees the
    GraphQL type's id (a string), the direct path the stored event's UUID: both are keyed by
    the UUID's integer (hashed in C; a UUID's own hash and equality are Python code)."""
    if not isinstance(execution_id, uuid.UUID):
        execution_id = uuid.UUID(str(execution_id))
    return (group, execution_id.int, seq)


def frame_head(encode: Callable[[object], str], message: dict[str, object]) -> str:
    """`message` (a `next`/`data` message without its payload) encoded up to where the payload
    goes: the frame is this, the payload, and `}`."""
    return f'{encode(message)[:-1]},"payload":'


# The sink of the websocket operation running in this task, if any (set by the handlers in
# websocket.py for the operation's task only; HTTP streams have none).
DIRECT: ContextVar[DirectSink | None] = ContextVar("crewql_direct_sink", default=None)
