"""Manufacturers' documented M-Bus conventions, per FLAG id: what their own codes mean.

EN 13757-3 leaves room for a manufacturer: VIF 0xFF (its own quantities), a VIFE 0xFF inside
a VIFE chain (its own modifiers, e.g. a phase), and subunits and tariffs whose meaning the
standard does not fix. The generic decoder asks ``convention(manufacturer, medium)`` and
applies what it finds; a manufacturer without an entry decodes by the standard alone.

Sources, per entry: the manufacturer's manual where one is public, else the wmbusmeters
driver that documents the meter (facts taken, no code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from modules.codecs.mbus.vif import Quantity, fd_table, p10, primary
from modules.codecs.mbus.vife import Vife

__all__ = [
    "LINE_PAIRS",
    "Convention",
    "HeaderMeaning",
    "ScaledBy",
    "convention",
    "header_meaning",
    "scale_of",
]

ELECTRICITY = 0x02
Scope = Literal["total", "tariff", "phase"]


@dataclass(frozen=True, slots=True)
class ScaledBy:
    """A VIF 0xFF quantity whose exponent (and unit, when ``quantity.unit`` is None) is given
    by the VIFE after it, read as a primary or FD-table VIF code."""

    quantity: Quantity
    table: Literal["primary", "fd"] = "primary"


@dataclass(frozen=True, slots=True)
class HeaderMeaning:
    """What a manufacturer makes of a record's subunit or tariff: the real quantity family,
    direction, phase and tariff."""

    family: str | None = None  # None keeps the VIF's family
    backward: bool = False
    phase: str | None = None
    tariff: int | None = None  # None keeps the DIFE's tariff
    suffix: str = ""
    obis: bool = True  # False: the meaning is known too vaguely to name a register


@dataclass(frozen=True, slots=True)
class Convention:
    """One manufacturer's codes (see the module docstring for where each applies)."""

    source: str
    media: frozenset[int] | None = None  # device types it applies to; None: all
    vifs: dict[int, Quantity | ScaledBy] = field(default_factory=dict)  # after VIF 0xFF
    vifes: dict[int, Vife] = field(default_factory=dict)  # after a VIFE 0xFF
    # (family, subunit, scope) -> meaning; scope says whether the record has a tariff or a
    # phase, since some meters number their subunits differently for those.
    subunits: dict[tuple[str, int, Scope], HeaderMeaning] = field(default_factory=dict)
    tariffs: dict[int, HeaderMeaning] = field(default_factory=dict)  # DIFE tariff -> meaning
    line_to_line: frozenset[int] = frozenset()  # VIF 0xFF codes whose phases are line pairs


_MODIFIED = Vife(plain=False)


def _phase(label: str) -> Vife:
    return Vife(suffix=label, phase=label)


def _note(suffix: str, **changes: object) -> Vife:
    return Vife(suffix=suffix, plain=False, **changes)  # type: ignore[arg-type]


_KAMSTRUP = Convention(
    source="Kamstrup MULTICAL/flowIQ data sheets; wmbusmeters kamheat/kamwater drivers",
    vifs={
        # Heat meters split energy into forward and return "energy" in m³·°C.
        0x07: Quantity("forward_energy", "m³·°C"),
        0x08: Quantity("return_energy", "m³·°C"),
        0x20: Quantity("info_codes", kind="bits"),
        0x22: Quantity("info_codes", kind="bits"),
        0x23: Quantity("status", kind="bits"),
    },
)

