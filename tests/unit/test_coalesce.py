"""Shared reads (utils/coalesce.py): callers asking at the same time share one read, a caller
never gets a read that began before it asked, errors reach everyone in the round, and a caller
that goes away neither cancels the read nor strands the others."""

from __future__ import annotations

import asyncio

import pytest

from backend.utils.coalesce import Coalescer


class Source:
    """A read whose answer is the number of reads begun so far; `hold` keeps reads open."""

    def __init__(self) -> None:
        self.started = 0
        self.hold = asyncio.Event()
        self.hold.set()
        self.fail_next = False

    async def read(self) -> int:
        self.started += 1
        number = self.started
        await self.hold.wait()
        if self.fail_next:
            self.fail_next = False
            raise LookupError(f"read {number} failed")
        return number


async def test_callers_at_the_same_time_share_one_read() -> None:
    shared, source = Coalescer(), Source()
    answers = await asyncio.gather(*(shared.read("k", source.read) for _ in range(50)))
    assert answers == [1] * 50
    assert source.started == 1
    assert shared.keys == 0  # nothing is kept once the reads are done


async def test_a_caller_arriving_during_a_read_gets_a_later_one() -> None:
    shared, source = Coalescer(), Source()
    source.hold.clear()
    first = asyncio.create_task(shared.read("k", source.read))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert source.started == 1  # read 1 is running
    later = [asyncio.create_task(shared.read("k", source.read)) for _ in range(10)]
    await asyncio.sleep(0)
    assert source.started == 1  # the late callers wait for their own round
    source.hold.set()
    assert await first == 1
    assert await asyncio.gather(*later) == [2] * 10
    assert source.started == 2


async def test_other_keys_do_not_wait_or_share() -> None:
    shared, source = Coalescer(), Source()
    answers = await asyncio.gather(shared.read("a", source.read), shared.read("b", source.read))
    assert sorted(answers) == [1, 2]


async def test_an_error_reaches_everyone_in_the_round_and_the_next_round_reads_again() -> None:
    shared, source = Coalescer(), Source()
    source.fail_next = True
    results = await asyncio.gather(
        *(shared.read("k", source.read) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)
    assert await shared.read("k", source.read) == 2
    assert shared.keys == 0


async def test_a_caller_that_goes_away_does_not_cancel_the_read_of_the_others() -> None:
    shared, source = Coalescer(), Source()
    source.hold.clear()
    leaver = asyncio.create_task(shared.read("k", source.read))
    stayer = asyncio.create_task(shared.read("k", source.read))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    leaver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaver
    source.hold.set()
    assert await stayer == 1
    assert shared.keys == 0
