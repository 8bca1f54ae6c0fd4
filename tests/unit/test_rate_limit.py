"""The per-key token bucket and concurrency cap, on a clock the test moves."""

from __future__ import annotations

import pytest

from backend.core.rate_limit import ConcurrencyCap, TokenBucketLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_burst_then_refusal_with_exact_retry_after() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(0.5)  # one token at 2/s
    clock.advance(0.25)
    assert limiter.acquire("k") == pytest.approx(0.25)  # a refusal takes nothing
    clock.advance(0.25)
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") == pytest.approx(0.5)


def test_sustained_rate_is_the_configured_rate() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate=10.0, burst=5, clock=clock)
    allowed = 0
    for _ in range(1_000):  # 10 s of a client asking every 10 ms
        if limiter.acquire("k") == 0.0:
            allowed += 1
        clock.advance(0.01)
    # The burst, then 10 a second; the clock's float steps may cost the very last token.
    assert 5 + 100 - 1 <= allowed <= 5 + 100


def test_refill_stops_at_burst() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate=1.0, burst=2, clock=clock)
    limiter.acquire("k")
    clock.advance(3_600)
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_keys_have_separate_buckets() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate=1.0, burst=1, clock=clock)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_idle_buckets_are_dropped_without_changing_answers() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate=10.0, burst=20, clock=clock)  # full again after 2 s
    for key in range(100):
        limiter.acquire(f"key-{key}")
    assert len(limiter) == 100
    clock.advance(1.0)
    limiter.acquire("fresh")
    assert len(limiter) == 101  # not yet refilled: kept
    clock.advance(1.5)
    limiter.acquire("fresh")
    assert len(limiter) == 1  # the hundred idle ones were full, so they went
    # A dropped bucket answers like a full one.
    assert [limiter.acquire("key-0") for _ in range(20)] == [0.0] * 20
    assert limiter.acquire("key-0") > 0


def test_bucket_count_is_bounded() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate=1.0, burst=1, clock=clock, max_buckets=10)
    for key in range(1_000):
        limiter.acquire(str(key))
    assert len(limiter) <= 10


def test_forget_drops_a_bucket() -> None:
    limiter = TokenBucketLimiter(rate=1.0, burst=1, clock=Clock())
    limiter.acquire("k")
    limiter.forget("k")
    assert len(limiter) == 0
    assert limiter.acquire("k") == 0.0


def test_rate_zero_turns_limiting_off() -> None:
    limiter = TokenBucketLimiter(rate=0, burst=1, clock=Clock())
    assert not limiter.enabled
    assert all(limiter.acquire("k") == 0.0 for _ in range(1_000))
    assert len(limiter) == 0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBucketLimiter(rate=1.0, burst=0)
    with pytest.raises(ValueError, match="rate"):
        TokenBucketLimiter(rate=-1.0, burst=1)
    with pytest.raises(ValueError, match="never fit"):
        TokenBucketLimiter(rate=1.0, burst=2).acquire("k", cost=3)


def test_concurrency_cap_counts_per_key_and_forgets_zeroes() -> None:
    cap = ConcurrencyCap(2)
    assert cap.try_acquire("a")
    assert cap.try_acquire("a")
    assert not cap.try_acquire("a")
    assert cap.try_acquire("b")
    cap.release("a")
    assert cap.count("a") == 1
    assert cap.try_acquire("a")
    for _ in range(2):
        cap.release("a")
    cap.release("b")
    assert len(cap) == 0
    cap.release("never-acquired")  # a stray release never goes negative
    assert cap.count("never-acquired") == 0


def test_concurrency_cap_zero_means_no_cap() -> None:
    cap = ConcurrencyCap(0)
    assert all(cap.try_acquire("a") for _ in range(1_000))
    with pytest.raises(ValueError, match="limit"):
        ConcurrencyCap(-1)


def test_wait_answers_like_acquire_without_taking() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate=2.0, burst=2, clock=clock)
    assert limiter.wait("k") == 0.0  # never seen: a full bucket
    limiter.acquire("k")
    assert limiter.wait("k") == 0.0
    limiter.acquire("k")
    assert limiter.wait("k") == pytest.approx(0.5)
    assert limiter.wait("k") == pytest.approx(0.5)  # asking took nothing
    clock.advance(0.5)
    assert limiter.wait("k") == 0.0
    assert limiter.acquire("k") == 0.0
