"""ClaimGate: when a runner need not claim. A turn with a free slot claims at once; otherwise a
runner claims only when something may be waiting, or when the shared safety claim is due.

Which worker gets a turn is decided by the process that queues the execution
(tests/unit/test_turns.py); the runners and the bus together are exercised in
tests/integration/test_worker_turns.py.
"""

from __future__ import annotations

import asyncio

from backend.runner.claim_gate import ClaimGate

NAMES = ["host-a:1:aaaaaa", "host-b:2:bbbbbb", "host-c:3:cccccc"]


def gate_of(poll: float, peers: dict[str, bool] | None, woken: list[int]) -> ClaimGate:
    return ClaimGate(poll, lambda: peers, lambda: woken.append(1))


async def test_a_turn_claims_now_and_a_full_runner_claims_when_a_slot_frees() -> None:
    woken: list[int] = []
    gate = gate_of(1.0, dict.fromkeys(NAMES, True), woken)
    gate.claimed(0, 2)  # the start-up claim found nothing
    assert not gate.worth_claiming()
    gate.turn(room=True)
    assert woken == [1]
    gate.claimed(1, 2)
    gate.turn(room=False)  # full: no wake-up now...
    assert woken == [1]
    assert gate.worth_claiming()  # ...but the next freed slot claims
    gate.claimed(0, 1)  # somebody else took it meanwhile
    assert not gate.worth_claiming()


async def test_nothing_waiting_means_no_claim_until_the_safety_poll() -> None:
    gate = gate_of(0.01, {NAMES[0]: True}, [])
    assert gate.worth_claiming()  # at start: what is queued is unknown
    gate.claimed(1, 2)
    assert not gate.worth_claiming()
    gate.claimed(2, 2)  # every free slot filled: maybe more waiting
    assert gate.worth_claiming()
    gate.claimed(0, 2)
    gate.missed()  # the bus lost its connection: turns may be missing
    assert gate.worth_claiming()
    gate.claimed(0, 2)
    await asyncio.sleep(0.15)  # ten polls without a claim
    assert gate.worth_claiming()


async def test_the_safety_claim_is_shared_between_the_available_runners() -> None:
    peers = dict.fromkeys(NAMES, True)  # every runner available: each claims that many times less
    gate = gate_of(0.03, peers, [])  # alone: every 0.3 s
    gate.claimed(0, 2)
    await asyncio.sleep(0.35)  # one runner's interval; with three, 0.9 s
    assert not gate.worth_claiming()
    await asyncio.sleep(0.6)
    assert gate.worth_claiming()
    gate.claimed(0, 2)
    peers.update(dict.fromkeys(NAMES[1:], False))  # the others are full: this one alone again
    await asyncio.sleep(0.35)
    assert gate.worth_claiming()


async def test_an_idle_runner_sleeps_until_its_safety_claim_not_a_poll() -> None:
    gate = gate_of(1.0, dict.fromkeys(NAMES, True), [])
    assert gate.idle_wait() == 1.0  # at start: what is queued is unknown, poll
    gate.claimed(0, 2)
    assert 9.0 < gate.idle_wait() <= 10.0  # due in 30 s (three runners): one interval at most
    gate.turn(room=False)  # waiting, and no slot here: poll for it
    assert gate.idle_wait() == 1.0
