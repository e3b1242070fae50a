"""Techem radio meters (manufacturer TCH, whole payload behind CI 0xA1/0xA2).

MK Radio 3 (version 0x74) and MK Radio 4 (versions 0x70, 0x95), warm (device type 0x62) and
cold (0x72) water: after the CI field, byte 0 is a status, bytes 1-2 the date the last billing
period ended, bytes 3-4 the reading at that period's end and bytes 7-8 what was used since,
both in units of 0.1 m³ (uint16, little endian). The meter's total is their sum. Compact V heat
meters (versions 0x22, 0x39, 0x45) use the same places for kWh, Vario 4 type 4.5.1 heat
meters (version 0x27) for MJ (0.001 GJ), and FHKV data III heat cost allocators (device type
0x80) for allocation units, followed by the room and radiator temperatures in 0.01 °C (from
byte 9, or byte 10 on version 0x94). Offsets as documented by the wmbusmeters project's
mkradio3, mkradio4, compact5, vario451 and fhkvdataiii drivers.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from modules.codecs.wmbus.drivers.model import Driver, FieldSpec, FixedFields

__all__ = [
    "COMPACT_V",
    "FHKV_DATA_III",
    "FHKV_DATA_III_94",
    "MK_RADIO_3",
    "MK_RADIO_4",
    "VARIO_451",
]

_LAYOUT = FixedFields(
    (
        FieldSpec("volume_at_period_start", "m³", exponent=-1, length=2, offset=3),
        FieldSpec("volume_this_period", "m³", exponent=-1, length=2, offset=7),
    )
)


def _sum(
    name: str, unit: str, *parts: str
) -> Callable[[dict[str, Decimal]], dict[str, tuple[Decimal, str | None]]]:
    """A derived total: the meter's reading is the sum of two billing-period fields."""

    def derive(values: dict[str, Decimal]) -> dict[str, tuple[Decimal, str | None]]:
        return {name: (sum((values[part] for part in parts), Decimal(0)), unit)}

    return derive


_total = _sum("total_volume", "m³", "volume_at_period_start", "volume_this_period")


_SOURCE = "Techem MK Radio payload as recorded by the wmbusmeters mkradio3/mkradio4 drivers"

MK_RADIO_3 = Driver(
    name="mkradio3",
    manufacturer="TCH",
    versions=frozenset({0x74}),
    device_types=frozenset({0x62, 0x72}),
    layout=_LAYOUT,
    source=_SOURCE,
    derive=_total,
)

MK_RADIO_4 = Driver(
    name="mkradio4",
    manufacturer="TCH",
    versions=frozenset({0x70, 0x95}),
    device_types=frozenset({0x62, 0x72}),
    layout=_LAYOUT,
    source=_SOURCE,
    derive=_total,
)


_ENERGY = FixedFields(
    (
        FieldSpec("energy_previous_period", "kWh", length=2, offset=3),
        FieldSpec("energy_this_period", "kWh", length=2, offset=7),
    )
)


_total_energy = _sum("total_energy", "kWh", "energy_previous_period", "energy_this_period")


COMPACT_V = Driver(
    name="compact5",
    manufacturer="TCH",
    versions=frozenset({0x22, 0x39, 0x45}),
    device_types=frozenset({0x04, 0x43, 0xC3}),
    layout=_ENERGY,
    source="Techem Compact V payload as recorded by the wmbusmeters compact5 driver",
    derive=_total_energy,
)


_VARIO = FixedFields(
    (
        FieldSpec("energy_previous_period", "GJ", exponent=-3, length=2, offset=3),
        FieldSpec("energy_this_period", "GJ", exponent=-3, length=2, offset=7),
    )
)


_total_gj = _sum("total_energy", "GJ", "energy_previous_period", "energy_this_period")


VARIO_451 = Driver(
    name="vario451",
    manufacturer="TCH",
    versions=frozenset({0x27}),
    device_types=frozenset({0x04, 0xC3}),
    layout=_VARIO,
    source="Techem Vario 4 payload as recorded by the wmbusmeters vario451 driver",
    derive=_total_gj,
)


def _allocator(temperatures_at: int) -> FixedFields:
    return FixedFields(
        (
            FieldSpec("hca_previous_period", None, length=2, offset=3),
            FieldSpec("hca_this_period", None, length=2, offset=7),
            FieldSpec("room_temperature", "°C", exponent=-2, length=2, offset=temperatures_at),
            FieldSpec(
                "radiator_temperature", "°C", exponent=-2, length=2, offset=temperatures_at + 2
            ),
        )
    )


_FHKV_SOURCE = "Techem FHKV data III payload as recorded by the wmbusmeters fhkvdataiii driver"

FHKV_DATA_III = Driver(
    name="fhkvdataiii",
    manufacturer="TCH",
    versions=frozenset({0x69}),
    device_types=frozenset({0x80}),
    layout=_allocator(9),
    source=_FHKV_SOURCE,
)

FHKV_DATA_III_94 = Driver(
    name="fhkvdataiii",
    manufacturer="TCH",
    versions=frozenset({0x94}),
    device_types=frozenset({0x80}),
    layout=_allocator(10),
    source=_FHKV_SOURCE,
)
