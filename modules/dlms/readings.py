"""Decoded DLMS/DSMR records -> the engine's OBIS readings, and the meter time of a frame.

Kamstrup pushes electricity codes on measurement channel B=1 (``1-1:1.8.0``); the engine keys
its registers on ``1-0``, so a channel is folded to 0 unless two channels of one quantity
arrive together. M-Bus channels on A=0 (DSMR gas on ``0-1:24.2.1``) are kept: they name
different devices.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from decimal import Decimal

from gateway.model import Reading
from modules.codecs.dlms.obis import split_obis
from modules.codecs.records import Decoded, Record

__all__ = ["meter_time", "to_readings"]

_ELECTRICITY = 1
# Maximum demand (D=6) and cumulative maximum (D=2) are derived by the engine from the totals
# (the 382L's own P+max); a meter's figure for another demand period would fight with it.
_ENGINE_DERIVED_D = (2, 6)
# The meter clock travels as the Sample's time, not as a register.
_CLOCK_CDE = (1, 0, 0)
# DSMR sends energy per tariff only; their sum is the lifetime total the engine is built on.
_TARIFF_TOTALS = ((1, "1-0:1.8.0"), (2, "1-0:2.8.0"), (3, "1-0:3.8.0"), (4, "1-0:4.8.0"))


def to_readings(records: Iterable[Record]) -> tuple[Reading, ...]:
    """The records the engine can use: current values with an OBIS code, channels folded."""
    kept: list[tuple[tuple[int, int, int, int, int], Record]] = []
    for record in records:
        groups = _usable(record)
        if groups is not None:
            kept.append((groups, record))
    channels: dict[tuple[int, int, int, int], set[int]] = {}
    for (a, b, c, d, e), _record in kept:
        channels.setdefault((a, c, d, e), set()).add(b)
    readings: dict[str, Reading] = {}
    for (a, b, c, d, e), record in kept:
        channel = 0 if a == _ELECTRICITY and len(channels[(a, c, d, e)]) == 1 else b
        code = f"{a}-{channel}:{c}.{d}.{e}"
        assert record.value is not None
        readings.setdefault(code, Reading(code, record.value, record.unit))
    _add_tariff_totals(readings)
    return tuple(readings.values())


def meter_time(decoded: Decoded, zone: tzinfo) -> datetime | None:
    """The meter's clock from a decoded frame as UTC; a clock without offset is in ``zone``."""
    text = decoded.meter.get("time")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        # Kamstrup and Aidon send local time with the deviation "unspecified" (0x8000).
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _usable(record: Record) -> tuple[int, int, int, int, int] | None:
    if record.obis is None or record.value is None or record.storage != 0:
        return None
    if isinstance(record.value, str) and not record.value.strip():
        return None
    groups = split_obis(record.obis)
    if groups is None:
        return None
    a, b, c, d, e, _f = groups
    if (c, d, e) == _CLOCK_CDE:
        return None
    if a == _ELECTRICITY and d in _ENGINE_DERIVED_D:
        return None
    return a, b, c, d, e


def _add_tariff_totals(readings: dict[str, Reading]) -> None:
    for c, total in _TARIFF_TOTALS:
        if total in readings:
            continue
        parts = [readings.get(f"1-0:{c}.8.{t}") for t in range(1, 5)]
        present = [p for p in parts if p is not None]
        if not present or not all(isinstance(p.value, Decimal | int) for p in present):
            continue
        units = {p.unit for p in present}
        if len(units) != 1:
            continue
        value = sum((Decimal(p.value) for p in present), Decimal(0))
        readings[total] = Reading(total, value, units.pop())
