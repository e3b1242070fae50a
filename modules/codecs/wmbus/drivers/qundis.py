"""Qundis Q water 5.5 water meters (manufacturer QDS), the walk-by telegram.

The meters send standard records most of the time (total, the volume at the year's end and at
the last due date, with their dates) and, now and then, a walk-by telegram (CI 0x78) whose
values sit in one manufacturer record (DIF 0x0D, VIF 0xFF 0x5F, variable length): after 9 bytes
of status comes the marker 0x13 (the VIF of litres), then the error date (type G), the total
(8-digit BCD litres), the year-end date and volume, and the due date and volume. As documented
by the wmbusmeters project's qwaterv2 driver.
"""

from __future__ import annotations

from modules.codecs.wmbus.drivers.model import Driver, FieldSpec, FixedFields

__all__ = ["Q_WATER_5_5"]


def _litres(name: str, offset: int) -> FieldSpec:
    return FieldSpec(name, "m³", exponent=-3, length=4, encoding="bcd_le", offset=offset)


def _date(name: str, offset: int) -> FieldSpec:
    return FieldSpec(name, None, length=2, encoding="date_g", offset=offset)


Q_WATER_5_5 = Driver(
    name="qwaterv2",
    manufacturer="QDS",
    versions=frozenset({0x16, 0x17, 0x18, 0x19, 0x1A, 0x1D, 0x33, 0x35, 0x36}),
    device_types=frozenset({0x06, 0x07, 0x37}),
    layout=FixedFields(
        (
            _date("error_date", 10),
            _litres("total_volume", 12),
            _date("year_end_date", 16),
            _litres("volume_at_year_end", 18),
            _date("due_date", 22),
            _litres("volume_at_due_date", 24),
        ),
        expect=((9, b"\x13"),),
    ),
    source="Qundis Q water 5.5 walk-by record as recorded by the wmbusmeters qwaterv2 driver",
)
