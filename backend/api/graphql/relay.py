"""One sender per sharing group: the live events of caught-up websocket subscribers, written to
their sockets by one task instead of each subscriber's own.

With direct delivery (direct.py) every subscriber's task still woke for every event: the bus
buffer's wake-up, its resolver's and source stream's generators, and the Strawberry and
graphql-core layers above them, per subscriber per event (docs/performance.md, *One sender per
group*). A GroupRelay serves the websocket subscribers of one sharing group and one execution.
While a subscriber waits with nothing buffered (bus.Relay: `idle`), the bus offers its events to
the relay (`take`): the relay takes an event that follows the subscriber's last one, queues it
once for all the subscribers that took it, executes it once (the operation's own executor, as
graphql-core executes a subscription event; SharedEvents answers it when another subscriber of
the group already did) and writes the pre-encoded frame, with each operation's own id, to each
of their sockets. Their tasks are not woken.

What a subscriber gets does not change:
- Order: the relay takes only the event after the last one the subscriber has (its `after`,
  history and catch-up stay its own); the first event it refuses is buffered and wakes the
  subscriber, whose `resume` waits until every frame taken for it is written before it sends
  anything itself.
- The end: after the terminal event's frame the relay wakes the subscriber, whose stream then
  ends as before (`complete` follows).
- Refused, so the subscriber's own path handles them as before: a notice without its event, a
  gap, more pending than the buffer's bound.
- Given up (the subscriber is flagged as lagged and re-reads the table from its last frame):
  an event whose execution has errors (errors are never shared: each subscriber executes it on
  its own path), a socket whose send would wait for flow control (the relay never waits for one
  socket: that frame finishes in a task of its own, and the subscriber's `resume` waits for it,
  as its own send would have), a socket gone (the operation then ends as a cancellation, as
  DirectSink does).
- `complete`/`stop` or a closed socket cancel the subscriber's task wherever it waits; `leave`
  then drops what the relay had not written for it yet.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Hashable
from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult, Executor, execute_subscription_event
from loguru import logger
from starlette.websockets import WebSocketDisconnect

from backend.api.graphql.types.execution import event_type
from backend.services.execution_record import TERMINAL_EVENTS

if TYPE_CHECKING:
    from backend.api.graphql.shared_events import SharedEvents
    from backend.observability.metrics import DeliveryClock
    from backend.services.execution_watch import BusEvent, Subscription


class Member:
    """One subscriber's place in its group's relay."""

    __slots__ = (
        "blocked",
        "clock",
        "ended",
        "executor",
        "gone",
        "head",
        "last",
        "open",
        "pending",
        "send",
        "subscription",
        "waiter",
        "written",
    )

    def __init__(
        self,
        subscription: Subscription,
        send: Callable[[str], Coroutine[Any, Any, None]],
        head: str,
        executor: Executor[Any],
        clock: DeliveryClock | None,
    ) -> None:
        self.subscription = subscription
        self.send = send
        self.head = head
        self.executor = executor
        self.clock = clock
        self.last = 0  # the last event taken for it (or delivered before it went idle)
        self.written = 0  # the last event the relay wrote for it
        self.pending = 0  # taken, not yet written or given up
        self.open = True  # False once given up or gone: nothing more is written for it
        self.gone = False  # its socket is closed
        self.ended = False  # the terminal event was written: its stream ends
        self.blocked: asyncio.Task[None] | None = None  # a frame waiting for flow control
        self.waiter: asyncio.Future[None] | None = None  # its `resume`, until pending is 0


class GroupRelay:
    """The relay of one sharing group's subscribers of one execution (bus.Relay)."""

    def __init__(
        self,
        shared: SharedEvents,
        group: Hashable,
        encode: Callable[[object], str],
        forget: Callable[[GroupRelay], None],
    ) -> None:
        self._shared = shared
        self._group = group
        self._encode = encode
        self._forget = forget
        self._members: dict[Subscription, Member] = {}
        self._queue: deque[tuple[BusEvent, list[Member]]] = deque()
        self._task: asyncio.Task[None] | None = None

    def join(
        self,
        subscription: Subscription,
        send: Callable[[str], Coroutine[Any, Any, None]],
        head: str,
        executor: Executor[Any],
        clock: DeliveryClock | None,
    ) -> None:
        if subscription not in self._members:
            self._members[subscription] = Member(subscription, send, head, executor, clock)

    # bus.Relay ---------------------------------------------------------------------------

    def idle(self, subscription: Subscription, last: int) -> None:
        member = self._members.get(subscription)
        if member is None or member.gone or member.pending or member.blocked is not None:
            return
        member.open = True
        member.last = member.written = last
        subscription.relay = self

    def take(self, subscription: Subscription, item: BusEvent) -> bool:
        member = self._members.get(subscription)
        if (
            member is None
            or not member.open
            or item.event is None
            or item.seq != member.last + 1
            or member.pending >= subscription.capacity
        ):
            return False
        member.last = item.seq
        member.pending += 1
        queue = self._queue
        if queue and queue[-1][0] is item:
            queue[-1][1].append(member)
        else:
            queue.append((item, [member]))
        if self._task is None:
            # A context of its own: nothing of the subscriber that started it (its sink, its
            # request's log context) belongs to the others.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), context=contextvars.Context()
            )
        return True

    async def resume(self, subscription: Subscription, last: int) -> tuple[int, bool]:
        member = self._members.get(subscription)
        if member is None:
            return last, False
        if subscription.relay is self:
            subscription.relay = None
        while member.pending:
            member.waiter = asyncio.get_running_loop().create_future()
            await member.waiter
        if member.blocked is not None:
            # The frame that waited for flow control: this task waits for it, as its own send
            # would have (a cancellation of this task cancels it too).
            await member.blocked
            member.blocked = None
        if member.gone:
            # As DirectSink: the socket closed, so the operation ends as the handler ends every
            # operation of a closed socket, cancelled.
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)
        return max(last, member.written), member.ended

    def leave(self, subscription: Subscription) -> None:
        member = self._members.pop(subscription, None)
        if subscription.relay is self:
            subscription.relay = None
        if member is not None:
            member.open = False
            if member.blocked is not None:
                member.blocked.cancel()
        if not self._members:
            self._forget(self)

    @property
    def members(self) -> int:
        return len(self._members)

    # the sender ---------------------------------------------------------------------------

    async def _run(self) -> None:
        queue = self._queue
        try:
            while queue:
                item, members = queue[0]
                try:
                    payload = await self._payload(item, members)
                except Exception:
                    logger.exception("relay: executing event {} failed", item.seq)
                    payload = None
                queue.popleft()
                self._write(item, members, payload)
        except BaseException:
            # Not expected (a cancelled loop): everyone still waiting re-reads the table.
            for _, members in queue:
                for member in members:
                    self._give_up(member)
                    self._done(member)
            queue.clear()
            raise
        finally:
            self._task = None

    async def _payload(self, item: BusEvent, members: list[Member]) -> str | None:
        """The event's `{"data": ...}` payload for the group, encoded once; None when its
        execution has errors (or no member is left to execute it for)."""
        executor = next((m.executor for m in members if m.open), None)
        if executor is None or item.event is None:
            return None
        # As graphql-core executes a subscription event for the operation. The executor
        # (SharingExecutionContext) answers from SharedEvents when a subscriber of the group
        # already executed the event, and otherwise stores a result without errors there.
        result: Any = execute_subscription_event(
            executor.build_per_event_executor(event_type(item.event))
        )
        if isinstance(result, Awaitable):
            result = await result
        if not isinstance(result, ExecutionResult) or result.errors or result.data is None:
            return None
        encoded = self._shared.encoded_payload(result.data, self._encode)
        return encoded if encoded is not None else self._encode({"data": result.data})

    def _write(self, item: BusEvent, members: list[Member], payload: str | None) -> None:
        written = 0
        created = item.event.created_at if item.event is not None else None
        terminal = item.type in TERMINAL_EVENTS
        for member in members:
            if member.open and payload is None:
                self._give_up(member)
            elif member.open:
                coro = member.send(f"{member.head}{payload}}}")
                try:
                    waiting = coro.send(None)
                except StopIteration:
                    member.written = item.seq
                    written += 1
                    if member.clock is not None and created is not None:
                        member.clock.delivered(created)
                    if terminal:  # its stream ends: wake it to finish (`complete`)
                        member.ended = True
                        member.subscription.wake()
                except WebSocketDisconnect:
                    member.gone = True
                    self._give_up(member)
                except Exception:
                    logger.exception("relay: sending event {} failed", item.seq)
                    self._give_up(member)
                else:
                    # The socket's flow control holds this frame: it finishes in a task of its
                    # own, and this subscriber goes back to its own path.
                    member.blocked = asyncio.get_running_loop().create_task(
                        self._finish(member, item.seq, terminal, _Resumed(coro, waiting))
                    )
                    self._give_up(member)
            self._done(member)
        shared = self._shared
        shared.hits += written
        shared.direct += written
        shared.relayed += written

    async def _finish(self, member: Member, seq: int, terminal: bool, rest: _Resumed) -> None:
        try:
            await rest
        except WebSocketDisconnect:
            member.gone = True
        except Exception:
            logger.exception("relay: sending event {} failed", seq)
        else:
            member.written = seq
            member.ended = terminal

    def _give_up(self, member: Member) -> None:
        """Nothing more is written for this subscriber; it re-reads the table from its last
        frame (flagged as lagged, and woken)."""
        if member.open:
            member.open = False
            member.subscription.resync_needed()

    @staticmethod
    def _done(member: Member) -> None:
        member.pending -= 1
        if member.pending == 0 and member.waiter is not None:
            waiter, member.waiter = member.waiter, None
            if not waiter.done():
                waiter.set_result(None)


