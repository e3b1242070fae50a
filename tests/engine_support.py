"""A synthetic meter for engine tests: exact Wh registers from a random but seeded load."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from gateway.model import Reading, Sample

STEP = Decimal("0.001")


@dataclass
class Point:
    at: datetime
    a_plus: Decimal
    a_minus: Decimal
    r_plus: Decimal


def synthetic(
    start: datetime, end: datetime, *, seed: int, min_s: int = 20, max_s: int = 600
) -> Iterator[Point]:
    """Samples at random intervals; energy integrated exactly in Wh from a random load."""
    rng = random.Random(seed)
    at = start
    a_plus = a_minus = r_plus = 0
    yield Point(at, Decimal(0), Decimal(0), Decimal(0))
    while at < end:
        seconds = rng.randint(min_s, max_s)
        power_w = rng.choice((150, 400, 900, 2500, 6000, -1500, -3000))
        wh = power_w * seconds // 3600
        at += timedelta(seconds=seconds)
        if wh >= 0:
            a_plus += wh
        else:
            a_minus -= wh
        r_plus += abs(wh) // 4
        yield Point(at, Decimal(a_plus) / 1000, Decimal(a_minus) / 1000, Decimal(r_plus) / 1000)


def sample(point: Point, *extra: Reading) -> Sample:
    return Sample(
        "main",
        "test",
        point.at,
        (
            Reading("1-0:1.8.0", point.a_plus, "kWh"),
            Reading("1-0:2.8.0", point.a_minus, "kWh"),
            Reading("1-0:3.8.0", point.r_plus, "kvarh"),
            Reading("1-0:4.8.0", Decimal(0), "kvarh"),
            *extra,
        ),
    )


def value_at(points: list[Point], when: datetime, attr: str = "a_plus") -> Decimal:
    """Brute force: the register on the line between the samples around ``when``, floored."""
    index = max(1, bisect.bisect_left(points, when, key=lambda p: p.at))
    for before, after in zip(
        points[index - 1 : index + 1], points[index : index + 2], strict=False
    ):
        if before.at <= when <= after.at:
            v0: Decimal = getattr(before, attr)
            v1: Decimal = getattr(after, attr)
            if after.at == before.at or v0 == v1:
                return v0
            fraction = Decimal((when - before.at).total_seconds()) / Decimal(
                (after.at - before.at).total_seconds()
            )
            exact = v0 + (v1 - v0) * fraction
            return max(v0, min(v1, exact.quantize(STEP, rounding=ROUND_FLOOR)))
    raise ValueError(f"{when} outside the samples")
