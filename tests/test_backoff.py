"""The reconnect policy: full jitter under an exponential ceiling, capped, reset when healthy."""

from __future__ import annotations

import random

from gateway.backoff import Backoff


def test_delays_stay_under_a_doubling_ceiling_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=1.0, cap_s=60.0, rng=random.Random(7))
    delays = [backoff.next_delay(ran_for_s=0.1) for _ in range(12)]
    ceilings = [min(60.0, 2.0**n) for n in range(12)]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[8:]) > 16.0, "late attempts must be allowed to wait long"


def test_same_seed_same_sequence() -> None:
    one = Backoff(rng=random.Random(1))
    two = Backoff(rng=random.Random(1))
    assert [one.next_delay(0) for _ in range(5)] == [two.next_delay(0) for _ in range(5)]


def test_a_healthy_run_resets_the_sequence() -> None:
    backoff = Backoff(initial_s=1.0, rng=random.Random(3))
    for _ in range(10):
        backoff.next_delay(ran_for_s=1.0)
    assert backoff.next_delay(ran_for_s=3600.0) <= 1.0
    assert backoff.attempt == 1


def test_fatal_errors_wait_the_whole_cap() -> None:
    assert Backoff(cap_s=42.0).fatal_delay() == 42.0