class _Resumed:
    """The rest of a coroutine that was stepped once and is waiting: awaiting this resumes it
    where it stopped (as `yield from` would), so a Task can finish it."""

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, None]:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration:
                    return


class Joined:
    """One operation's side of bus.Relay: it joins its group's relay for this execution (one
    per process, kept in SharedEvents.relays) the first time it goes idle, and stays in it
    until it leaves."""

    __slots__ = ("_clock", "_encode", "_executor", "_head", "_key", "_relay", "_send", "_shared")

    def __init__(
        self,
        shared: SharedEvents,
        key: tuple[Hashable, Any],
        send: Callable[[str], Coroutine[Any, Any, None]],
        head: str,
        executor: Executor[Any],
        clock: DeliveryClock | None,
        encode: Callable[[object], str],
    ) -> None:
        self._shared = shared
        self._key = key
        self._send = send
        self._head = head
        self._executor = executor
        self._clock = clock
        self._encode = encode
        self._relay: GroupRelay | None = None

    def idle(self, subscription: Subscription, last: int) -> None:
        relay = self._relay
        if relay is None:
            relays = self._shared.relays
            relay = relays.get(self._key)
            if relay is None:
                relay = relays[self._key] = GroupRelay(
                    self._shared, self._key[0], self._encode, self._forget
                )
            relay.join(subscription, self._send, self._head, self._executor, self._clock)
            self._relay = relay
        relay.idle(subscription, last)

    def take(self, subscription: Subscription, item: BusEvent) -> bool:
        return self._relay is not None and self._relay.take(subscription, item)

    async def resume(self, subscription: Subscription, last: int) -> tuple[int, bool]:
        if self._relay is None:
            return last, False
        return await self._relay.resume(subscription, last)

    def leave(self, subscription: Subscription) -> None:
        if self._relay is not None:
            self._relay.leave(subscription)

    def _forget(self, relay: GroupRelay) -> None:
        if self._shared.relays.get(self._key) is relay:
            del self._shared.relays[self._key]