# Schneider Electric iEM3100/3200/3300 user manual (DOCA0005EN), "Communications via M-Bus":
# the manufacturer-specific VIFE table (after VIF 0xFF or a VIFE 0xFF) and the instantaneous
# measurements table (reactive power in subunit 1, apparent power in subunit 2). The energy
# subunits beyond 1 follow the wmbusmeters iem3000 driver (iEM3x55/3x65 registers).
_SCHNEIDER_VIFES = {
    0x00: _note("average"),
    0x01: _phase("l1"),
    0x02: _phase("l2"),
    0x03: _phase("l3"),
    0x04: _note("average_l_n"),
    0x05: _phase("l1_l2"),
    0x06: _phase("l2_l3"),
    0x07: _phase("l3_l1"),
    0x08: _note("average_l_l"),
    0x09: Vife(suffix="export", direction="backward"),
    0x0C: _note("partial_energy_reset", kind="time", unit=None),
    0x0D: _note("partial"),
    0x0E: _note("input_metering_reset", kind="time", unit=None),
    0x39: _note("last_alarm", kind="time", unit=None),
    0x72: _note("resettable"),
}
_SCHNEIDER = Convention(
    source="Schneider Electric iEM3000 series user manual DOCA0005EN; wmbusmeters iem3000",
    media=frozenset({ELECTRICITY}),
    vifs={
        0x0A: Quantity("power_factor"),
        0x0B: Quantity("frequency", "Hz", family="frequency"),
        0x10: Quantity("active_tariff"),
        0x11: Quantity("tariff_control_mode"),
        0x20: Quantity("operating_timer"),
        0x21: Quantity("phases"),
        0x22: Quantity("wires"),
        0x23: Quantity("power_system_configuration", kind="bits"),
        0x24: Quantity("nominal_frequency", "Hz"),
        0x25: Quantity("vt_count"),
        0x26: Quantity("vt_primary", "V"),
        0x27: Quantity("vt_secondary", "V"),
        0x28: Quantity("ct_count"),
        0x29: Quantity("ct_primary", "A"),
        0x2A: Quantity("ct_secondary", "A"),
        0x2B: Quantity("vt_connection_type"),
        0x2C: Quantity("energy_pulse_duration", "ms"),
        0x2D: Quantity("pulse_output_association", kind="bits"),
        0x2E: Quantity("pulse_weight"),
        0x2F: Quantity("pulse_constant"),
        0x30: Quantity("digital_input_association", kind="bits"),
        0x32: Quantity("digital_input_status", kind="bits"),
        0x34: Quantity("overload_alarm_setup", kind="bits"),
        0x35: Quantity("overload_pickup_setpoint"),
        0x36: Quantity("overload_output_association", kind="bits"),
        0x37: Quantity("alarm_activated_status", kind="bits"),
        0x38: Quantity("alarm_acknowledgement", kind="bits"),
        0x3A: Quantity("last_alarm_value"),
    },
    vifes=_SCHNEIDER_VIFES,
    subunits={
        ("energy", 1, "total"): HeaderMeaning("reactive_energy"),
        ("energy", 1, "tariff"): HeaderMeaning("energy", backward=True),
        ("energy", 1, "phase"): HeaderMeaning("energy", backward=True),
        ("energy", 2, "tariff"): HeaderMeaning("reactive_energy"),
        ("energy", 2, "phase"): HeaderMeaning("reactive_energy"),
        ("energy", 3, "tariff"): HeaderMeaning("reactive_energy", backward=True),
        ("energy", 3, "phase"): HeaderMeaning("reactive_energy", backward=True),
        ("energy", 4, "total"): HeaderMeaning("apparent_energy"),
        ("energy", 4, "phase"): HeaderMeaning("apparent_energy"),
        ("energy", 5, "total"): HeaderMeaning("apparent_energy", backward=True),
        ("energy", 5, "phase"): HeaderMeaning("apparent_energy", backward=True),
        ("energy", 6, "total"): HeaderMeaning("energy", suffix="net"),
        ("energy", 6, "phase"): HeaderMeaning("energy", suffix="net"),
        ("energy", 7, "total"): HeaderMeaning("reactive_energy", suffix="net"),
        ("energy", 7, "phase"): HeaderMeaning("reactive_energy", suffix="net"),
        ("energy", 8, "total"): HeaderMeaning("apparent_energy", suffix="net"),
        ("energy", 8, "phase"): HeaderMeaning("apparent_energy", suffix="net"),
        ("power", 1, "total"): HeaderMeaning("reactive_power"),
        ("power", 2, "total"): HeaderMeaning("apparent_power"),
        ("power", 2, "phase"): HeaderMeaning("reactive_power"),
        ("power", 4, "phase"): HeaderMeaning("apparent_power"),
    },
)

