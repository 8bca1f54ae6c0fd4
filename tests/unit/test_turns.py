"""TurnRouter: the process that queues an execution wakes one worker, then the next only if
nobody took it, then every worker; and the order is the same in every process and spreads
the work."""

from __future__ import annotations

import asyncio
import uuid

from backend.events.turns import STAGGER_SECONDS, TURNS_CHANNEL, TurnRouter, order, turn_channel

NAMES = ["host-a:1:aaaaaa", "host-b:2:bbbbbb", "host-c:3:cccccc"]


class Sent:
    def __init__(self) -> None:
        self.notices: list[tuple[str, str]] = []

    async def __call__(self, channel: str, payload: str) -> None:
        self.notices.append((channel, payload))


async def settle(turns: int) -> None:
    await asyncio.sleep(STAGGER_SECONDS * turns + 0.05)


async def test_the_first_turn_goes_to_one_worker_and_the_next_only_if_nobody_took_it() -> None:
    sent = Sent()
    router = TurnRouter(sent, follows=True)
    peers = dict.fromkeys(NAMES, True)
    taken, left = uuid.uuid4(), uuid.uuid4()

    channel, rest = router.first(taken, peers)
    turns = order(taken, peers)
    assert channel == turn_channel(turns[0])
    assert rest == turns[1:]
    router.follow(taken, rest)
    router.taken(taken)  # the first worker claimed it (its EXECUTION_STARTED heard)
    await settle(len(NAMES))
    assert sent.notices == []

    channel, rest = router.first(left, peers)
    router.follow(left, rest)  # and nobody claims it: each next worker in turn, then everyone
    await settle(len(NAMES) + 1)
    expected = [turn_channel(name) for name in order(left, peers)[1:]] + [TURNS_CHANNEL]
    assert sent.notices == [(c, str(left)) for c in expected]
    assert router.following == 0


async def test_full_runners_get_no_turn_and_with_none_known_every_worker_gets_it() -> None:
    execution_id = uuid.uuid4()
    turns = order(execution_id, dict.fromkeys(NAMES, True))
    router = TurnRouter(Sent(), follows=True)
    # The runner first in line announced it is full: the second one comes first.
    channel, rest = router.first(execution_id, {name: name != turns[0] for name in NAMES})
    assert (channel, rest) == (turn_channel(turns[1]), turns[2:])
    # Nobody heard yet (a process that just started): every worker, whoever has room.
    assert router.first(execution_id, {}) == (TURNS_CHANNEL, [])


async def test_a_closed_router_passes_no_turn_on() -> None:
    sent = Sent()
    router = TurnRouter(sent, follows=True)
    router.follow(uuid.uuid4(), NAMES[1:])
    router.close()  # the process stops
    await settle(len(NAMES) + 1)
    assert sent.notices == []


async def test_a_process_that_does_not_hear_executions_taken_does_not_follow_up() -> None:
    sent = Sent()
    router = TurnRouter(sent, follows=False)  # a worker: it hears no EXECUTION_STARTED
    router.follow(uuid.uuid4(), NAMES[1:])
    await settle(len(NAMES) + 1)
    assert sent.notices == []
    assert router.following == 0


async def test_the_order_is_the_same_in_every_process_and_spreads_the_work() -> None:
    peers = dict.fromkeys(NAMES, True)
    firsts: dict[str, int] = dict.fromkeys(NAMES, 0)
    for _ in range(600):
        firsts[order(uuid.uuid4(), peers)[0]] += 1
    assert all(count > 120 for count in firsts.values()), firsts  # about 200 each
    execution_id = uuid.uuid4()
    assert order(execution_id, peers) == order(uuid.UUID(str(execution_id)), dict(peers))
    assert len({turn_channel(name) for name in NAMES}) == len(NAMES)
    assert all(len(turn_channel(name * 20)) <= 63 for name in NAMES)  # a PostgreSQL identifier
