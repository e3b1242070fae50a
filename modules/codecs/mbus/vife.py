"""Combinable (orthogonal) VIFEs (EN 13757-3:2018 tables 15 and 16): what each adds to a VIF."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from modules.codecs.mbus.vif import TIME_UNITS, Kind, p10

__all__ = ["Vife", "combinable", "combinable_extension"]


@dataclass(frozen=True, slots=True)
class Vife:
    """What one combinable (orthogonal) VIFE adds to a quantity."""

    suffix: str = ""  # appended to the record name, e.g. "backward", "l1"
    scale: Decimal = Decimal(1)
    direction: str | None = None  # "forward" / "backward"
    phase: str | None = None  # "l1".."l3", "n", "l1_l2", ..., "q1".."q4"
    kind: Kind | None = None  # the value becomes a date (limit exceed dates) ...
    unit: str | None = ""  # "" keeps the unit; None drops it; other replaces it
    per: str = ""  # divides the unit ("s" -> unit/s); a leading * multiplies instead
    plain: bool = True  # False when the value is no longer the plain quantity
    record_error: str | None = None


_RECORD_ERRORS = {
    0x00: "none",
    0x01: "too_many_difes",
    0x02: "storage_number_not_implemented",
    0x03: "unit_number_not_implemented",
    0x04: "tariff_number_not_implemented",
    0x05: "function_not_implemented",
    0x06: "data_class_not_implemented",
    0x07: "data_size_not_implemented",
    0x0B: "too_many_vifes",
    0x0C: "illegal_vif_group",
    0x0D: "illegal_vif_exponent",
    0x0E: "vif_dif_mismatch",
    0x0F: "unimplemented_action",
    0x15: "no_data_available",
    0x16: "data_overflow",
    0x17: "data_underflow",
    0x18: "data_error",
    0x1C: "premature_end_of_record",
}
_PER = (
    "per_second",
    "per_minute",
    "per_hour",
    "per_day",
    "per_week",
    "per_month",
    "per_year",
    "per_revolution",
    "per_input_pulse_0",
    "per_input_pulse_1",
    "per_output_pulse_0",
    "per_output_pulse_1",
    "per_litre",
    "per_m3",
    "per_kg",
    "per_kelvin",
    "per_kwh",
    "per_gj",
    "per_kw",
    "per_kelvin_litre",
    "per_volt",
    "per_ampere",
    "times_second",
    "times_second_per_volt",
    "times_second_per_ampere",
)
# The denominator each "per ..." VIFE gives the unit; pulses and revolutions are counts.
_PER_UNITS = (
    "s",
    "min",
    "h",
    "d",
    "week",
    "month",
    "a",
    "",
    "",
    "",
    "",
    "",
    "L",
    "m³",
    "kg",
    "K",
    "kWh",
    "GJ",
    "kW",
    "K·L",
    "V",
    "A",
    "*s",
    "*s/V",
    "*s/A",
)
_MODIFIED = Vife(plain=False)
# EN 13757-3:2018 put these among the record error codes (OMS load profiles use them).
_PROFILES = {
    0x12: replace(_MODIFIED, suffix="average"),
    0x13: replace(_MODIFIED, suffix="inverse_compact_profile"),
    0x14: replace(_MODIFIED, suffix="relative_deviation"),
    0x1D: Vife(suffix="standard_conformant"),
    0x1E: replace(_MODIFIED, suffix="compact_profile_with_register"),
    0x1F: replace(_MODIFIED, suffix="compact_profile"),
}


def combinable(vife: int) -> Vife:
    """A combinable (orthogonal) VIFE (EN 13757-3 table 15), extension bit ignored."""
    code = vife & 0x7F
    if code in _PROFILES:
        return _PROFILES[code]
    if code < 0x20:
        return Vife(record_error=_RECORD_ERRORS.get(code, f"reserved_{code:02x}"))
    if code < 0x39:
        return replace(_MODIFIED, suffix=_PER[code - 0x20], per=_PER_UNITS[code - 0x20])
    if code in _COMBINABLE_FIXED:
        return _COMBINABLE_FIXED[code]
    if 0x40 <= code <= 0x4F:
        return _limit_vife(code)
    if 0x50 <= code <= 0x5F:
        limit = "upper" if code & 0x08 else "lower"
        which = "last" if code & 0x04 else "first"
        suffix = f"{limit}_limit_exceed_duration_{which}"
        return replace(_MODIFIED, suffix=suffix, unit=TIME_UNITS[code & 0x03])
    if 0x60 <= code <= 0x67:
        which = "last" if code & 0x04 else "first"
        return replace(_MODIFIED, suffix=f"duration_{which}", unit=TIME_UNITS[code & 0x03])
    if code in (0x6A, 0x6B, 0x6E, 0x6F):
        which = "last" if code & 0x04 else "first"
        edge = "end" if code & 0x01 else "begin"
        return replace(_MODIFIED, suffix=f"{edge}_{which}_datetime", kind="time", unit=None)
    if 0x70 <= code <= 0x77:
        return Vife(scale=p10((code & 0x07) - 6))
    if 0x78 <= code <= 0x7B:
        return replace(_MODIFIED, suffix="additive_correction", scale=p10((code & 0x03) - 3))
    return Vife(suffix=f"vife_{code:02x}", plain=False)


def _limit_vife(code: int) -> Vife:
    limit = "upper" if code & 0x08 else "lower"
    if code & 0x07 == 0:
        return replace(_MODIFIED, suffix=f"{limit}_limit")
    if code & 0x07 == 1:
        return replace(_MODIFIED, suffix=f"{limit}_limit_exceeds", unit=None)
    if code & 0x02:
        which = "last" if code & 0x04 else "first"
        edge = "end" if code & 0x01 else "begin"
        suffix = f"{limit}_limit_exceed_{edge}_{which}_datetime"
        return replace(_MODIFIED, suffix=suffix, kind="time", unit=None)
    return Vife(suffix=f"vife_{code:02x}", plain=False)


_COMBINABLE_FIXED: dict[int, Vife] = {
    0x39: replace(_MODIFIED, suffix="start_datetime", kind="time", unit=None),
    0x3A: replace(_MODIFIED, suffix="uncorrected"),
    0x3B: Vife(suffix="forward", direction="forward"),
    0x3C: Vife(suffix="backward", direction="backward"),
    0x3D: replace(_MODIFIED, suffix="non_metric"),
    0x3E: replace(_MODIFIED, suffix="base_conditions"),
    0x3F: replace(_MODIFIED, suffix="obis_declaration"),
    0x68: replace(_MODIFIED, suffix="during_lower_limit_exceed"),
    0x69: replace(_MODIFIED, suffix="leakage"),
    0x6C: replace(_MODIFIED, suffix="during_upper_limit_exceed"),
    0x6D: replace(_MODIFIED, suffix="overflow"),
    0x7D: Vife(scale=Decimal(1000)),
    0x7E: replace(_MODIFIED, suffix="future"),
}

_PHASES = {
    0x01: "l1",
    0x02: "l2",
    0x03: "l3",
    0x04: "n",
    0x05: "l1_l2",
    0x06: "l2_l3",
    0x07: "l3_l1",
    0x08: "q1",
    0x09: "q2",
    0x0A: "q3",
    0x0B: "q4",
}


def combinable_extension(vife: int) -> Vife:
    """A VIFE after 0xFC, the extension of the combinable table (EN 13757-3 table 16)."""
    code = vife & 0x7F
    if code in _PHASES:
        return Vife(suffix=_PHASES[code], phase=_PHASES[code])
    extras = {
        0x0C: "delta_import_export",
        0x10: "absolute_both_directions",
        0x11: "type_c",
        0x12: "type_d",
        0x13: "to_meter",
        0x14: "from_meter",
    }
    if code in (0x11, 0x12, 0x13, 0x14):
        return Vife(suffix=extras[code])
    return Vife(suffix=extras.get(code, f"vife_fc_{code:02x}"), plain=False)
