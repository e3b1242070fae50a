"""Zenner water meters.

EDC B.One radio module (manufacturer ZRI, version 0x0B, device type 0x16, cold water): after
DIF 0x0F, bytes 0-3 are status flags, bytes 4-7 this month's consumption and bytes 8-11 the
total, both little-endian counts of 1/256000 m³. As documented by the wmbusmeters project's
zenner0b driver.
"""

from __future__ import annotations

from modules.codecs.wmbus.drivers.model import Driver, FieldSpec, FixedFields

__all__ = ["EDC_B_ONE"]

_COUNT_PER_M3 = 256_000

EDC_B_ONE = Driver(
    name="zenner0b",
    manufacturer="ZRI",
    versions=frozenset({0x0B}),
    device_types=frozenset({0x16}),
    layout=FixedFields(
        (
            FieldSpec("volume_this_month", "m³", offset=4, divisor=_COUNT_PER_M3),
            FieldSpec("total_volume", "m³", offset=8, divisor=_COUNT_PER_M3),
        )
    ),
    source="Zenner EDC B.One payload as recorded by the wmbusmeters zenner0b driver",
)
