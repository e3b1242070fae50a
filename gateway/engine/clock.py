"""Boundaries on the meter's clock: demand periods, profile intervals, debiting stops."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

__all__ = ["ENERGY_STEP", "floor_to_period", "interpolate", "next_debiting_stop", "period_ends"]

# Registers resolve 1 Wh: values interpolated at a boundary are rounded down to it, so that the
# intervals between boundaries add up exactly to the register difference.
ENERGY_STEP = Decimal("0.001")


def floor_to_period(at: datetime, minutes: int, zone: ZoneInfo) -> datetime:
    """The start of the period containing ``at``, aligned to the local clock."""
    offset = at.astimezone(zone).utcoffset() or timedelta(0)
    period_s = minutes * 60
    local_s = int((at + offset).timestamp())
    return datetime.fromtimestamp(local_s - local_s % period_s, at.tzinfo) - offset


def period_ends(after: datetime, until: datetime, minutes: int, zone: ZoneInfo) -> list[datetime]:
    """Every period end in (after, until], in order."""
    ends = []
    boundary = floor_to_period(after, minutes, zone) + timedelta(minutes=minutes)
    while boundary <= until:
        ends.append(boundary)
        boundary = floor_to_period(boundary, minutes, zone) + timedelta(minutes=minutes)
    return ends


def next_debiting_stop(after: datetime, day: int, hour: int, zone: ZoneInfo) -> datetime:
    """The first monthly debiting stop strictly after ``after``."""
    local = after.astimezone(zone)
    year, month = local.year, local.month
    while True:
        candidate = datetime(year, month, day, hour, tzinfo=zone)
        if candidate > after:
            return candidate.astimezone(after.tzinfo)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)  # noqa: PLR2004 - December


def interpolate(
    at: datetime, before_at: datetime, before: Decimal, after_at: datetime, after: Decimal
) -> Decimal:
    """A register's value at ``at`` on the straight line between two readings, floored to 1 Wh."""
    if after_at <= before_at or after == before:
        return before
    fraction = Decimal((at - before_at).total_seconds()) / Decimal(
        (after_at - before_at).total_seconds()
    )
    value = before + (after - before) * fraction
    return max(before, min(after, value.quantize(ENERGY_STEP, rounding=ROUND_FLOOR)))
