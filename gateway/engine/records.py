"""What the engine produces besides registers: profile intervals, analysis rows, billing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import IntFlag
from typing import Any

import msgspec

from gateway.model import Value

__all__ = ["AnalysisRow", "BillingRecord", "ProfileFlag", "ProfileRow", "Register"]


class ProfileFlag(IntFlag):
    """Status of a load-profile interval (after DLMS's profile status bits)."""

    NONE = 0
    POWER_OUTAGE = 0x01  # no readings for longer than max_sample_gap_s inside the interval
    CLOCK_ADJUSTED = 0x02  # the meter's clock was set back or forth in the interval
    PARTIAL = 0x04  # the interval was not covered from its start (first after start-up)
    ESTIMATED = 0x08  # values interpolated across a gap from the registers on both sides


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """Energy per channel in one interval [start, end)."""

    start: datetime
    end: datetime
    values: dict[str, Decimal]  # OBIS code of the register -> kWh/kvarh in the interval
    flags: ProfileFlag


@dataclass(frozen=True, slots=True)
class AnalysisRow:
    """Means of the analysis logger's registers over one interval."""

    start: datetime
    end: datetime
    values: dict[str, float]


@dataclass(frozen=True, slots=True)
class BillingRecord:
    """The values frozen at a debiting stop."""

    number: int
    at: datetime
    values: dict[str, Any] = field(default_factory=dict)
    estimated: bool = False


class Register(msgspec.Struct, frozen=True, gc=False):
    """A value the meter holds: when it was last measured (``at``) and last changed.

    A constant value (0 W of export all night) is measured every reading: its age counts from
    ``at``, so it never looks stale; ``changed_at`` says since when it has held that value.
    A msgspec Struct rather than a frozen dataclass: the engine makes one per register per
    sample, and a Struct is built in C, about ten times faster; it holds no containers, so the
    cycle collector need not track it (gc=False).
    """

    obis: str
    value: Value
    unit: str | None
    at: datetime
    changed_at: datetime | None = None  # None: changed when measured (as loaded from the store)

    @property
    def since(self) -> datetime:
        """When the register took its present value."""
        return self.changed_at or self.at
