"""OBIS codes: names, units and Home Assistant classes (parsing comes from the codecs).

Everything the gateway knows about a quantity hangs off its OBIS code (IEC 62056-61), so the
engine, MQTT discovery, the web page and the Z-Wave display share one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from modules.codecs.obis import normalize, parse

__all__ = [
    "KNOWN",
    "Kind",
    "Quantity",
    "describe",
    "is_cumulative",
    "normalize",
    "parse",
]


class Kind(Enum):
    """How a quantity behaves over time."""

    CUMULATIVE = "cumulative"  # a lifetime register: never goes backwards
    MEASUREMENT = "measurement"  # an instantaneous value
    MAXIMUM = "maximum"  # a demand maximum that resets per debiting period
    STATE = "state"  # a status, tariff, or text


@dataclass(frozen=True, slots=True)
class Quantity:
    """What an OBIS code means to a person and to Home Assistant."""

    name: str
    label: str
    unit: str | None
    kind: Kind
    device_class: str | None
    state_class: str | None


def _energy(name: str, label: str, unit: str, device_class: str) -> Quantity:
    return Quantity(name, label, unit, Kind.CUMULATIVE, device_class, "total_increasing")


def _measure(name: str, label: str, unit: str | None, device_class: str | None) -> Quantity:
    return Quantity(name, label, unit, Kind.MEASUREMENT, device_class, "measurement")


def _build() -> dict[str, Quantity]:
    table: dict[str, Quantity] = {
        "1-0:1.8.0": _energy("energy_import", "Energy import A+", "kWh", "energy"),
        "1-0:2.8.0": _energy("energy_export", "Energy export A-", "kWh", "energy"),
        "1-0:3.8.0": _energy(
            "reactive_import", "Reactive energy import R+", "kvarh", "reactive_energy"
        ),
        "1-0:4.8.0": _energy(
            "reactive_export", "Reactive energy export R-", "kvarh", "reactive_energy"
        ),
        "1-0:1.7.0": _measure("power_import", "Power import P+", "W", "power"),
        "1-0:2.7.0": _measure("power_export", "Power export P-", "W", "power"),
        "1-0:3.7.0": _measure(
            "reactive_power_import", "Reactive power import Q+", "var", "reactive_power"
        ),
        "1-0:4.7.0": _measure(
            "reactive_power_export", "Reactive power export Q-", "var", "reactive_power"
        ),
        "1-0:9.7.0": _measure("apparent_power", "Apparent power S", "VA", "apparent_power"),
        "1-0:14.7.0": _measure("frequency", "Frequency", "Hz", "frequency"),
        "1-0:13.7.0": _measure("power_factor", "Power factor", None, "power_factor"),
        "1-0:1.6.0": Quantity(
            "peak_power", "Peak power P+max", "W", Kind.MAXIMUM, "power", "measurement"
        ),
        "0-0:96.14.0": Quantity("tariff", "Active tariff", None, Kind.STATE, "enum", None),
        "0-0:96.8.0": Quantity(
            "hour_counter", "Hour counter", "h", Kind.CUMULATIVE, "duration", "total_increasing"
        ),
        "0-0:96.1.0": Quantity("serial_number", "Serial number", None, Kind.STATE, None, None),
        "0-0:1.0.0": Quantity("meter_time", "Meter time", None, Kind.STATE, "timestamp", None),
    }
    # The accumulated maximum only grows, but it is a power: HA must not chart it as energy.
    table["1-0:1.2.0"] = Quantity(
        "peak_power_accumulated", "Accumulated P+max", "W", Kind.CUMULATIVE, "power", "measurement"
    )
    for tariff in range(1, 5):
        table[f"1-0:1.8.{tariff}"] = _energy(
            f"energy_import_t{tariff}", f"Energy import A+ T{tariff}", "kWh", "energy"
        )
        table[f"1-0:2.8.{tariff}"] = _energy(
            f"energy_export_t{tariff}", f"Energy export A- T{tariff}", "kWh", "energy"
        )
        table[f"1-0:3.8.{tariff}"] = _energy(
            f"reactive_import_t{tariff}",
            f"Reactive energy import R+ T{tariff}",
            "kvarh",
            "reactive_energy",
        )
        table[f"1-0:1.6.{tariff}"] = Quantity(
            f"peak_power_t{tariff}",
            f"Peak power P+max T{tariff}",
            "W",
            Kind.MAXIMUM,
            "power",
            "measurement",
        )
    for phase, (power, voltage, current, factor) in enumerate(
        ((21, 32, 31, 33), (41, 52, 51, 53), (61, 72, 71, 73)), start=1
    ):
        table[f"1-0:{power}.7.0"] = _measure(
            f"power_import_l{phase}", f"Power import P+ L{phase}", "W", "power"
        )
        table[f"1-0:{power + 1}.7.0"] = _measure(
            f"power_export_l{phase}", f"Power export P- L{phase}", "W", "power"
        )
        table[f"1-0:{power}.8.0"] = _energy(
            f"energy_import_l{phase}", f"Energy import A+ L{phase}", "kWh", "energy"
        )
        table[f"1-0:{power + 1}.8.0"] = _energy(
            f"energy_export_l{phase}", f"Energy export A- L{phase}", "kWh", "energy"
        )
        table[f"1-0:{voltage}.7.0"] = _measure(
            f"voltage_l{phase}", f"Voltage L{phase}", "V", "voltage"
        )
        table[f"1-0:{current}.7.0"] = _measure(
            f"current_l{phase}", f"Current L{phase}", "A", "current"
        )
        table[f"1-0:{factor}.7.0"] = _measure(
            f"power_factor_l{phase}", f"Power factor L{phase}", None, "power_factor"
        )
    return table


KNOWN: dict[str, Quantity] = _build()


def describe(code: str) -> Quantity | None:
    """The quantity an OBIS code (any accepted spelling) stands for, if the gateway knows it."""
    return KNOWN.get(normalize(code))


@lru_cache(maxsize=4096)
def is_cumulative(code: str) -> bool:
    """True for lifetime registers, which must never go backwards.

    Unknown codes are judged by the OBIS value group D: 8 is a time integral (energy).
    """
    quantity = describe(code)
    if quantity is not None:
        return quantity.kind is Kind.CUMULATIVE
    try:
        return parse(code)[3] == 8  # noqa: PLR2004 - D = 8: a time integral
    except ValueError:
        return False


# Scale factors between the units adapters send and the canonical unit of each quantity.
_SCALE: dict[tuple[str, str], int] = {
    ("Wh", "kWh"): -3,
    ("MWh", "kWh"): 3,
    ("varh", "kvarh"): -3,
    ("Mvarh", "kvarh"): 3,
    ("kW", "W"): 3,
    ("MW", "W"): 6,
    ("kvar", "var"): 3,
    ("kVA", "VA"): 3,
    ("mA", "A"): -3,
    ("kV", "V"): 3,
    ("%", ""): -2,
}


def unit_scale(from_unit: str | None, to_unit: str | None) -> int | None:
    """The power of ten that turns a value in ``from_unit`` into ``to_unit``; None if unrelated."""
    source, target = from_unit or "", to_unit or ""
    if source == target:
        return 0
    if (source, target) in _SCALE:
        return _SCALE[(source, target)]
    if (target, source) in _SCALE:
        return -_SCALE[(target, source)]
    return None
