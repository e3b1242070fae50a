"""M-Bus value information tables (EN 13757-3:2018 tables 10-16): VIF, FB/FD extensions, VIFEs.

Every quantity comes out in one canonical unit per kind (energy kWh, volume m³, power W,
flow m³/h ...) so a meter's records do not change unit when it changes resolution; ``scale``
is the exact decimal factor from the raw wire number to that unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

__all__ = [
    "MEDIUMS",
    "TIME_UNITS",
    "Kind",
    "Quantity",
    "fb_table",
    "fd_table",
    "medium_name",
    "p10",
    "primary",
]

# number: a measured value; time: a date/time type chosen by the data length (G, F, I, J);
# ident: an identification kept as text (leading zeros matter); bits: unsigned flags.
Kind = Literal["number", "time", "ident", "bits"]


def p10(exponent: int) -> Decimal:
    """10 to the power ``exponent``, exactly."""
    return Decimal(1).scaleb(exponent)


_ONE = Decimal(1)
TIME_UNITS = ("s", "min", "h", "d")
TIME_UNITS_LONG = ("h", "d", "month", "a")


@dataclass(frozen=True, slots=True)
class Quantity:
    """What a VIF says: the quantity's name, its canonical unit and the raw-to-unit factor."""

    name: str
    unit: str | None = None
    scale: Decimal = _ONE
    kind: Kind = "number"
    family: str = ""  # for the OBIS mapping: energy, power, reactive_energy, voltage, ...


MEDIUMS: dict[int, str] = {
    0x00: "other",
    0x01: "oil",
    0x02: "electricity",
    0x03: "gas",
    0x04: "heat",
    0x05: "steam",
    0x06: "warm water",
    0x07: "water",
    0x08: "heat cost allocator",
    0x09: "compressed air",
    0x0A: "cooling (outlet)",
    0x0B: "cooling (inlet)",
    0x0C: "heat (inlet)",
    0x0D: "heat/cooling",
    0x0E: "bus/system component",
    0x0F: "unknown",
    0x10: "irrigation water",
    0x11: "water data logger",
    0x12: "gas data logger",
    0x13: "gas converter",
    0x14: "calorific value",
    0x15: "hot water",
    0x16: "cold water",
    0x17: "dual register water",
    0x18: "pressure",
    0x19: "a/d converter",
    0x1A: "smoke detector",
    0x1B: "room sensor",
    0x1C: "gas detector",
    0x20: "breaker",
    0x21: "valve",
    0x25: "customer unit",
    0x28: "waste water",
    0x29: "garbage",
    0x2A: "carbon dioxide",
    0x31: "communication controller",
    0x32: "unidirectional repeater",
    0x33: "bidirectional repeater",
    0x36: "radio converter (system side)",
    0x37: "radio converter (meter side)",
    0x38: "wired adapter",
}


def medium_name(code: int) -> str:
    """The device type (medium) byte as text."""
    return MEDIUMS.get(code, f"reserved (0x{code:02x})")


def primary(vif: int) -> Quantity:
    """The primary VIF table (EN 13757-3 table 10), extension bit ignored."""
    code = vif & 0x7F
    n3, n2 = code & 0x07, code & 0x03
    match code >> 3:
        case 0x0:
            return Quantity("energy", "kWh", p10(n3 - 6), family="energy")
        case 0x1:
            return Quantity("energy", "MJ", p10(n3 - 6), family="energy")
        case 0x2:
            return Quantity("volume", "m³", p10(n3 - 6))
        case 0x3:
            return Quantity("mass", "kg", p10(n3 - 3))
        case 0x4:
            name = "on_time" if code < 0x24 else "operating_time"
            return Quantity(name, TIME_UNITS[n2])
        case 0x5:
            return Quantity("power", "W", p10(n3 - 3), family="power")
        case 0x6:
            return Quantity("power", "MJ/h", p10(n3 - 6))
        case 0x7:
            return Quantity("volume_flow", "m³/h", p10(n3 - 6))
        case 0x8:
            return Quantity("volume_flow", "m³/h", 60 * p10(n3 - 7))
        case 0x9:
            return Quantity("volume_flow", "m³/h", 3600 * p10(n3 - 9))
        case 0xA:
            return Quantity("mass_flow", "kg/h", p10(n3 - 3))
        case 0xB:
            name = "flow_temperature" if code < 0x5C else "return_temperature"
            return Quantity(name, "°C", p10(n2 - 3))
        case 0xC:
            if code < 0x64:
                return Quantity("temperature_difference", "K", p10(n2 - 3))
            return Quantity("external_temperature", "°C", p10(n2 - 3))
        case 0xD:
            if code < 0x6C:
                return Quantity("pressure", "bar", p10(n2 - 3))
            return _PRIMARY_6C[code - 0x6C]
        case 0xE:
            name = "averaging_duration" if code < 0x74 else "actuality_duration"
            return Quantity(name, TIME_UNITS[n2])
    return _PRIMARY_78[code - 0x78]


