"""OBIS codes for M-Bus electricity records (IEC 62056-61 value groups C.D.E).

Only plain present values (storage 0, no limit/per-time/correction modifiers) get a code:
historic values (storage > 0) would otherwise overwrite the engine's live registers.
Active energy and power carry the same VIFs in heat meters, so they map only when the
telegram's medium is electricity; reactive/apparent quantities, volts, amps and hertz are
electrical by nature and always map.
"""

from __future__ import annotations

__all__ = ["ELECTRICITY", "obis_code", "record_name"]

ELECTRICITY = 0x02

# C group for (family, direction) with the phase offsets of IEC 62056-61: L1 +20, L2 +40, L3 +60.
_ENERGY_C = {
    ("energy", "import"): 1,
    ("energy", "export"): 2,
    ("power", "import"): 1,
    ("power", "export"): 2,
    ("reactive_energy", "import"): 3,
    ("reactive_energy", "export"): 4,
    ("reactive_power", "import"): 3,
    ("reactive_power", "export"): 4,
    ("apparent_energy", "import"): 9,
    ("apparent_energy", "export"): 10,
    ("apparent_power", "import"): 9,
    ("apparent_power", "export"): 10,
}
_PHASE_OFFSET = {None: 0, "l1": 20, "l2": 40, "l3": 60}
_QUADRANT_C = {"q1": 5, "q2": 6, "q3": 7, "q4": 8}
_VOLTAGE_C = {None: 12, "l1": 32, "l2": 52, "l3": 72}
_CURRENT_C = {None: 11, "l1": 31, "l2": 51, "l3": 71, "n": 91}
_DIRECTED = {
    "energy",
    "power",
    "reactive_energy",
    "reactive_power",
    "apparent_energy",
    "apparent_power",
}


def _direction(backward: bool) -> str:
    return "export" if backward else "import"


def obis_code(
    family: str,
    *,
    backward: bool,
    phase: str | None,
    function: str,
    tariff: int,
    medium: int | None,
) -> str | None:
    """The OBIS code of a plain present value, or None when OBIS has none for it."""
    if family in ("energy", "power") and medium != ELECTRICITY:
        return None
    if family in _DIRECTED:
        cumulative = family.endswith("energy")
        if phase in _QUADRANT_C and family == "reactive_energy":
            c = _QUADRANT_C[phase]
        elif phase in _PHASE_OFFSET:
            c = _ENERGY_C[(family, _direction(backward))] + _PHASE_OFFSET[phase]
        else:
            return None
        if cumulative:
            return f"1-0:{c}.8.{tariff}" if function == "instantaneous" else None
        if function == "maximum":
            return f"1-0:{c}.6.{tariff}"
        return f"1-0:{c}.7.0" if function == "instantaneous" and tariff == 0 else None
    if function != "instantaneous" or tariff != 0 or backward:
        return None
    if family == "voltage" and phase in _VOLTAGE_C:
        return f"1-0:{_VOLTAGE_C[phase]}.7.0"
    if family == "current" and phase in _CURRENT_C:
        return f"1-0:{_CURRENT_C[phase]}.7.0"
    if family == "frequency" and phase is None:
        return "1-0:14.7.0"
    return None


def record_name(family: str, *, backward: bool, medium: int | None) -> str | None:
    """The import/export name an electricity quantity takes, or None to keep the VIF's."""
    if family in ("energy", "power") and medium != ELECTRICITY:
        return None
    if family in _DIRECTED:
        return f"{family}_{_direction(backward)}"
    return None
