"""What Z-Wave meter readings mean: meter types, rate types, scales, units and OBIS codes.

Scale labels follow zwave-js ``packages/core/src/registries/Meters.ts``; units are Home
Assistant's; OBIS codes are the ones the engine keeps (IEC 62056-61). A scale number here is
the combined one (electric kvar = 7, kvarh = 8, carried on the wire as scale 7 plus a Scale 2 byte).
"""

from __future__ import annotations

from enum import IntEnum

import msgspec

__all__ = [
    "ElectricScale",
    "MeterQuantity",
    "MeterScale",
    "MeterType",
    "RateType",
    "key_for_obis",
    "meter_type_name",
    "quantity",
    "rate_type_name",
    "scale_info",
]


class MeterType(IntEnum):
    """Meter types (bits 0-4 of the first Report byte)."""

    ELECTRIC = 0x01
    GAS = 0x02
    WATER = 0x03
    HEATING = 0x04  # V5
    COOLING = 0x05  # V5


class RateType(IntEnum):
    """Rate types: the direction of the energy flow (V2+)."""

    UNSPECIFIED = 0x00
    IMPORT = 0x01  # zwave-js "Consumed"
    EXPORT = 0x02  # zwave-js "Produced"


class ElectricScale(IntEnum):
    """Electric meter scales, kvar and kvarh combined from scale 7 and Scale 2."""

    KWH = 0
    KVAH = 1
    W = 2
    PULSE_COUNT = 3
    V = 4
    A = 5
    POWER_FACTOR = 6
    KVAR = 7
    KVARH = 8


class MeterScale(msgspec.Struct, frozen=True):
    """What one (meter type, scale) measures: the spec's label, HA unit and our record name."""

    label: str
    unit: str | None
    name: str
    obis_import: str | None = None
    obis_export: str | None = None
    accumulating: bool = False
    directional: bool = False  # import and export are different quantities


class MeterQuantity(msgspec.Struct, frozen=True):
    """A reading's record name, Home Assistant unit and OBIS code."""

    name: str
    unit: str | None
    obis: str | None
    label: str


_SCALES: dict[int, dict[int, MeterScale]] = {
    MeterType.ELECTRIC: {
        0: MeterScale("kWh", "kWh", "energy", "1-0:1.8.0", "1-0:2.8.0", True, True),
        1: MeterScale("kVAh", "kVAh", "apparent_energy", "1-0:9.8.0", "1-0:10.8.0", True, True),
        2: MeterScale("W", "W", "power", "1-0:1.7.0", "1-0:2.7.0", False, True),
        3: MeterScale("Pulse count", None, "pulse_count", accumulating=True),
        4: MeterScale("V", "V", "voltage", "1-0:12.7.0", "1-0:12.7.0"),
        5: MeterScale("A", "A", "current", "1-0:11.7.0", "1-0:11.7.0"),
        6: MeterScale("Power factor", None, "power_factor", "1-0:13.7.0", "1-0:13.7.0"),
        7: MeterScale("kvar", "kvar", "reactive_power", "1-0:3.7.0", "1-0:4.7.0", False, True),
        8: MeterScale("kvarh", "kvarh", "reactive", "1-0:3.8.0", "1-0:4.8.0", True, True),
    },
    MeterType.GAS: {
        0: MeterScale("m³", "m³", "gas_volume", accumulating=True),
        1: MeterScale("ft³", "ft³", "gas_volume", accumulating=True),
        3: MeterScale("Pulse count", None, "gas_pulse_count", accumulating=True),
    },
    MeterType.WATER: {
        0: MeterScale("m³", "m³", "water_volume", accumulating=True),
        1: MeterScale("ft³", "ft³", "water_volume", accumulating=True),
        2: MeterScale("US gallons", "gal", "water_volume", accumulating=True),
        3: MeterScale("Pulse count", None, "water_pulse_count", accumulating=True),
    },
    MeterType.HEATING: {0: MeterScale("kWh", "kWh", "heating_energy", accumulating=True)},
    MeterType.COOLING: {0: MeterScale("kWh", "kWh", "cooling_energy", accumulating=True)},
}


def meter_type_name(meter_type: int) -> str | None:
    """ELECTRIC, GAS, ... or None for an unassigned meter type."""
    try:
        return MeterType(meter_type).name
    except ValueError:
        return None


def rate_type_name(rate_type: int) -> str | None:
    """UNSPECIFIED, IMPORT, EXPORT, or None for the reserved value 3."""
    try:
        return RateType(rate_type).name
    except ValueError:
        return None


def scale_info(meter_type: int, scale: int) -> MeterScale | None:
    """The table entry for a (meter type, combined scale), if the specification assigns one."""
    return _SCALES.get(meter_type, {}).get(scale)


def quantity(meter_type: int, rate_type: int, scale: int) -> MeterQuantity:
    """Record name, unit and OBIS code of a reading.

    An unspecified rate type counts as import: V1 meters have no rate field and meter what the
    premises draw.
    """
    info = scale_info(meter_type, scale)
    if info is None:
        return MeterQuantity(f"meter_{meter_type}_scale_{scale}", None, None, f"scale {scale}")
    export = rate_type == RateType.EXPORT
    obis = info.obis_export if export else info.obis_import
    if info.directional:
        name = f"{info.name}_{'export' if export else 'import'}"
    else:
        name = f"{info.name}_export" if export and meter_type != MeterType.ELECTRIC else info.name
    return MeterQuantity(name, info.unit, obis, info.label)


def key_for_obis(obis: str) -> tuple[int, int, int] | None:
    """(meter type, rate type, scale) that carries an electricity OBIS quantity, if one does."""
    for scale, info in _SCALES[MeterType.ELECTRIC].items():
        if not info.directional:
            if obis == info.obis_import:
                return MeterType.ELECTRIC, RateType.UNSPECIFIED, scale
            continue
        if obis == info.obis_import:
            return MeterType.ELECTRIC, RateType.IMPORT, scale
        if obis == info.obis_export:
            return MeterType.ELECTRIC, RateType.EXPORT, scale
    return None
