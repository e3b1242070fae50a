"""KMP registers: the ids (382 electricity set with OBIS codes, heat/water), units, numbers.

A register value is ``unit(1) | len(1) | SI SE e5..e0 (1) | mantissa (len bytes)`` with
value = (-1)^SI x mantissa x 10^((-1)^SE x e), decoded exactly as a Decimal.

Sources: bsdphk/PyKamstrup (382J), bipsendk/kamstrup-382Lx7 (382Lx7, 19 registers),
Hal9k-dk/kamstrup, gertvdijk/PyKMP ``constants.py`` and the MULTICAL technical descriptions.
Register ids are one namespace across Kamstrup meters, so one table serves them all; only the
electricity quantities carry OBIS codes (IEC 62056-61), the engine's register keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from modules.codecs.errors import FrameError

__all__ = [
    "CLOCK",
    "DATE",
    "DEFAULT_382_REGISTERS",
    "REGISTERS",
    "REGISTERS_BY_NAME",
    "UNITS",
    "UNIT_HH_MM_SS",
    "UNIT_YY_MM_DD",
    "Register",
    "chunked",
    "combine_date_time",
    "decode_number",
    "encode_number",
    "interpret",
    "register_id",
]

MAX_REGISTERS_PER_REQUEST = 8  # GetRegister carries at most 8 ids (PyKMP NUM_REGISTERS_MAX)
_EXPONENT_MAX = 0x3F


@dataclass(frozen=True, slots=True)
class Register:
    """One KMP register: its id, a stable snake_case name, a description and its OBIS code."""

    id: int
    name: str
    description: str
    obis: str | None = None
    hires: bool = False  # a higher-resolution copy of another register with the same OBIS


_ELECTRICITY: tuple[Register, ...] = (
    Register(0x0001, "energy_import", "Active energy A+", "1-0:1.8.0"),
    Register(0x0002, "energy_export", "Active energy A-", "1-0:2.8.0"),
    Register(0x000D, "energy_import_hires", "Active energy A+, high resolution", "1-0:1.8.0", True),
    Register(0x000E, "energy_export_hires", "Active energy A-, high resolution", "1-0:2.8.0", True),
    Register(0x0027, "max_power_import", "Peak power P+max", "1-0:1.6.0"),
    Register(0x03FF, "power_import", "Active power P+", "1-0:1.7.0"),
    Register(0x0400, "power_export", "Active power P-", "1-0:2.7.0"),
    Register(0x041E, "voltage_l1", "Voltage L1", "1-0:32.7.0"),
    Register(0x041F, "voltage_l2", "Voltage L2", "1-0:52.7.0"),
    Register(0x0420, "voltage_l3", "Voltage L3", "1-0:72.7.0"),
    Register(0x0434, "current_l1", "Current L1", "1-0:31.7.0"),
    Register(0x0435, "current_l2", "Current L2", "1-0:51.7.0"),
    Register(0x0436, "current_l3", "Current L3", "1-0:71.7.0"),
    Register(0x0438, "power_import_l1", "Active power P+ L1", "1-0:21.7.0"),
    Register(0x0439, "power_import_l2", "Active power P+ L2", "1-0:41.7.0"),
    Register(0x043A, "power_import_l3", "Active power P+ L3", "1-0:61.7.0"),
    Register(0x0540, "power_export_l1", "Active power P- L1", "1-0:22.7.0"),
    Register(0x0541, "power_export_l2", "Active power P- L2", "1-0:42.7.0"),
    Register(0x0542, "power_export_l3", "Active power P- L3", "1-0:62.7.0"),
)

_GENERAL: tuple[Register, ...] = (
    Register(1001, "serial_number", "Serial number (fabrication no.)", "0-0:96.1.0"),
    Register(1002, "clock", "Meter clock, hhmmss"),
    Register(1003, "date", "Meter date, YYMMDD"),
    Register(1004, "hour_counter", "Operating hour counter", "0-0:96.8.0"),
    Register(1005, "software_edition", "Software edition"),
    Register(1010, "customer_number", "Customer number (8 least significant digits)"),
    Register(1032, "operation_mode", "Operation mode"),
)

# Heat, cooling and water meters (MULTICAL, flowIQ): names only, OBIS is for electricity.
_HEAT_WATER: tuple[tuple[int, str, str], ...] = (
    (60, "heat_energy_e1", "Heat energy E1"),
    (61, "inlet_energy_e4", "Inlet energy E4"),
    (62, "outlet_energy_e5", "Outlet energy E5"),
    (63, "cooling_energy_e3", "Cooling energy E3"),
    (64, "tariff_ta2", "Tariff register TA2"),
    (65, "tariff_ta3", "Tariff register TA3"),
    (66, "tariff_limit_2", "Tariff limit TL2"),
    (67, "tariff_limit_3", "Tariff limit TL3"),
    (68, "volume_v1", "Volume V1"),
    (69, "volume_v2", "Volume V2"),
    (72, "mass_m1", "Mass M1"),
    (73, "mass_m2", "Mass M2"),
    (74, "flow_v1", "Flow V1"),
    (75, "flow_v2", "Flow V2"),
    (80, "heat_power", "Heat power"),
    (84, "pulse_input_a1", "Pulse input A1"),
    (85, "pulse_input_b1", "Pulse input B1"),
    (86, "temperature_t1", "Inlet temperature t1"),
    (87, "temperature_t2", "Outlet temperature t2"),
    (88, "temperature_t3", "Temperature t3"),
    (89, "temperature_difference", "Temperature difference t1-t2"),
    (91, "pressure_p1", "Pressure P1"),
    (92, "pressure_p2", "Pressure P2"),
    (94, "heat_energy_e2", "Heat energy E2"),
    (95, "tap_water_energy_e6", "Tap water energy E6"),
    (96, "tap_water_energy_e7", "Tap water energy E7"),
    (97, "temp1_volume_e8", "Volume x t1, E8"),
    (98, "target_date", "Target date (reading date)"),
    (99, "info_code", "Info code"),
    (104, "meter_number_vb", "Meter number for VB"),
    (110, "temp2_volume_e9", "Volume x t2, E9"),
    (112, "customer_number_high", "Customer number (8 most significant digits)"),
    (113, "info_event_counter", "Info event counter"),
    (114, "meter_number_va", "Meter number for VA"),
    (122, "temperature_t4", "Temperature t4"),
    (123, "max_flow_date_year", "Date of this year's max. flow"),
    (124, "max_flow_year", "This year's max. flow"),
    (125, "min_flow_date_year", "Date of this year's min. flow"),
    (126, "min_flow_year", "This year's min. flow"),
    (127, "max_power_date_year", "Date of this year's max. power"),
    (128, "max_power_year", "This year's max. power"),
    (129, "min_power_date_year", "Date of this year's min. power"),
    (130, "min_power_year", "This year's min. power"),
    (138, "max_flow_date_month", "Date of this month's max. flow"),
    (139, "max_flow_month", "This month's max. flow"),
    (140, "min_flow_date_month", "Date of this month's min. flow"),
    (141, "min_flow_month", "This month's min. flow"),
    (142, "max_power_date_month", "Date of this month's max. power"),
    (143, "max_power_month", "This month's max. power"),
    (144, "min_power_date_month", "Date of this month's min. power"),
    (145, "min_power_month", "This month's min. power"),
    (146, "avg_temperature_t1_year", "Year-to-date average of t1"),
    (147, "avg_temperature_t2_year", "Year-to-date average of t2"),
    (149, "avg_temperature_t1_month", "Month-to-date average of t1"),
    (150, "avg_temperature_t2_month", "Month-to-date average of t2"),
    (152, "program_number", "Program number"),
    (153, "config_number_1", "Config number 1"),
    (154, "software_checksum", "Software checksum"),
    (168, "config_number_2", "Config number 2"),
    (175, "error_hour_counter", "Error hour counter"),
    (184, "mbus_primary_address", "M-Bus primary address, module 1"),
    (185, "mbus_secondary_address", "M-Bus secondary address, module 1"),
    (239, "volume_v1_hires", "Volume V1, high resolution"),
    (266, "heat_energy_e1_hires", "Heat energy E1, high resolution"),
    (267, "cooling_energy_e3_hires", "Cooling energy E3, high resolution"),
    (404, "meter_type", "Meter type"),
    (582, "battery_days_left", "Battery days left (flowIQ)"),
)

REGISTERS: dict[int, Register] = {
    register.id: register
    for register in (
        *_ELECTRICITY,
        *_GENERAL,
        *(Register(rid, name, text) for rid, name, text in _HEAT_WATER),
    )
}
REGISTERS_BY_NAME: dict[str, Register] = {r.name: r for r in REGISTERS.values()}

CLOCK = 1002
DATE = 1003

# What a 382 poll reads by default: the high-resolution totals stand in for the low ones.
DEFAULT_382_REGISTERS: tuple[int, ...] = (
    0x000D,
    0x000E,
    0x03FF,
    0x0400,
    0x0438,
    0x0439,
    0x043A,
    0x0540,
    0x0541,
    0x0542,
    0x041E,
    0x041F,
    0x0420,
    0x0434,
    0x0435,
    0x0436,
    0x0027,
    1004,
)


def register_id(key: int | str) -> int:
    """The register id for a name ("energy_import"), a decimal ("1023") or hex ("0x03FF") id."""
    if isinstance(key, bool):
        raise ValueError(f"not a register: {key!r}")
    if isinstance(key, int):
        number = key
    else:
        text = key.strip()
        name = text.lower().replace("-", "_").replace(" ", "_")
        if name in REGISTERS_BY_NAME:
            return REGISTERS_BY_NAME[name].id
        try:
            number = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
        except ValueError:
            known = ", ".join(sorted(REGISTERS_BY_NAME))
            raise ValueError(f"unknown KMP register {key!r} (names: {known})") from None
    if not 0 <= number <= 0xFFFF:
        raise ValueError(f"KMP register id {number} is outside 0..65535")
    return number


def chunked(registers: Iterable[int]) -> list[tuple[int, ...]]:
    """Register ids in GetRegister-sized groups of at most 8, in order, without duplicates."""
    unique = list(dict.fromkeys(registers))
    return [
        tuple(unique[start : start + MAX_REGISTERS_PER_REQUEST])
        for start in range(0, len(unique), MAX_REGISTERS_PER_REQUEST)
    ]


# ---------------------------------------------------------------- units and numbers

# KMP unit code -> (KMP's own name, Home Assistant unit or None, factor to that unit).
# Identical in bsdphk/PyKamstrup, golles/ha-kamstrup_403, PyKMP and ESPHome, except that
# PyKMP (checked against the Kamstrup document) reads 21 as W and 25 as var.
UNITS: dict[int, tuple[str, str | None, int]] = {
    0: ("number", None, 1),
    1: ("Wh", "Wh", 1),
    2: ("kWh", "kWh", 1),
    3: ("MWh", "MWh", 1),
    4: ("GWh", "GWh", 1),
    5: ("J", "J", 1),
    6: ("kJ", "kJ", 1),
    7: ("MJ", "MJ", 1),
    8: ("GJ", "GJ", 1),
    9: ("Cal", "cal", 1),
    10: ("kCal", "kcal", 1),
    11: ("Mcal", "Mcal", 1),
    12: ("Gcal", "Gcal", 1),
    13: ("varh", "varh", 1),
    14: ("kvarh", "kvarh", 1),
    15: ("Mvarh", "Mvarh", 1),
    16: ("Gvarh", "Gvarh", 1),
    17: ("VAh", "VAh", 1),
    18: ("kVAh", "kVAh", 1),
    19: ("MVAh", "MVAh", 1),
    20: ("GVAh", "GVAh", 1),
    21: ("W", "W", 1),
    22: ("kW", "kW", 1),
    23: ("MW", "MW", 1),
    24: ("GW", "GW", 1),
    25: ("var", "var", 1),
    26: ("kvar", "kvar", 1),
    27: ("Mvar", "Mvar", 1),
    28: ("Gvar", "Gvar", 1),
    29: ("VA", "VA", 1),
    30: ("kVA", "kVA", 1),
    31: ("MVA", "MVA", 1),
    32: ("GVA", "GVA", 1),
    33: ("V", "V", 1),
    34: ("A", "A", 1),
    35: ("kV", "kV", 1),
    36: ("kA", "kA", 1),
    37: ("°C", "°C", 1),
    38: ("K", "K", 1),
    39: ("l", "L", 1),
    40: ("m³", "m³", 1),
    41: ("l/h", "L/h", 1),
    42: ("m³/h", "m³/h", 1),
    43: ("m³×°C", "m³·°C", 1),
    44: ("ton", "t", 1),
    45: ("ton/h", "t/h", 1),
    46: ("h", "h", 1),
    47: ("hh:mm:ss", None, 1),
    48: ("yy:mm:dd", None, 1),
    49: ("yyyy:mm:dd", None, 1),
    50: ("mm:dd", None, 1),
    51: ("number", None, 1),
    52: ("bar", "bar", 1),
    53: ("RTC", None, 1),
    54: ("ASCII", None, 1),
    55: ("m³×10", "m³", 10),
    56: ("ton×10", "t", 10),
    57: ("GJ×10", "GJ", 10),
    58: ("minutes", "min", 1),
    59: ("bitfield", None, 1),
    60: ("s", "s", 1),
    61: ("ms", "ms", 1),
    62: ("days", "d", 1),
    63: ("RTC-Q", None, 1),
    64: ("date-time", None, 1),
    65: ("imp/l", "imp/L", 1),
    66: ("l/imp", "L/imp", 1),
    85: ("%RH", "%", 1),
    86: ("%O₂", "%", 1),
    87: ("m/s", "m/s", 1),
    88: ("kJ/kg", "kJ/kg", 1),
    89: ("pH", "pH", 1),
    90: ("g/kg", "g/kg", 1),
}
UNIT_HH_MM_SS, UNIT_YY_MM_DD, _UNIT_YYYY_MM_DD, _UNIT_MM_DD, _UNIT_ASCII = 47, 48, 49, 50, 54
# The units whose values read as text (dates, times, ASCII) when they are whole numbers.
_TEXT_UNITS = frozenset((UNIT_HH_MM_SS, UNIT_YY_MM_DD, _UNIT_YYYY_MM_DD, _UNIT_MM_DD, _UNIT_ASCII))


def decode_number(data: bytes, offset: int = 0) -> tuple[Decimal, int]:
    """A KMP number ``len | SI SE e5..e0 | mantissa`` at offset -> (exact value, bytes used)."""
    if len(data) < offset + 2:
        raise FrameError("number header cut short", offset=offset, code="bad_length")
    length, sign_exp = data[offset], data[offset + 1]
    if length == 0:
        raise FrameError("number with a 0-byte mantissa", offset=offset, code="bad_length")
    end = offset + 2 + length
    if len(data) < end:
        raise FrameError(
            f"number needs {length} mantissa bytes, {len(data) - offset - 2} left",
            offset=offset,
            code="bad_length",
        )
    mantissa = int.from_bytes(data[offset + 2 : end], "big")
    return _number(mantissa, sign_exp), end - offset


def _number(mantissa: int, sign_exp: int) -> Decimal:
    return Decimal(_NUMBER_TEXT[sign_exp] % mantissa)


# Per sign-and-exponent byte, the text of the number with "%d" for the mantissa: Decimal reads
# "-123E-2" exactly (no context rounding), faster than from a tuple of digits.
_NUMBER_TEXT = tuple(
    ("-" if sign_exp & 0x80 else "")
    + "%dE"
    + str(-(sign_exp & _EXPONENT_MAX) if sign_exp & 0x40 else sign_exp & _EXPONENT_MAX)
    for sign_exp in range(256)
)


def encode_number(value: Decimal | int, *, length: int | None = None) -> bytes:
    """``len | SI SE exp | mantissa`` for a value; the shortest mantissa unless length is given."""
    sign, digit_tuple, raw_exponent = Decimal(value).as_tuple()
    if not isinstance(raw_exponent, int):
        raise ValueError(f"KMP cannot carry {value}")
    exponent = raw_exponent
    mantissa = int("".join(map(str, digit_tuple)) or "0")
    if exponent > _EXPONENT_MAX:
        mantissa, exponent = mantissa * 10 ** (exponent - _EXPONENT_MAX), _EXPONENT_MAX
    # Trailing zeros move into the exponent when the exponent or the mantissa length asks for it.
    while (
        mantissa
        and mantissa % 10 == 0
        and (exponent < -_EXPONENT_MAX or _too_long(mantissa, length))
    ):
        mantissa, exponent = mantissa // 10, exponent + 1
    if mantissa == 0:
        exponent = max(exponent, -_EXPONENT_MAX)
    if exponent < -_EXPONENT_MAX:
        raise ValueError(f"{value} needs an exponent below -63")
    size = max(1, (mantissa.bit_length() + 7) // 8) if length is None else length
    if _too_long(mantissa, size) or not 1 <= size <= 0xFF:
        raise ValueError(f"{value} does not fit a {size}-byte mantissa")
    sign_exp = (0x80 if sign else 0) | (0x40 if exponent < 0 else 0) | abs(exponent)
    return bytes((size, sign_exp)) + mantissa.to_bytes(size, "big")


def _too_long(mantissa: int, length: int | None) -> bool:
    return length is not None and mantissa.bit_length() > 8 * length


def interpret(
    unit: int, number: Decimal, length: int | None = None
) -> tuple[Decimal | int | str, str | None]:
    """A register value as a record holds it: a number in its HA unit, or ISO date/time text."""
    if unit in _TEXT_UNITS:
        text = _as_text(unit, number, length)
        if text is not None:
            return text, None
    _, ha_unit, factor = UNITS.get(unit, _NO_UNIT)
    return (number * factor if factor != 1 else number), ha_unit


_NO_UNIT: tuple[str, str | None, int] = ("", None, 1)


def _as_text(unit: int, number: Decimal, length: int | None) -> str | None:
    """A date, time or ASCII register as text; None when the number is not one."""
    whole = int(number) if number == number.to_integral_value() else None
    if whole is not None and whole >= 0:
        if unit == UNIT_YY_MM_DD and (day := _date(2000 + whole // 10000, whole)) is not None:
            return day.isoformat()
        if unit == _UNIT_YYYY_MM_DD and (day := _date(whole // 10000, whole)) is not None:
            return day.isoformat()
        if unit == _UNIT_MM_DD and (day := _date(2000, whole)) is not None:
            return f"--{day:%m-%d}"
        if unit == UNIT_HH_MM_SS and (clock := _time(whole)) is not None:
            return clock.isoformat()
        if unit == _UNIT_ASCII and whole:
            text = whole.to_bytes(max(length or 0, (whole.bit_length() + 7) // 8), "big")
            if all(32 <= b < 127 or b == 0 for b in text):
                return text.replace(b"\x00", b"").decode("ascii").strip()
    return None


def _date(year: int, whole: int) -> date | None:
    try:
        return date(year, whole // 100 % 100, whole % 100)
    except ValueError:
        return None


def _time(whole: int) -> time | None:
    try:
        return time(whole // 10000, whole // 100 % 100, whole % 100)
    except ValueError:
        return None


def combine_date_time(day: Decimal, clock: Decimal) -> datetime | None:
    """A YYMMDD and an hhmmss register value as one local datetime, None when impossible."""
    if day != day.to_integral_value() or clock != clock.to_integral_value() or day < 0 or clock < 0:
        return None
    on, at = _date(2000 + int(day) // 10000, int(day)), _time(int(clock))
    return datetime.combine(on, at) if on is not None and at is not None else None
