"""Record names and base units from OBIS value groups (IEC 62056-6-1), shared by DLMS and DSMR.

Names are derived from the groups rather than listed one by one, so an unusual code a meter
pushes (a per-phase reactive energy, a tariff register) still gets a stable, readable name.
"""

from __future__ import annotations

import re
from functools import lru_cache

from modules.codecs import obis

__all__ = ["base_unit", "record_name", "split_obis"]

_FULL_OBIS = re.compile(r"^\d+-\d+:\d+\.\d+\.\d+(?:[*.]\d+)?$")

# Value group C for electricity (A = 1): quantity and phase.
_PHASES = {0: "", 20: "_l1", 40: "_l2", 60: "_l3"}
_QUANTITY = {
    1: "import",
    2: "export",
    3: "reactive_import",
    4: "reactive_export",
    5: "reactive_q1",
    6: "reactive_q2",
    7: "reactive_q3",
    8: "reactive_q4",
    9: "apparent_import",
    10: "apparent_export",
    15: "absolute",
    16: "net",
}
_POWER_FAMILY = {1: "W", 2: "W", 15: "W", 16: "W"}
_REACTIVE = {3, 4, 5, 6, 7, 8}
_APPARENT = {9, 10}
# Value group D: what kind of value of that quantity.
_KIND = {
    4: "demand",
    5: "demand_last",
    6: "peak",
    2: "peak_cumulative",
    7: "power",
    8: "energy",
    24: "power",
    25: "power",
}
_ABSTRACT = {
    (1, 0, 0): "meter_time",
    (0, 0, 1): "meter_number",
    (0, 0, 5): "meter_id",
    (0, 2, 8): "version",
    (0, 2, 129): "list_version",
    (42, 0, 0): "logical_device_name",
    (96, 1, 0): "meter_id",
    (96, 1, 1): "equipment_id",
    (96, 1, 2): "device_id_3",
    (96, 1, 3): "device_id_4",
    (96, 1, 4): "version",
    (96, 1, 7): "meter_type",
    (96, 1, 255): "equipment_id",
    (96, 3, 10): "breaker_state",
    (96, 14, 0): "tariff",
    (96, 13, 0): "text_message",
    (96, 13, 1): "text_message_code",
    (96, 7, 21): "power_failures",
    (96, 7, 9): "long_power_failures",
    (96, 7, 19): "power_failure_log",
    (99, 97, 0): "power_failure_log",
    (17, 0, 0): "limiter_threshold",
    (24, 1, 0): "mbus_device_type",
    (24, 4, 0): "valve_state",
    (98, 1, 0): "billing_history",
    (96, 5, 5): "status",
    (96, 50, 68): "status",
}


# A meter sends the same few dozen codes in every telegram or push: each is read once.
@lru_cache(maxsize=1024)
def split_obis(code: str) -> tuple[int, int, int, int, int, int] | None:
    """The six groups of a full ``A-B:C.D.E[*F]`` (F = 255 when absent), or None."""
    if not _FULL_OBIS.match(code.strip()):
        return None  # DLMS and P1 always send all groups; anything shorter is not a code
    return obis.parse(code)


def _electricity_name(c: int, d: int, e: int) -> str | None:
    phases = {31: "_l1", 51: "_l2", 71: "_l3", 11: ""}
    if c in phases:
        # D 7 is the instantaneous value; D 4 on P1 meters is the fuse supervision threshold.
        return "current" + phases[c] if d == 7 else f"current_limit{phases[c]}" if d == 4 else None
    if c in (32, 52, 72, 12) and d == 7:
        return "voltage" + {32: "_l1", 52: "_l2", 72: "_l3", 12: ""}[c]
    if c in (13, 33, 53, 73):
        return "power_factor" + {13: "", 33: "_l1", 53: "_l2", 73: "_l3"}[c]
    if c == 14:
        return "frequency"
    if c == 91:
        return "current_neutral"
    phase_base = next((p for p in (60, 40, 20) if c > p), 0)
    quantity = c - phase_base
    if quantity not in _QUANTITY or d not in _KIND:
        return None
    phase = _PHASES[phase_base]
    tariff = f"_t{e}" if e and d in (8, 6, 2, 4) else ""
    kind, label = _KIND[d], _QUANTITY[quantity]
    if kind == "energy":
        if quantity in _REACTIVE:
            stem = "reactive_energy_" + label.removeprefix("reactive_")
        elif quantity in _APPARENT:
            stem = "apparent_energy_" + label.removeprefix("apparent_")
        else:
            stem = "energy_" + label
    elif quantity in _REACTIVE:
        stem = f"reactive_{kind}_{label.removeprefix('reactive_')}"
    elif quantity in _APPARENT:
        stem = f"apparent_{kind}_{label.removeprefix('apparent_')}"
    else:
        stem = f"{kind}_{label}"
    return f"{stem}{phase}{tariff}"


@lru_cache(maxsize=1024)
def record_name(code: str) -> str:
    """A stable snake_case name for an OBIS code (``obis_<code>`` when nothing better fits)."""
    groups = split_obis(code)
    if groups is None:
        return "obis_" + re.sub(r"\W", "_", code)
    a, b, c, d, e, _ = groups
    if a == 1:
        name = _electricity_name(c, d, e)
        if name:
            return name
    if a == 0 and c == 24 and d == 2:
        return "mbus_value"
    if a == 0 and (c, d, e) == (1, 0, 0):
        return "meter_time"
    if (c, d, e) in _ABSTRACT:
        return _ABSTRACT[(c, d, e)]
    if c in (32, 52, 72) and d in (32, 36):
        phase = {32: "l1", 52: "l2", 72: "l3"}[c]
        return f"voltage_{'sags' if d == 32 else 'swells'}_{phase}"
    return f"obis_{a}_{b}_{c}_{d}_{e}"


@lru_cache(maxsize=1024)
def base_unit(code: str) -> str | None:
    """The SI base unit of an electricity quantity (W, Wh, var, varh, VA, VAh, A, V, Hz)."""
    groups = split_obis(code)
    if groups is None or groups[0] != 1:
        return None
    c, d = groups[2], groups[3]
    if c in (31, 51, 71, 11, 91):
        return "A"
    if c in (32, 52, 72, 12):
        return "V" if d not in (32, 36) else None
    if c == 14:
        return "Hz"
    if c in (13, 33, 53, 73):
        return None
    quantity = c - next((p for p in (60, 40, 20) if c > p), 0)
    if d not in _KIND:
        return None
    energy = d == 8
    if quantity in _POWER_FAMILY:
        return "Wh" if energy else "W"
    if quantity in _REACTIVE:
        return "varh" if energy else "var"
    if quantity in _APPARENT:
        return "VAh" if energy else "VA"
    return None