# Eltako DSZ15DM / DSZ15D M-Bus meters (wmbusmeters eltako driver): a VIFE 0xFF then 00 for
# the sum over the phases, 01..03 for a phase; reactive power in subunit 1.
_ELTAKO = Convention(
    source="wmbusmeters eltako driver (Eltako DSZ15DM M-Bus)",
    media=frozenset({ELECTRICITY}),
    vifs={0x13: Quantity("active_tariff"), 0x68: Quantity("ct_ratio")},
    vifes={0x00: Vife(), 0x01: _phase("l1"), 0x02: _phase("l2"), 0x03: _phase("l3")},
    subunits={
        ("power", 1, "total"): HeaderMeaning("reactive_power"),
        ("power", 1, "phase"): HeaderMeaning("reactive_power"),
    },
)

# eBZ DD3 with the wMB-E01 radio module (wmbusmeters ebzwmbe driver): power per phase as
# VIFE 0xFF then 01..03. The telegram has no total power: a sum of the phases is the
# reader's arithmetic, not a meter value, so the decoder does not invent one.
_EBZ = Convention(
    source="wmbusmeters ebzwmbe driver (eBZ DD3 + wMB-E01)",
    media=frozenset({ELECTRICITY}),
    vifes={0x01: _phase("l1"), 0x02: _phase("l2"), 0x03: _phase("l3")},
)


def _ime(name: str, family: str, unit: str | None, table: Literal["primary", "fd"]) -> ScaledBy:
    return ScaledBy(Quantity(name, unit, family=family), table)


# IME Conto D4 / Nemo (wmbusmeters ime driver, from IME's M-Bus table): VIF 0xFF, a VIFE
# 0x80 | n naming the quantity, then a VIFE holding a standard VIF code for its exponent;
# the DIFE tariff field numbers totals and phases instead of tariffs beyond 2.
_IME = Convention(
    source="wmbusmeters ime driver (IME Conto D4 M-Bus protocol)",
    media=frozenset({ELECTRICITY}),
    vifs={
        0x00: _ime("energy", "energy", "kWh", "primary"),
        0x01: _ime("reactive_energy", "reactive_energy", "kvarh", "primary"),
        0x04: _ime("power", "power", "W", "primary"),
        0x05: _ime("reactive_power", "reactive_power", "var", "primary"),
        0x06: _ime("apparent_power", "apparent_power", "VA", "primary"),
        0x07: _ime("voltage", "voltage", "V", "fd"),
        0x08: _ime("voltage", "voltage", "V", "fd"),
        0x09: _ime("current", "current", "A", "fd"),
        0x0A: _ime("frequency", "frequency", "Hz", "fd"),
        0x0B: _ime("power_factor", "", "", "primary"),
        0x0C: _ime("power_factor_sector", "", "", "primary"),
        0x0D: _ime("power_demand", "", "W", "primary"),
        0x0E: _ime("power_demand_maximum", "", "W", "primary"),
        0x0F: _ime("run_time", "", None, "primary"),
    },
    # IME Nemo (version 0x1D, wmbusmeters nemo driver): active quantities in subunit 1,
    # reactive in subunit 2; whether its tariffs 1/2 are tariffs or total/partial the
    # driver leaves open, so these registers get names but no OBIS code.
    subunits={
        (family, subunit, scope): HeaderMeaning(reactive if subunit == 2 else None, obis=False)
        for family, reactive in (("energy", "reactive_energy"), ("power", "reactive_power"))
        for subunit in (1, 2)
        for scope in ("total", "tariff", "phase")
    },
    tariffs={
        5: HeaderMeaning(tariff=0),
        6: HeaderMeaning(tariff=0, suffix="partial"),
        7: HeaderMeaning(tariff=0),
        8: HeaderMeaning(tariff=0, phase="l1"),
        9: HeaderMeaning(tariff=0, phase="l2"),
        10: HeaderMeaning(tariff=0, phase="l3"),
    },
    line_to_line=frozenset({0x08}),
)