_PRIMARY_6C = (
    Quantity("date", kind="time"),
    Quantity("datetime", kind="time"),
    Quantity("hca"),
    Quantity("reserved_vif_6f"),
)
_PRIMARY_78 = (
    Quantity("fabrication_no", kind="ident"),
    Quantity("enhanced_id", kind="ident"),
    Quantity("bus_address"),
    Quantity("vif_fb"),  # never used: 0x7B/0xFB selects fb_table
    Quantity("plain_text"),  # never used: the unit text follows
    Quantity("vif_fd"),  # never used: 0x7D/0xFD selects fd_table
    Quantity("any_vif"),
    Quantity("manufacturer_specific"),
)


def fb_table(vife: int) -> Quantity:
    """The first VIF extension table, after VIF 0xFB (EN 13757-3 table 12)."""
    code = vife & 0x7F
    n1, n2, n3 = code & 0x01, code & 0x03, code & 0x07
    if code <= 0x01:
        return Quantity("energy", "kWh", p10(n1 + 2), family="energy")
    if code <= 0x03:
        return Quantity("reactive_energy", "kvarh", p10(n1), family="reactive_energy")
    if code <= 0x05:
        return Quantity("apparent_energy", "kVAh", p10(n1), family="apparent_energy")
    if 0x08 <= code <= 0x09:
        return Quantity("energy", "MJ", p10(n1 + 2), family="energy")
    if 0x0C <= code <= 0x0F:
        return Quantity("energy", "Mcal", p10(n2 - 1), family="energy")
    if 0x10 <= code <= 0x11:
        return Quantity("volume", "m³", p10(n1 + 2))
    if 0x14 <= code <= 0x17:
        return Quantity("reactive_power", "var", p10(n2), family="reactive_power")
    if 0x18 <= code <= 0x19:
        return Quantity("mass", "kg", p10(n1 + 5))
    if 0x1A <= code <= 0x1B:
        return Quantity("relative_humidity", "%", p10(n1 - 1))
    if code == 0x20:
        return Quantity("volume", "ft³")
    if code == 0x21:
        return Quantity("volume", "ft³", p10(-1))
    # US gallon volume and volume flow (EN 13757-3:2004 table; reserved since, yet still sent by
    # meters built to it); Home Assistant spells the units gal, gal/min and gal/h.
    if 0x22 <= code <= 0x23:
        return Quantity("volume", "gal", p10(n1 - 1))
    if code == 0x24:
        return Quantity("volume_flow", "gal/min", p10(-3))
    if code == 0x25:
        return Quantity("volume_flow", "gal/min")
    if code == 0x26:
        return Quantity("volume_flow", "gal/h")
    if 0x28 <= code <= 0x29:
        return Quantity("power", "W", p10(n1 + 5), family="power")
    if code == 0x2A:
        return Quantity("phase_angle_voltage_voltage", "°", p10(-1))
    if code == 0x2B:
        return Quantity("phase_angle_voltage_current", "°", p10(-1))
    if 0x2C <= code <= 0x2F:
        return Quantity("frequency", "Hz", p10(n2 - 3), family="frequency")
    if 0x30 <= code <= 0x31:
        return Quantity("power", "MJ/h", p10(n1 + 2))
    if 0x34 <= code <= 0x37:
        return Quantity("apparent_power", "VA", p10(n2), family="apparent_power")
    if 0x58 <= code <= 0x67:
        name = ("flow_temperature", "return_temperature", "temperature_difference")
        label = name[(code - 0x58) >> 2] if code < 0x64 else "external_temperature"
        return Quantity(label, "°F", p10(n2 - 3))
    if 0x70 <= code <= 0x73:
        return Quantity("temperature_limit", "°F", p10(n2 - 3))
    if 0x74 <= code <= 0x77:
        return Quantity("temperature_limit", "°C", p10(n2 - 3))
    if code >= 0x78:
        return Quantity("max_power_count", "W", p10(n3 - 3))
    return Quantity(f"reserved_fb_{code:02x}")


