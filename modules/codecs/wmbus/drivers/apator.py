"""Apator water meters.

AT-WMBUS-16-2 (the radio of Apator's JS/SV water meters, manufacturer APA, version 5, device
types 6 and 7): after the 0x0F of manufacturer data, 4 bytes of date and 3 of fault flags, then
registers tagged by one byte whose data size the tag fixes; 0x10 is the total volume in litres
(uint32, little endian); 0xFF starts the padding to the AES block, and the last two bytes are a
check word. Sizes as documented by the wmbusmeters project's apator162 grammar (tags seen in
real telegrams).

E-ITN 30 heat cost allocators (APA or APT, version 4, device type 8): the payload after CI
0xA0 holds 15 bytes (after CI 0xB6 a length-prefixed block and 0xA0 come first): the low byte
of the season start date, two reserved bytes, then little-endian words: the previous period's
allocation units, the seal-break date, this period's units, today's date, and the previous and
current season's average room temperature in 1/256 °C. As documented by the wmbusmeters
project's apatoreitn driver.

Apator 08 water meters (APT, version/type 0x03/0x03 and 0x0F/0x0F): the payload after CI 0xA0
starts with the total as a little-endian count of 1/3 litre. As documented by the wmbusmeters
project's apator08 driver.
"""

from __future__ import annotations

from msgspec.structs import replace

from modules.codecs.wmbus.drivers.model import Driver, FieldSpec, FixedFields, RegisterWalk

__all__ = ["APATOR_08", "APATOR_16_2", "E_ITN_APA", "E_ITN_APT"]

_EVENTS_10 = dict.fromkeys((0x80, 0x81, 0x82, 0x83, 0x84, 0x86, 0x87), 10)
_EVENTS_OTHER = {0x85: 11, 0x88: 11, 0x8F: 11, 0x8A: 9, 0x8B: 6, 0x8C: 6, 0x8E: 7}
_UNKNOWN_3 = dict.fromkeys([*range(0xB6, 0xC0), *range(0xC0, 0xC8), 0xD0, 0xD3], 3)
_SIZES: dict[int, int] = {
    0x00: 4,  # date
    0x01: 3,  # faults
    0x10: 4,  # total volume
    0xA1: 4,
    0x11: 2,  # flow
    0x40: 6,  # detectors
    0x41: 2,  # battery voltage
    0x42: 4,  # energy
    0x43: 2,  # days since first run
    0x44: 3,
    # History 0x71..0x7C: a count byte, then (low nibble + 1) volumes of 4 bytes.
    **{tag: 1 + ((tag & 0x0F) + 1) * 4 for tag in range(0x71, 0x7D)},
    **_EVENTS_10,
    **_EVENTS_OTHER,
    0xA0: 4,
    0xA2: 1,
    0xA3: 7,
    0xA4: 4,
    0xA5: 1,
    0xA9: 1,
    0xAF: 1,
    0xA6: 3,
    0xA7: 2,
    0xA8: 2,
    0xAA: 2,
    0xAB: 2,
    0xAC: 2,
    0xAD: 2,
    0xB0: 5,
    0xB1: 8,
    0xB2: 16,
    0xB3: 8,
    0xB4: 2,
    0xB5: 16,
    **_UNKNOWN_3,
    0xF0: 4,
}

APATOR_16_2 = Driver(
    name="apator162",
    manufacturer="APA",
    versions=frozenset({0x05}),
    device_types=frozenset({0x06, 0x07}),
    layout=RegisterWalk(
        skip=4 + 3,
        sizes=_SIZES,
        fields={0x10: FieldSpec("total_volume", "m³", exponent=-3)},
        end=0xFF,
        trailer=2,
    ),
    source="AT-WMBUS-16-2 register layout as recorded by the wmbusmeters apator162 driver",
)


_E_ITN = FixedFields(
    (
        FieldSpec("hca_previous_period", None, length=2, offset=3),
        FieldSpec("hca_this_period", None, length=2, offset=7),
        FieldSpec("room_temperature_previous_season", "°C", length=2, offset=11, divisor=256),
        FieldSpec("room_temperature_this_season", "°C", length=2, offset=13, divisor=256),
    ),
    tail=15,
    tail_marker=0xA0,
)
_E_ITN_SOURCE = "Apator E-ITN 30 payload as recorded by the wmbusmeters apatoreitn driver"

E_ITN_APA = Driver(
    name="apatoreitn",
    manufacturer="APA",
    versions=frozenset({0x04}),
    device_types=frozenset({0x08}),
    layout=_E_ITN,
    source=_E_ITN_SOURCE,
)
E_ITN_APT = replace(E_ITN_APA, manufacturer="APT")

_APATOR_08_TYPES = {0x03: 0x03, 0x0F: 0x0F}

APATOR_08 = Driver(
    name="apator08",
    manufacturer="APT",
    versions=frozenset(_APATOR_08_TYPES),
    device_types=frozenset(_APATOR_08_TYPES.values()),
    layout=FixedFields((FieldSpec("total_volume", "m³", exponent=-3, divisor=3),)),
    source="Apator 08 payload as recorded by the wmbusmeters apator08 driver",
)
