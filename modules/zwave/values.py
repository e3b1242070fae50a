"""Which meter values a Z-Wave node can report, and when a change is worth a report.

Sans-IO. A display list's OBIS codes become channels: end point (0 the root device, 1..3 the
phases L1..L3), Meter CC rate type and scale. Register values are converted to the scale's unit
and resolution here; the report policy decides when a value goes to the lifeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

import msgspec

from gateway import obis
from gateway.engine import Register
from modules.codecs.zwave.meter import (
    ElectricScale,
    MeterType,
    RateType,
    key_for_obis,
    scale_info,
)

__all__ = [
    "ELECTRIC",
    "Channel",
    "ReportPolicy",
    "channel_for",
    "channels_for",
    "obis_for",
    "read_value",
]

ELECTRIC = MeterType.ELECTRIC

# What a register is rounded to before it goes on the air: the 382L's own resolution for
# energy (1 Wh), a display's for the rest. Energy is floored: a register is never shown ahead.
_RESOLUTION: dict[int, Decimal] = {
    ElectricScale.KWH: Decimal("0.001"),
    ElectricScale.KVAH: Decimal("0.001"),
    ElectricScale.W: Decimal("0.1"),
    ElectricScale.V: Decimal("0.1"),
    ElectricScale.A: Decimal("0.01"),
    ElectricScale.POWER_FACTOR: Decimal("0.001"),
    ElectricScale.KVAR: Decimal("0.001"),
    ElectricScale.KVARH: Decimal("0.001"),
}

# Per-phase OBIS codes (C of P+, U, I, PF for L1..L3) -> end points 1..3.
_PHASES = {1: (21, 32, 31, 33), 2: (41, 52, 51, 53), 3: (61, 72, 71, 73)}


class Channel(msgspec.Struct, frozen=True):
    """One value the node reports: end point (0 root, 1..3 phases), rate type, scale, register."""

    end_point: int
    rate_type: int  # UNSPECIFIED for quantities without a direction (V, A, power factor)
    scale: int
    obis: str


def _phase_table() -> dict[str, tuple[int, int, int]]:
    table: dict[str, tuple[int, int, int]] = {}
    for end_point, (power, voltage, current, factor) in _PHASES.items():
        table[f"1-0:{power}.7.0"] = (end_point, RateType.IMPORT, ElectricScale.W)
        table[f"1-0:{power + 1}.7.0"] = (end_point, RateType.EXPORT, ElectricScale.W)
        table[f"1-0:{power}.8.0"] = (end_point, RateType.IMPORT, ElectricScale.KWH)
        table[f"1-0:{power + 1}.8.0"] = (end_point, RateType.EXPORT, ElectricScale.KWH)
        table[f"1-0:{voltage}.7.0"] = (end_point, RateType.UNSPECIFIED, ElectricScale.V)
        table[f"1-0:{current}.7.0"] = (end_point, RateType.UNSPECIFIED, ElectricScale.A)
        table[f"1-0:{factor}.7.0"] = (end_point, RateType.UNSPECIFIED, ElectricScale.POWER_FACTOR)
    return table


_PHASE_CHANNELS = _phase_table()
_PHASE_CODES = {key: code for code, key in _PHASE_CHANNELS.items()}


def channel_for(code: str) -> Channel | None:
    """The channel that carries an OBIS quantity, or None when no Meter CC scale can."""
    code = obis.normalize(code)
    phase = _PHASE_CHANNELS.get(code)
    if phase is not None:
        return Channel(*phase, code)
    key = key_for_obis(code)
    if key is None or scale_info(ELECTRIC, key[2]) is None:
        return None
    _meter_type, rate_type, scale = key
    return Channel(0, rate_type, scale, code)


def channels_for(codes: Iterable[str]) -> tuple[Channel, ...]:
    """The channels of a display list, in its order, once each."""
    out: list[Channel] = []
    for code in codes:
        channel = channel_for(code)
        if channel is not None and channel not in out:
            out.append(channel)
    return tuple(out)


def obis_for(end_point: int, rate_type: int, scale: int) -> str | None:
    """The register holding a quantity, listed or not (a Get may ask for the other direction)."""
    info = scale_info(ELECTRIC, scale)
    if info is None:
        return None
    rate = rate_type if info.directional else RateType.UNSPECIFIED
    if end_point:
        return _PHASE_CODES.get((end_point, rate, scale))
    return info.obis_export if rate == RateType.EXPORT else info.obis_import


def read_value(registers: Mapping[str, Register], code: str, scale: int) -> Decimal | None:
    """A register in the scale's unit and resolution, or None when the meter does not know it."""
    register = registers.get(code)
    info = scale_info(ELECTRIC, scale)
    if register is None or info is None or isinstance(register.value, str):
        return None
    exponent = obis.unit_scale(register.unit, info.unit)
    if exponent is None:
        return None
    try:
        value = Decimal(str(register.value)).scaleb(exponent)
        rounding = ROUND_FLOOR if info.accumulating else ROUND_HALF_EVEN
        resolution = _RESOLUTION.get(scale, Decimal(1))
        return value.quantize(resolution, rounding=rounding)
    except InvalidOperation:
        return None  # NaN or infinity from a broken source: nothing worth showing


class ReportPolicy:
    """When a value is worth an unsolicited report: on change beyond a threshold, at most every
    ``min_interval_s``, and at least every ``interval_s`` (0: no periodic reports)."""

    def __init__(
        self, *, min_interval_s: float, interval_s: float, delta_kwh: float, delta_pct: float
    ) -> None:
        self.min_interval_s = min_interval_s
        self.interval_s = interval_s
        self.delta_kwh = Decimal(str(delta_kwh))
        self.delta_pct = Decimal(str(delta_pct))
        self._sent: dict[tuple[int, int, int], tuple[Decimal, float]] = {}
        # Changed values held back by min_interval_s -> when they may be looked at again.
        self._held: dict[tuple[int, int, int], float] = {}

    def due(self, key: tuple[int, int, int], value: Decimal, now: float) -> bool:
        """True when ``value`` should go to the lifeline now."""
        last = self._sent.get(key)
        if last is None:
            return True
        previous, at = last
        elapsed = now - at
        if elapsed < self.min_interval_s:
            if value != previous:
                self._held[key] = at + self.min_interval_s
            return False
        self._held.pop(key, None)
        if self.interval_s and elapsed >= self.interval_s:
            return True
        change = abs(value - previous)
        info = scale_info(ELECTRIC, key[2])
        if info is not None and info.accumulating:
            return change >= self.delta_kwh and change > 0
        if previous == 0:
            return change > 0
        return change * 100 >= self.delta_pct * abs(previous) and change > 0

    def note(self, key: tuple[int, int, int], value: Decimal, now: float) -> None:
        """``value`` went to the lifeline at ``now``."""
        self._sent[key] = (value, now)
        self._held.pop(key, None)

    def next_due(self) -> float | None:
        """The earliest time a report may fall due with no new value (a change held back by
        ``min_interval_s``, or a periodic report); None when only a change can make one due."""
        times = list(self._held.values())
        if self.interval_s:
            times += [at + self.interval_s for _value, at in self._sent.values()]
        return min(times, default=None)

    def last(self, key: tuple[int, int, int]) -> tuple[Decimal, float] | None:
        """The last value reported unsolicited and when."""
        return self._sent.get(key)

    def forget(self) -> None:
        """Start over (a new lifeline gets every value at once)."""
        self._sent.clear()
        self._held.clear()
