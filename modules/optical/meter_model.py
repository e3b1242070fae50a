"""The meter model behind the KMP and IEC 62056-21 emulators: a 382 on the sim household.

Energy is integrated from the household's power the way modules/sim/adapter.py does, in real
time; the meter keeps its own clock, which may be set off ours to exercise drift handling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from modules.codecs.kmp.registers import UNITS
from modules.sim.household import Household, Snapshot

__all__ = ["KMP_REGISTER_UNITS", "Simulated382"]

_UNIT_CODES = {name: code for code, (name, _, _) in sorted(UNITS.items(), reverse=True)}
# KMP unit code per register the simulated 382 knows (the 382J/L set, bsdphk/PyKamstrup).
KMP_REGISTER_UNITS: dict[int, int] = {
    0x0001: _UNIT_CODES["kWh"],
    0x0002: _UNIT_CODES["kWh"],
    0x000D: _UNIT_CODES["kWh"],
    0x000E: _UNIT_CODES["kWh"],
    0x0027: _UNIT_CODES["kW"],
    0x03FF: _UNIT_CODES["kW"],
    0x0400: _UNIT_CODES["kW"],
    0x041E: _UNIT_CODES["V"],
    0x041F: _UNIT_CODES["V"],
    0x0420: _UNIT_CODES["V"],
    0x0434: _UNIT_CODES["A"],
    0x0435: _UNIT_CODES["A"],
    0x0436: _UNIT_CODES["A"],
    0x0438: _UNIT_CODES["kW"],
    0x0439: _UNIT_CODES["kW"],
    0x043A: _UNIT_CODES["kW"],
    0x0540: _UNIT_CODES["kW"],
    0x0541: _UNIT_CODES["kW"],
    0x0542: _UNIT_CODES["kW"],
    1001: 0,
    1002: 47,  # hh:mm:ss
    1003: 48,  # yy:mm:dd
    1004: _UNIT_CODES["h"],
}
_WH = Decimal("0.001")
_W = Decimal("0.001")
_CENTI = Decimal("0.01")
_INSTALLED_HOURS = 20_000


def _kwh(wh: float, step: Decimal = _WH) -> Decimal:
    return (Decimal(repr(wh)) / 1000).quantize(step, rounding=ROUND_FLOOR)


def _kw(w: float) -> Decimal:
    return (Decimal(repr(max(w, 0.0))) / 1000).quantize(_W)


@dataclass
class Simulated382:
    """A 382L on a simulated household, with lifetime totals that keep counting."""

    serial: int = 5_382_001
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    clock_offset_s: float = 0.0
    pv_kwp: float = 0.0
    seed: int = 382
    import_kwh: float = 12_345.678
    export_kwh: float = 321.0
    reactive_import_kvarh: float = 2_468.0
    reactive_export_kvarh: float = 1_357.0
    household: Household = field(init=False)
    asked: dict[int, int] = field(default_factory=dict)  # register id -> times read
    option_selects: list[str] = field(default_factory=list)  # IEC ACK V Z Y received
    _totals_wh: list[float] = field(init=False)
    _last: float = field(init=False)
    _snapshot: Snapshot = field(init=False)
    _max_power_w: float = 0.0
    _started: float = field(init=False)

    def __post_init__(self) -> None:
        self.household = Household(seed=self.seed, pv_kwp=self.pv_kwp)
        self._totals_wh = [
            self.import_kwh * 1000,
            self.export_kwh * 1000,
            self.reactive_import_kvarh * 1000,
            self.reactive_export_kvarh * 1000,
        ]
        self._started = self._last = time.monotonic()
        self._snapshot = self.household.at(self.clock().astimezone(self.zone))

    def clock(self) -> datetime:
        """The meter's own clock (UTC), off real time by ``clock_offset_s``."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)

    def local_clock(self) -> datetime:
        """The meter's wall clock, as its display and registers 1002/1003 show it."""
        return self.clock().astimezone(self.zone).replace(tzinfo=None)

    def set_clock(self, local: datetime) -> None:
        """Set the wall clock (KMP SetClock): the offset follows."""
        wanted = local.replace(tzinfo=self.zone).astimezone(UTC)
        self.clock_offset_s = (wanted - datetime.now(UTC)).total_seconds()

    def update(self) -> Snapshot:
        """Integrate energy up to now and return the household's present state."""
        now = time.monotonic()
        hours = (now - self._last) / 3600
        self._last = now
        power, reactive = self._snapshot.power_w, self._snapshot.reactive_var
        self._totals_wh[0] += max(power, 0.0) * hours
        self._totals_wh[1] += max(-power, 0.0) * hours
        self._totals_wh[2] += max(reactive, 0.0) * hours
        self._totals_wh[3] += max(-reactive, 0.0) * hours
        self._snapshot = self.household.at(self.clock().astimezone(self.zone))
        self._max_power_w = max(self._max_power_w, self._snapshot.power_w)
        return self._snapshot

    def kmp_registers(self, ids: tuple[int, ...]) -> list[tuple[int, int, Decimal]]:
        """(register, KMP unit, value) for the ids this meter knows, in the order asked."""
        snapshot = self.update()
        values = self._kmp_values(snapshot)
        out = []
        for register in ids:
            self.asked[register] = self.asked.get(register, 0) + 1
            if register in values:
                out.append((register, KMP_REGISTER_UNITS[register], values[register]))
        return out

    def _kmp_values(self, snapshot: Snapshot) -> dict[int, Decimal]:
        local = self.local_clock()
        phases = snapshot.phases
        hours = _INSTALLED_HOURS + int((time.monotonic() - self._started) // 3600)
        values = {
            0x0001: _kwh(self._totals_wh[0], Decimal(1)),
            0x0002: _kwh(self._totals_wh[1], Decimal(1)),
            0x000D: _kwh(self._totals_wh[0]),
            0x000E: _kwh(self._totals_wh[1]),
            0x0027: _kw(self._max_power_w),
            0x03FF: _kw(snapshot.power_w),
            0x0400: _kw(-snapshot.power_w),
            1001: Decimal(self.serial),
            1002: Decimal(local.hour * 10000 + local.minute * 100 + local.second),
            1003: Decimal((local.year % 100) * 10000 + local.month * 100 + local.day),
            1004: Decimal(hours),
        }
        for index, phase in enumerate(phases):
            values[0x041E + index] = Decimal(round(phase.voltage_v))
            values[0x0434 + index] = Decimal(repr(phase.current_a)).quantize(_CENTI)
            values[0x0438 + index] = _kw(phase.power_w)
            values[0x0540 + index] = _kw(-phase.power_w)
        return values

    def iec_data(self) -> list[tuple[str, Decimal | str, str | None]]:
        """(address, value, unit) of the data readout, as a 382 lists it."""
        snapshot = self.update()
        local = self.local_clock()
        totals = self._totals_wh
        lines: list[tuple[str, Decimal | str, str | None]] = [
            ("0.0.0", str(self.serial), None),
            ("0.9.1", f"{local:%H%M%S}", None),
            ("0.9.2", f"{local:%y%m%d}", None),
            ("1.8.0", _kwh(totals[0]), "kWh"),
            ("2.8.0", _kwh(totals[1]), "kWh"),
            ("3.8.0", _kwh(totals[2]), "kvarh"),
            ("4.8.0", _kwh(totals[3]), "kvarh"),
            ("1.6.0", _kw(self._max_power_w), "kW"),
            ("1.7.0", _kw(snapshot.power_w), "kW"),
            ("2.7.0", _kw(-snapshot.power_w), "kW"),
        ]
        for (power_c, voltage_c, current_c), phase in zip(
            ((21, 32, 31), (41, 52, 51), (61, 72, 71)), snapshot.phases, strict=True
        ):
            lines += [
                (f"{power_c}.7.0", _kw(phase.power_w), "kW"),
                (f"{voltage_c}.7.0", Decimal(repr(phase.voltage_v)).quantize(Decimal("0.1")), "V"),
                (f"{current_c}.7.0", Decimal(repr(phase.current_a)).quantize(_CENTI), "A"),
            ]
        return lines

    @property
    def energy_import_kwh(self) -> Decimal:
        """A+ as the registers show it (for tests)."""
        return _kwh(self._totals_wh[0])
