"""B METERS Hydrodigit water meters (manufacturer BMT).

Versions 0x13, 0x15 and 0x17, warm (device type 0x06) and cold (0x07) water. The total volume
and the meter's clock are standard records; the manufacturer data after DIF 0x0F starts with a
content byte whose bits say which blocks follow, always in this order: battery (0x01, one byte
whose low nibble codes the voltage), fraud (0x02, type and date, four bytes), leak date (0x80,
three bytes), backflow (0x04, four bytes, litres) and the volume at the end of each month of
the last year (0x10, twelve times three bytes, 0.01 m³, January first; FFFFFF before the module
was fitted). As documented by the wmbusmeters project's hydrodigit driver.
"""

from __future__ import annotations

from decimal import Decimal

from modules.codecs.wmbus.drivers.model import Driver, FieldSpec, FlaggedSections, Section

__all__ = ["HYDRODIGIT"]

# Battery code (low nibble) -> volts; 0, 14 and 15 mean a full battery.
_BATTERY_V = {
    code: Decimal(volts)
    for code, volts in {
        0: "3.7",
        1: "1.9",
        2: "2.1",
        3: "2.2",
        4: "2.3",
        5: "2.4",
        6: "2.5",
        7: "2.65",
        8: "2.8",
        9: "2.9",
        10: "3.05",
        11: "3.2",
        12: "3.35",
        13: "3.5",
        14: "3.7",
        15: "3.7",
    }.items()
}
_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_NOT_MEASURED = 10_000_000  # FFFFFF and anything above 99999.99 m³: no value for that month

HYDRODIGIT = Driver(
    name="hydrodigit",
    manufacturer="BMT",
    versions=frozenset({0x13, 0x15, 0x17}),
    device_types=frozenset({0x06, 0x07}),
    layout=FlaggedSections(
        (
            Section(
                0x01,
                1,
                (FieldSpec("battery_voltage", "V", length=1, mask=0x0F, table=_BATTERY_V),),
            ),
            Section(0x02, 4, ()),  # fraud type and date: kept in the raw record
            Section(0x80, 3, ()),  # leak date: kept in the raw record
            Section(0x04, 4, (FieldSpec("backflow_volume", "m³", exponent=-3),)),
            Section(
                0x10,
                36,
                tuple(
                    FieldSpec(
                        f"volume_end_of_{month}",
                        "m³",
                        exponent=-2,
                        length=3,
                        offset=3 * index,
                        invalid_from=_NOT_MEASURED,
                    )
                    for index, month in enumerate(_MONTHS)
                ),
            ),
        )
    ),
    source="B METERS Hydrodigit manufacturer data as recorded by the wmbusmeters hydrodigit driver",
)
