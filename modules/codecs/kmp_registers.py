"""KMP register ids: the Kamstrup 382 electricity set (with OBIS codes) and the heat/water ids.

Sources: bsdphk/PyKamstrup (382J), bipsendk/kamstrup-382Lx7 (382Lx7, 19 registers),
Hal9k-dk/kamstrup, gertvdijk/PyKMP ``constants.py`` and the MULTICAL technical descriptions.
Register ids are one namespace across Kamstrup meters, so one table serves them all; only the
electricity quantities carry OBIS codes (DESIGN.md, "Data flow").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "CLOCK",
    "DATE",
    "DEFAULT_382_REGISTERS",
    "REGISTERS",
    "REGISTERS_BY_NAME",
    "Register",
    "chunked",
    "register_id",
]

MAX_REGISTERS_PER_REQUEST = 8  # GetRegister carries at most 8 ids (PyKMP NUM_REGISTERS_MAX)


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
