"""ClaimGate: which runner claims a queued execution first, and when a runner need not claim.

The gates here are given the peers a PostgreSQL bus would report; the runners and the bus
themselves are exercised in tests/integration/test_worker_turns.py.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from backend.runner.claim_gate import STAGGER_SECONDS, ClaimGate, turn
from backend.schemas import EventType

NAMES = ["host-a:1:aaaaaa", "host-b:2:bbbbbb", "host-c:3:cccccc"]
QUEUED, STARTED = EventType.EXECUTION_QUEUED, EventType.EXECUTION_STARTED


class Gates:
    """One gate per runner, all hearing the same notices, each counting its wake-ups."""

    def __init__(self, peers: dict[str, bool] | None) -> None:
        self.woken = dict.fromkeys(NAMES, 0)
        self.gates = {name: self._gate(name, peers) for name in NAMES}

    def _gate(self, name: str, peers: dict[str, bool] | None) -> ClaimGate:
        def wake() -> None:
            self.woken[name] += 1

        return ClaimGate(name, 1.0, lambda: peers, wake)

    def hear(self, execution_id: uuid.UUID, kind: EventType, room: bool = True) -> None:
        for gate in self.gates.values():
            gate.heard(execution_id, kind, room)


async def test_a_queued_execution_wakes_one_runner_and_the_next_only_if_nobody_took_it() -> None:
    gates = Gates(dict.fromkeys(NAMES, True))
    taken, left = uuid.uuid4(), uuid.uuid4()
    gates.hear(taken, QUEUED)
    first = min(NAMES, key=lambda name: turn(taken, name))
    assert gates.woken == {name: int(name == first) for name in NAMES}
    gates.hear(taken, STARTED)  # the first runner claimed it before the others' turns
    await asyncio.sleep(STAGGER_SECONDS * len(NAMES) + 0.05)
    assert sum(gates.woken.values()) == 1

    gates.woken = dict.fromkeys(NAMES, 0)
    gates.hear(left, QUEUED)  # and nobody claims it: every runner's turn comes, in order
    await asyncio.sleep(STAGGER_SECONDS * len(NAMES) + 0.05)
    assert gates.woken == dict.fromkeys(NAMES, 1)


async def test_a_taken_execution_leaves_no_timer_to_wake_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The others' turns are cancelled when they hear it was taken: a cancelled timer never
    wakes the event loop, so an execution costs a runner that did not take it no wake-up
    beyond its two notices."""
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []
    schedule = loop.call_later

    def recorded(*args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        timers.append(schedule(*args, **kwargs))
        return timers[-1]

    monkeypatch.setattr(loop, "call_later", recorded)
    gates = Gates(dict.fromkeys(NAMES, True))
    taken, withdrawn = uuid.uuid4(), uuid.uuid4()
    gates.hear(taken, QUEUED)
    gates.hear(withdrawn, QUEUED)
    assert len(timers) == 2 * (len(NAMES) - 1)  # every runner but the first, for each
    gates.hear(taken, STARTED)
    gates.hear(withdrawn, EventType.EXECUTION_CANCELLED)
    assert all(timer.cancelled() for timer in timers)
    queued_again = uuid.uuid4()
    gates.hear(queued_again, QUEUED)
    gates.hear(queued_again, QUEUED)  # resumed: the earlier turn gives way to the new one
    assert sum(not timer.cancelled() for timer in timers) == len(NAMES) - 1


async def test_an_idle_runner_sleeps_until_its_safety_claim_not_a_poll() -> None:
    gate = ClaimGate(NAMES[0], 1.0, lambda: dict.fromkeys(NAMES, True), lambda: None)
    assert gate.idle_wait() == 1.0  # at start: what is queued is unknown, poll
    gate.claimed([], 2)
    assert 9.0 < gate.idle_wait() <= 10.0  # due in 30 s (three runners): one interval at most
    gate.heard(uuid.uuid4(), QUEUED, room=False)  # waiting, and no slot here: poll for it
    assert gate.idle_wait() == 1.0


async def test_the_order_is_the_same_in_every_process_and_spreads_the_work() -> None:
    firsts: dict[str, int] = dict.fromkeys(NAMES, 0)
    for _ in range(600):
        execution_id = uuid.uuid4()
        firsts[min(NAMES, key=lambda name: turn(execution_id, name))] += 1
    assert all(count > 120 for count in firsts.values()), firsts  # about 200 each
    execution_id = uuid.uuid4()
    assert turn(execution_id, NAMES[0]) == turn(uuid.UUID(str(execution_id)), NAMES[0])


async def test_full_or_unavailable_runners_do_not_hold_up_the_others() -> None:
    execution_id = uuid.uuid4()
    order = sorted(NAMES, key=lambda name: turn(execution_id, name))
    # The runner first in line announced it is full: the second one claims at once.
    gates = Gates({name: name != order[0] for name in NAMES})
    gates.gates[order[1]].heard(execution_id, QUEUED, room=True)
    assert gates.woken[order[1]] == 1
    # A runner without a free slot does not wake; a freed slot claims it while it is queued.
    gate = gates.gates[order[0]]
    gate.heard(execution_id, QUEUED, room=False)
    gate.claimed([], 3)
    assert gates.woken[order[0]] == 0
    assert gate.worth_claiming()
    gate.heard(execution_id, STARTED, room=True)
    assert not gate.worth_claiming()


async def test_nothing_heard_queued_means_no_claim_until_the_safety_poll() -> None:
    woken: list[int] = []
    gate = ClaimGate(NAMES[0], 0.01, lambda: {NAMES[0]: True}, lambda: woken.append(1))
    assert gate.worth_claiming()  # at start: what is queued is unknown
    gate.claimed([uuid.uuid4()], 2)
    assert not gate.worth_claiming()
    gate.claimed([uuid.uuid4(), uuid.uuid4()], 2)  # every free slot filled: maybe more waiting
    assert gate.worth_claiming()
    gate.claimed([], 2)
    gate.missed()  # the bus lost its connection: notices may be missing
    assert gate.worth_claiming()
    gate.claimed([], 2)
    await asyncio.sleep(0.15)  # ten polls without a claim
    assert gate.worth_claiming()


async def test_the_safety_claim_is_shared_between_the_available_runners() -> None:
    peers = dict.fromkeys(NAMES, True)  # every runner available: each claims that many times less
    gate = ClaimGate(NAMES[0], 0.03, lambda: peers, lambda: None)  # alone: every 0.3 s
    gate.claimed([], 2)
    await asyncio.sleep(0.35)  # one runner's interval; with three, 0.9 s
    assert not gate.worth_claiming()
    await asyncio.sleep(0.6)
    assert gate.worth_claiming()
    gate.claimed([], 2)
    peers.update(dict.fromkeys(NAMES[1:], False))  # the others are full: this one alone again
    await asyncio.sleep(0.35)
    assert gate.worth_claiming()


async def test_alone_on_the_bus_every_queued_notice_wakes_the_runner_as_before() -> None:
    gates = Gates(None)
    gates.hear(uuid.uuid4(), QUEUED)
    gates.hear(uuid.uuid4(), STARTED)
    assert gates.woken == dict.fromkeys(NAMES, 1)