# ABB A43/A44 and B21/B23/B24 (A43/A44 user manual 2CMC48001M0201 rev. C, chapter 10, and
# the wmbusmeters abbb23 driver): the DIFE unit numbers the register (1 active export,
# 2/3 reactive import/export, 4/5 apparent import/export), a VIFE 0xFF then 0x8n names the
# phase (5..7 phase to phase), and VIF 0xFF codes carry instrumentation and settings. Every
# record ends with a status VIFE (0x00 when fine).
_ABB_ENERGY = {
    1: HeaderMeaning("energy", backward=True),
    2: HeaderMeaning("reactive_energy"),
    3: HeaderMeaning("reactive_energy", backward=True),
    4: HeaderMeaning("apparent_energy"),
    5: HeaderMeaning("apparent_energy", backward=True),
}
_ABB = Convention(
    source="ABB A43/A44 user manual 2CMC48001M0201 ch. 10; wmbusmeters abbb23 driver",
    media=frozenset({ELECTRICITY}),
    vifs={
        0x13: Quantity("active_tariff"),
        0x17: Quantity("current_quadrant"),
        0x18: Quantity("power_fail_count"),
        0x20: Quantity("ct_ratio_numerator"),
        0x21: Quantity("vt_ratio_numerator"),
        0x22: Quantity("ct_ratio_denominator"),
        0x23: Quantity("vt_ratio_denominator"),
        0x24: Quantity("co2_conversion_factor"),
        0x25: Quantity("currency_conversion_factor"),
        0x26: Quantity("error_flags", kind="bits"),
        0x27: Quantity("warning_flags", kind="bits"),
        0x28: Quantity("information_flags", kind="bits"),
        0x29: Quantity("alarm_flags", kind="bits"),
        0x2A: Quantity("product_number", kind="ident"),
        0x52: Quantity("phase_angle_power", "°", p10(-1)),
        0x59: Quantity("frequency", "Hz", p10(-2), family="frequency"),
        0x60: Quantity("power_factor", None, p10(-3)),
    },
    vifes={
        0x01: _phase("l1"),
        0x02: _phase("l2"),
        0x03: _phase("l3"),
        0x05: _phase("l1_l2"),
        0x06: _phase("l2_l3"),
        0x07: _phase("l3_l1"),
        0x72: _note("resettable"),
    },
    subunits={
        **{
            ("energy", unit, scope): meaning
            for unit, meaning in _ABB_ENERGY.items()
            for scope in ("total", "tariff", "phase")
        },
        ("power", 2, "total"): HeaderMeaning("reactive_power"),
        ("power", 2, "phase"): HeaderMeaning("reactive_power"),
        ("power", 4, "total"): HeaderMeaning("apparent_power"),
        ("power", 4, "phase"): HeaderMeaning("apparent_power"),
    },
)

# Gran-System-S electricity meters (wmbusmeters gransystems driver): voltage and current of
# phase L1..L3 in subunits 1..3.
_GRAN_SYSTEM_S = Convention(
    source="wmbusmeters gransystems driver (Gran-System-S CCM meters)",
    media=frozenset({ELECTRICITY}),
    subunits={
        (family, subunit, "total"): HeaderMeaning(phase=f"l{subunit}")
        for family in ("voltage", "current")
        for subunit in (1, 2, 3)
    },
)

CONVENTIONS: dict[str, Convention] = {
    "KAM": _KAMSTRUP,
    "SEC": _SCHNEIDER,
    "ELT": _ELTAKO,
    "EBZ": _EBZ,
    "IME": _IME,
    "GSS": _GRAN_SYSTEM_S,
    "ABB": _ABB,
}
# Line-to-line quantities numbered by their first phase (L1 for L1-L2, ...).
LINE_PAIRS = {"l1": "l1_l2", "l2": "l2_l3", "l3": "l3_l1"}


def convention(manufacturer: str | None, medium: int | None) -> Convention | None:
    """The documented conventions of ``manufacturer`` for this device type, or None."""
    found = CONVENTIONS.get(manufacturer or "")
    if found is None or (found.media is not None and medium not in found.media):
        return None
    return found


def header_meaning(
    conv: Convention | None, family: str, subunit: int, tariff: int, phase: str | None
) -> HeaderMeaning | None:
    """What the record's subunit (or tariff) means for this manufacturer, or None."""
    if conv is None:
        return None
    if tariff in conv.tariffs:
        return conv.tariffs[tariff]
    if subunit == 0:
        return None
    scope: Scope = "phase" if phase is not None else "tariff" if tariff else "total"
    return conv.subunits.get((family, subunit, scope))


def scale_of(scaled: ScaledBy, vife: int) -> tuple[Decimal, str | None]:
    """The factor and unit a unit VIFE gives a ``ScaledBy`` quantity ("" unit: none)."""
    unit_quantity = (primary if scaled.table == "primary" else fd_table)(vife)
    unit = scaled.quantity.unit if scaled.quantity.unit is not None else unit_quantity.unit
    return unit_quantity.scale, unit or None
