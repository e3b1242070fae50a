"""IEC 62056-21 data sets -> the engine's OBIS readings."""

from __future__ import annotations

from decimal import Decimal

from gateway.model import Reading
from modules.codecs.iec62056_21.messages import DataMessage, records

__all__ = ["readings"]


def readings(message: DataMessage) -> tuple[Reading, ...]:
    """Engine readings from a readout: numbers with a unit, keyed by OBIS code."""
    return tuple(
        Reading(obis=r.obis or r.name, value=r.value, unit=r.unit)
        for r in records(message.data_sets)
        if r.unit is not None and isinstance(r.value, Decimal) and "index" not in r.raw
    )