_FD_NAMED: dict[int, Quantity] = {
    0x08: Quantity("access_number"),
    0x09: Quantity("medium"),
    0x0A: Quantity("manufacturer"),
    0x0B: Quantity("parameter_set_id", kind="ident"),
    0x0C: Quantity("model_version"),
    0x0D: Quantity("hardware_version"),
    0x0E: Quantity("firmware_version"),
    0x0F: Quantity("software_version"),
    0x10: Quantity("customer_location", kind="ident"),
    0x11: Quantity("customer", kind="ident"),
    0x12: Quantity("access_code_user"),
    0x13: Quantity("access_code_operator"),
    0x14: Quantity("access_code_system_operator"),
    0x15: Quantity("access_code_developer"),
    0x16: Quantity("password"),
    0x17: Quantity("error_flags", kind="bits"),
    0x18: Quantity("error_mask", kind="bits"),
    0x19: Quantity("security_key"),
    0x1A: Quantity("digital_output", kind="bits"),
    0x1B: Quantity("digital_input", kind="bits"),
    0x1C: Quantity("baud_rate", "Bd"),
    0x1D: Quantity("response_delay_time", "bit times"),
    0x1E: Quantity("retry"),
    0x1F: Quantity("remote_control", kind="bits"),
    0x20: Quantity("first_storage_number"),
    0x21: Quantity("last_storage_number"),
    0x22: Quantity("storage_block_size"),
    0x23: Quantity("tariff_subunit_descriptor"),
    0x28: Quantity("storage_interval", "month"),
    0x29: Quantity("storage_interval", "a"),
    0x2A: Quantity("operator_specific_data"),
    0x2B: Quantity("time_point_second", "s"),
    0x30: Quantity("tariff_start", kind="time"),
    0x38: Quantity("tariff_period", "month"),
    0x39: Quantity("tariff_period", "a"),
    0x3A: Quantity("dimensionless"),
    0x3B: Quantity("wireless_container"),
    0x60: Quantity("reset_counter"),
    0x61: Quantity("cumulation_counter"),
    0x62: Quantity("control_signal", kind="bits"),
    0x63: Quantity("day_of_week"),
    0x64: Quantity("week_number"),
    0x65: Quantity("day_change_time_point", kind="time"),
    0x66: Quantity("parameter_activation_state", kind="bits"),
    0x67: Quantity("special_supplier_information"),
    0x70: Quantity("battery_change_datetime", kind="time"),
    0x71: Quantity("rf_level", "dBm"),
    0x72: Quantity("daylight_saving", kind="time"),
    0x73: Quantity("listening_window_management"),
    0x74: Quantity("remaining_battery_lifetime", "d"),
    0x75: Quantity("meter_stopped_count"),
    0x76: Quantity("manufacturer_data_container"),
}


def fd_table(vife: int) -> Quantity:
    """The second VIF extension table, after VIF 0xFD (EN 13757-3 table 14)."""
    code = vife & 0x7F
    n2 = code & 0x03
    if code <= 0x03:
        return Quantity("credit", "currency", p10(n2 - 3))
    if code <= 0x07:
        return Quantity("debit", "currency", p10(n2 - 3))
    if code in _FD_NAMED:
        return _FD_NAMED[code]
    if 0x24 <= code <= 0x27:
        return Quantity("storage_interval", TIME_UNITS[n2])
    if 0x2C <= code <= 0x2F:
        return Quantity("duration_since_last_readout", TIME_UNITS[n2])
    if 0x31 <= code <= 0x33:
        return Quantity("tariff_duration", TIME_UNITS[n2])
    if 0x34 <= code <= 0x37:
        return Quantity("tariff_period", TIME_UNITS[n2])
    if 0x3C <= code <= 0x3F:
        return Quantity("transmission_period", TIME_UNITS[n2])
    if 0x40 <= code <= 0x4F:
        return Quantity("voltage", "V", p10((code & 0x0F) - 9), family="voltage")
    if 0x50 <= code <= 0x5F:
        return Quantity("current", "A", p10((code & 0x0F) - 12), family="current")
    if 0x68 <= code <= 0x6B:
        return Quantity("duration_since_last_cumulation", TIME_UNITS_LONG[n2])
    if 0x6C <= code <= 0x6F:
        return Quantity("battery_operating_time", TIME_UNITS_LONG[n2])
    return Quantity(f"reserved_fd_{code:02x}")
