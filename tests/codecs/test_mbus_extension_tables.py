"""Every VIFE of the first (after VIF 0xFB) and second (after VIF 0xFD) extension tables of
EN 13757-3, checked against the standard's rows.

Each row below is one line of the standard's table: the code range, what it measures, the unit
the row names and the decimal exponent of its lowest code. The rows are written out here as the
standard prints them (unit and exponent in the standard's own unit), and converted to the
decoder's canonical unit by ``_CANONICAL`` (MWh -> kWh, GJ -> MJ, t -> kg, MW -> W, kVAR -> var,
kVA -> VA), so a wrong exponent or unit in the decoder's table fails here, not in a meter."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modules.codecs.mbus.records import decode_records
from modules.codecs.mbus.vif import TIME_UNITS, TIME_UNITS_LONG, fb_table, fd_table, p10

# (standard unit) -> (decoder's unit, exponent to add)
_CANONICAL = {
    "MWh": ("kWh", 3),
    "GJ": ("MJ", 3),
    "GJ/h": ("MJ/h", 3),
    "t": ("kg", 3),
    "MW": ("W", 6),
    "kVAR": ("var", 3),
    "kVA": ("VA", 3),
}

# First extension table (VIF 0xFB): (first, last, name, standard unit, exponent of `first`).
# The exponent rises by one per code inside a row (the n, nn or nnn bits).
FB_ROWS: list[tuple[int, int, str, str | None, int]] = [
    (0x00, 0x01, "energy", "MWh", -1),  # E000 000n  10^(n-1) MWh
    (0x02, 0x03, "reactive_energy", "kvarh", 0),  # E000 001n  10^n kVARh
    (0x04, 0x05, "apparent_energy", "kVAh", 0),  # E000 010n  10^n kVAh
    (0x08, 0x09, "energy", "GJ", -1),  # E000 100n  10^(n-1) GJ
    (0x0C, 0x0F, "energy", "Mcal", -1),  # E000 11nn  10^(nn-1) MCal
    (0x10, 0x11, "volume", "m³", 2),  # E001 000n  10^(n+2) m³
    (0x14, 0x17, "reactive_power", "kVAR", -3),  # E001 01nn  10^(nn-3) kVAR
    (0x18, 0x19, "mass", "t", 2),  # E001 100n  10^(n+2) t
    (0x1A, 0x1B, "relative_humidity", "%", -1),  # E001 101n  10^(n-1) %
    (0x20, 0x20, "volume", "ft³", 0),  # E010 0000  feet³
    (0x21, 0x21, "volume", "ft³", -1),  # E010 0001  0.1 feet³
    (0x22, 0x23, "volume", "gal", -1),  # E010 001n  10^(n-1) US gallon (2004 table)
    (0x24, 0x24, "volume_flow", "gal/min", -3),  # E010 0100  0.001 US gallon/min (2004)
    (0x25, 0x25, "volume_flow", "gal/min", 0),  # E010 0101  1 US gallon/min (2004)
    (0x26, 0x26, "volume_flow", "gal/h", 0),  # E010 0110  1 US gallon/h (2004)
    (0x28, 0x29, "power", "MW", -1),  # E010 100n  10^(n-1) MW
    (0x2A, 0x2A, "phase_angle_voltage_voltage", "°", -1),  # E010 1010  0.1°
    (0x2B, 0x2B, "phase_angle_voltage_current", "°", -1),  # E010 1011  0.1°
    (0x2C, 0x2F, "frequency", "Hz", -3),  # E010 11nn  10^(nn-3) Hz
    (0x30, 0x31, "power", "GJ/h", -1),  # E011 000n  10^(n-1) GJ/h
    (0x34, 0x37, "apparent_power", "kVA", -3),  # E011 01nn  10^(nn-3) kVA
    (0x58, 0x5B, "flow_temperature", "°F", -3),  # E101 10nn  10^(nn-3) °F
    (0x5C, 0x5F, "return_temperature", "°F", -3),  # E101 11nn
    (0x60, 0x63, "temperature_difference", "°F", -3),  # E110 00nn
    (0x64, 0x67, "external_temperature", "°F", -3),  # E110 01nn
    (0x70, 0x73, "temperature_limit", "°F", -3),  # E111 00nn  cold/warm limit
    (0x74, 0x77, "temperature_limit", "°C", -3),  # E111 01nn  cold/warm limit
    (0x78, 0x7F, "max_power_count", "W", -3),  # E111 1nnn  cumulative count max power
]

# Second extension table (VIF 0xFD): rows whose unit steps through a list, and named codes.
FD_SCALED: list[tuple[int, int, str, str, int]] = [
    (0x00, 0x03, "credit", "currency", -3),  # E000 00nn  10^(nn-3) currency units
    (0x04, 0x07, "debit", "currency", -3),  # E000 01nn
    (0x40, 0x4F, "voltage", "V", -9),  # E100 nnnn  10^(nnnn-9) V
    (0x50, 0x5F, "current", "A", -12),  # E101 nnnn  10^(nnnn-12) A
]
FD_TIMED: list[tuple[int, str, tuple[str, ...]]] = [
    (0x24, "storage_interval", TIME_UNITS),  # E010 01nn  s, min, h, d
    (0x2C, "duration_since_last_readout", TIME_UNITS),  # E010 11nn
    (0x34, "tariff_period", TIME_UNITS),  # E011 01nn
    (0x3C, "transmission_period", TIME_UNITS),  # E011 11nn  nominal transmissions
    (0x68, "duration_since_last_cumulation", TIME_UNITS_LONG),  # E110 10pp  h, d, month, a
    (0x6C, "battery_operating_time", TIME_UNITS_LONG),  # E110 11pp
]
FD_NAMED: dict[int, tuple[str, str | None]] = {
    0x08: ("access_number", None),
    0x09: ("medium", None),
    0x0A: ("manufacturer", None),
    0x0B: ("parameter_set_id", None),
    0x0C: ("model_version", None),
    0x0D: ("hardware_version", None),
    0x0E: ("firmware_version", None),
    0x0F: ("software_version", None),
    0x10: ("customer_location", None),
    0x11: ("customer", None),
    0x12: ("access_code_user", None),
    0x13: ("access_code_operator", None),
    0x14: ("access_code_system_operator", None),
    0x15: ("access_code_developer", None),
    0x16: ("password", None),
    0x17: ("error_flags", None),
    0x18: ("error_mask", None),
    0x19: ("security_key", None),
    0x1A: ("digital_output", None),
    0x1B: ("digital_input", None),
    0x1C: ("baud_rate", "Bd"),
    0x1D: ("response_delay_time", "bit times"),
    0x1E: ("retry", None),
    0x1F: ("remote_control", None),
    0x20: ("first_storage_number", None),
    0x21: ("last_storage_number", None),
    0x22: ("storage_block_size", None),
    0x23: ("tariff_subunit_descriptor", None),
    0x28: ("storage_interval", "month"),
    0x29: ("storage_interval", "a"),
    0x2A: ("operator_specific_data", None),
    0x2B: ("time_point_second", "s"),
    0x30: ("tariff_start", None),
    # E011 00nn with nn = 01..11: duration of tariff in minutes, hours, days
    0x31: ("tariff_duration", "min"),
    0x32: ("tariff_duration", "h"),
    0x33: ("tariff_duration", "d"),
    0x38: ("tariff_period", "month"),
    0x39: ("tariff_period", "a"),
    0x3A: ("dimensionless", None),
    0x3B: ("wireless_container", None),
    0x60: ("reset_counter", None),
    0x61: ("cumulation_counter", None),
    0x62: ("control_signal", None),
    0x63: ("day_of_week", None),
    0x64: ("week_number", None),
    0x65: ("day_change_time_point", None),
    0x66: ("parameter_activation_state", None),
    0x67: ("special_supplier_information", None),
    0x70: ("battery_change_datetime", None),
    0x71: ("rf_level", "dBm"),
    0x72: ("daylight_saving", None),
    0x73: ("listening_window_management", None),
    0x74: ("remaining_battery_lifetime", "d"),
    0x75: ("meter_stopped_count", None),
    0x76: ("manufacturer_data_container", None),
}


def _fb_expected() -> dict[int, tuple[str, str | None, Decimal]]:
    expected: dict[int, tuple[str, str | None, Decimal]] = {}
    for first, last, name, unit, exponent in FB_ROWS:
        our_unit, shift = _CANONICAL.get(unit or "", (unit, 0))
        for code in range(first, last + 1):
            expected[code] = (name, our_unit, p10(exponent + shift + code - first))
    return expected


def _fd_expected() -> dict[int, tuple[str, str | None, Decimal]]:
    expected: dict[int, tuple[str, str | None, Decimal]] = {}
    for first, last, name, unit, exponent in FD_SCALED:
        for code in range(first, last + 1):
            expected[code] = (name, unit, p10(exponent + code - first))
    for first, name, units in FD_TIMED:
        for step, unit in enumerate(units):
            expected[first + step] = (name, unit, Decimal(1))
    for code, (name, named_unit) in FD_NAMED.items():
        expected[code] = (name, named_unit, Decimal(1))
    return expected


FB_EXPECTED = _fb_expected()
FD_EXPECTED = _fd_expected()


@pytest.mark.parametrize("code", range(0x80))
def test_first_extension_table_entry(code: int) -> None:
    quantity = fb_table(code)
    # The extension bit (0x80) does not change the meaning.
    assert fb_table(code | 0x80) == quantity
    if code not in FB_EXPECTED:
        assert quantity.name == f"reserved_fb_{code:02x}", quantity
        return
    name, unit, scale = FB_EXPECTED[code]
    assert (quantity.name, quantity.unit, quantity.scale) == (name, unit, scale)


@pytest.mark.parametrize("code", range(0x80))
def test_second_extension_table_entry(code: int) -> None:
    quantity = fd_table(code)
    assert fd_table(code | 0x80) == quantity
    if code not in FD_EXPECTED:
        assert quantity.name == f"reserved_fd_{code:02x}", quantity
        return
    name, unit, scale = FD_EXPECTED[code]
    assert (quantity.name, quantity.unit, quantity.scale) == (name, unit, scale)


def test_the_rows_cover_what_the_standard_leaves_reserved_and_nothing_else() -> None:
    reserved_fb = [c for c in range(0x80) if c not in FB_EXPECTED]
    assert reserved_fb == [
        0x06,
        0x07,
        0x0A,
        0x0B,
        0x12,
        0x13,
        *range(0x1C, 0x20),
        0x27,
        0x32,
        0x33,
        *range(0x38, 0x58),
        *range(0x68, 0x70),
    ]
    reserved_fd = [c for c in range(0x80) if c not in FD_EXPECTED]
    assert reserved_fd == [*range(0x77, 0x80)]


@pytest.mark.parametrize(
    ("record", "name", "value", "unit"),
    [
        # DIF (int16/int32), VIF 0xFB or 0xFD, one VIFE (extension bit clear), data LSB first.
        ("04FB02" + "39300000", "reactive_energy", Decimal(12345), "kvarh"),
        ("04FB05" + "39300000", "apparent_energy", Decimal(123450), "kVAh"),
        ("04FB0D" + "39300000", "energy", Decimal(12345), "Mcal"),
        ("02FB15" + "E803", "reactive_power", Decimal(10000), "var"),
        ("02FB35" + "E803", "apparent_power", Decimal(10000), "VA"),
        ("02FB2E" + "F401", "frequency", Decimal("50.0"), "Hz"),
        ("02FB24" + "E803", "volume_flow", Decimal("1.000"), "gal/min"),
        ("04FB7B" + "10270000", "max_power_count", Decimal(10000), "W"),
        ("02FD48" + "E803", "voltage", Decimal(100), "V"),
        ("02FD59" + "E803", "current", Decimal(1), "A"),
        ("01FD61" + "07", "cumulation_counter", 7, None),
    ],
)
def test_extension_records_decode_with_the_table_unit(
    record: str, name: str, value: Decimal | int, unit: str | None
) -> None:
    (decoded,) = decode_records(bytes.fromhex(record))
    assert decoded.unit == unit
    assert decoded.value == value
    assert decoded.name.startswith(name), decoded.name
