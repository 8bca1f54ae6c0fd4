"""One relay per sharing group (api/graphql/relay.py), driven as ExecutionWatch drives it: a
real schema, executor, SharedEvents and bus Subscription; the sockets record their frames (the
real websockets are in tests/e2e/test_websocket_direct.py).

A caught-up subscriber's live events are written by its group's relay without waking it; what
the relay refuses or gives up goes back to the subscriber's own path, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from backend.api.graphql.relay import Joined
from backend.api.graphql.shared_events import SharedEvents
from backend.core.identity import Role
from backend.events.bus import BusEvent, Subscription
from backend.schemas import ExecutionEventResponse
from tests.unit.test_direct_delivery import (
    EXECUTION,
    WORKSPACE_A,
    Ctx,
    Socket,
    principal,
    stored,
    subscriber,
)

__all__ = ["graphql_schema"]
from tests.unit.test_direct_delivery import graphql_schema


def item(seq: int, event: ExecutionEventResponse | None = None, **changes: Any) -> BusEvent:
    event = event or stored(seq)
    if changes:
        event = event.model_copy(update=changes)
    return BusEvent.of(WORKSPACE_A, None, event)


class Member:
    def __init__(self, schema: Any, shared: SharedEvents, name: str, socket: Any = None) -> None:
        self.socket = socket or Socket()
        self.ctx = Ctx(principal(WORKSPACE_A, Role.VIEWER), shared)
        self.executor, self.sink = subscriber(schema, self.ctx, self.socket, name)
        relay = self.sink.relay(EXECUTION, None)
        assert relay is not None
        self.relay: Joined = relay
        self.subscription = Subscription(EXECUTION, 8)

    def seqs(self) -> list[int]:
        return [frame["payload"]["data"]["executionEvents"]["seq"] for frame in self.socket.frames]


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def offer(members: list[Member], *items: BusEvent) -> None:
    """As the bus delivers one commit: each event to every subscriber, in order."""
    for one in items:
        for member in members:
            member.subscription.offer(one)


async def test_caught_up_members_get_frames_without_being_woken(graphql_schema: Any) -> None:
    shared = SharedEvents()
    members = [Member(graphql_schema, shared, name) for name in "abc"]
    for member in members:
        member.relay.idle(member.subscription, 2)
    offer(members, item(3), item(4), item(5))
    assert all(m.subscription.buffered == 0 for m in members)  # nobody woken
    await settle()
    for name, member in zip("abc", members, strict=True):
        assert member.seqs() == [3, 4, 5]
        assert {frame["id"] for frame in member.socket.frames} == {name}
        assert await member.relay.resume(member.subscription, 2) == (5, False)
        assert not member.subscription.lagged
    assert shared.misses == 3  # each event executed once for the group
    assert shared.relayed == 9
    for member in members:
        member.relay.leave(member.subscription)
    assert shared.relays == {}


@pytest.mark.parametrize(
    ("refused", "why"),
    [
        (item(4), "a gap"),
        (BusEvent(WORKSPACE_A, None, EXECUTION, 3, stored(3).type, stored(3).status), "a notice"),
    ],
)
async def test_what_the_relay_refuses_wakes_the_member(
    graphql_schema: Any, refused: BusEvent, why: str
) -> None:
    shared = SharedEvents()
    member = Member(graphql_schema, shared, "a")
    member.relay.idle(member.subscription, 2)
    offer([member], refused)
    assert member.subscription.buffered == 1, why
    assert member.subscription.relay is None  # detached: the next one is buffered too
    offer([member], item(5))
    assert member.subscription.buffered == 2
    await settle()
    assert member.socket.frames == []
    assert await member.relay.resume(member.subscription, 2) == (2, False)


async def test_frames_taken_before_a_refusal_are_written_before_resume_returns(
    graphql_schema: Any,
) -> None:
    shared = SharedEvents()
    member = Member(graphql_schema, shared, "a")
    member.relay.idle(member.subscription, 2)
    offer([member], item(3), item(5))  # 5 leaves a gap: refused
    assert member.subscription.buffered == 1
    assert await member.relay.resume(member.subscription, 2) == (3, False)  # waited for 3
    assert member.seqs() == [3]
    batch = await member.subscription.next_batch()
    assert [one.seq for one in batch] == [5]  # the subscriber's own path: 4, 5 after 3


async def test_the_terminal_event_wakes_the_member_to_end(graphql_schema: Any) -> None:
    shared = SharedEvents()
    member = Member(graphql_schema, shared, "a")
    member.relay.idle(member.subscription, 2)
    woken = asyncio.create_task(member.subscription.next_batch())  # it waits, as the watch does
    await settle()
    offer([member], item(3), item(4, type="EXECUTION_COMPLETED", status="COMPLETED"))
    assert member.subscription.buffered == 0
    await settle()
    assert woken.done()
    assert woken.result() == []
    assert member.seqs() == [3, 4]
    assert await member.relay.resume(member.subscription, 2) == (4, True)


async def test_an_error_result_goes_back_to_each_members_own_path(graphql_schema: Any) -> None:
    shared = SharedEvents()
    members = [Member(graphql_schema, shared, name) for name in "ab"]
    for member in members:
        member.relay.idle(member.subscription, 2)
    broken = item(3, message=None)  # a non-null field without a value: the execution errs
    offer(members, broken, item(4))
    await settle()
    for member in members:
        assert member.socket.frames == []
        assert member.subscription.lagged  # re-reads the table after 2: executes 3 itself
        assert await member.relay.resume(member.subscription, 2) == (2, False)
    # 3 (errors) is never shared; 4 is left to them too, after 3, on their own path
    assert len(shared) == 0


async def test_a_socket_that_waits_holds_up_only_itself(graphql_schema: Any) -> None:
    shared = SharedEvents()
    gate = asyncio.Event()

    class Slow(Socket):
        async def send_text(self, text: str) -> None:
            await gate.wait()
            await super().send_text(text)

    slow = Member(graphql_schema, shared, "slow", Slow())
    fast = Member(graphql_schema, shared, "fast")
    for member in (slow, fast):
        member.relay.idle(member.subscription, 2)
    offer([slow, fast], item(3))
    await settle()
    assert fast.seqs() == [3]
    assert slow.seqs() == []
    assert slow.subscription.lagged  # back to its own path
    offer([slow, fast], item(4))
    await settle()
    assert fast.seqs() == [3, 4]
    assert slow.subscription.buffered == 1
    resumed = asyncio.create_task(slow.relay.resume(slow.subscription, 2))
    await settle()
    assert not resumed.done()  # waits for its frame 3, as its own send would
    gate.set()
    assert await resumed == (3, False)
    assert slow.seqs() == [3]


async def test_a_member_that_leaves_gets_nothing_more(graphql_schema: Any) -> None:
    shared = SharedEvents()
    leaving, staying = (Member(graphql_schema, shared, name) for name in "ls")
    for member in (leaving, staying):
        member.relay.idle(member.subscription, 2)
    offer([leaving, staying], item(3))
    leaving.relay.leave(leaving.subscription)  # stopped before the relay ran
    await settle()
    assert leaving.socket.frames == []
    assert staying.seqs() == [3]


async def test_a_socket_gone_ends_the_operation_as_a_cancellation(graphql_schema: Any) -> None:
    shared = SharedEvents()

    class Gone(Socket):
        async def send_text(self, text: str) -> None:
            raise WebSocketDisconnect(1006)

    member = Member(graphql_schema, shared, "a", Gone())
    member.relay.idle(member.subscription, 2)
    offer([member], item(3))
    await settle()
    task = asyncio.create_task(member.relay.resume(member.subscription, 2))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
