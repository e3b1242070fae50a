"""The read-only view of the meters that compatibility outputs read.

An output that speaks someone else's protocol (HomeWizard, Shelly) needs a meter's present
values with units and times, nothing more. It gets them through ``MeterView``, a frozen bundle
of callables the supervisor builds, so it can neither change the engine nor depend on how the
engine keeps its state. The values are what every other output shows: lifetime totals as last
committed to the store, instantaneous values as last measured.

Kept small on purpose: grow it (events, profiles, health) when an output needs more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from gateway import obis

__all__ = ["MeterValue", "MeterView"]


@dataclass(frozen=True, slots=True)
class MeterValue:
    """One register as shown: value, unit (None for pure numbers) and when it was measured."""

    value: float | int | str
    unit: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class MeterView:
    """One meter, read-only.

    ``readings`` returns the registers by OBIS code (``"1-0:1.7.0"``) each time it is called,
    so a caller always sees the latest values without holding on to the engine.
    """

    id: str
    name: str
    readings: Callable[[], Mapping[str, MeterValue]]

    def number(self, code: str, unit: str | None) -> float | None:
        """A register's value in ``unit`` (kWh, W, V, A ...), or None when the meter does not
        have it, it is not a number, or its unit cannot be turned into ``unit``."""
        reading = self.readings().get(code)
        if reading is None or isinstance(reading.value, str):
            return None
        scale = obis.unit_scale(reading.unit, unit)
        if scale is None:
            return None
        return float(reading.value) * 10.0**scale

    def text(self, code: str) -> str | None:
        """A register's value as text (serial numbers), or None when absent."""
        reading = self.readings().get(code)
        return None if reading is None else str(reading.value)

    def snapshot(self) -> MeterView:
        """This meter with its values as they are now, fixed: one reply built from it shows
        one moment (a total and its phases agree), and reads the registers only once."""
        values = dict(self.readings())
        return MeterView(self.id, self.name, lambda: values)

    def latest(self) -> datetime | None:
        """When the newest of the meter's values was measured; None before the first one."""
        readings = self.readings()
        return max((r.at for r in readings.values()), default=None)
