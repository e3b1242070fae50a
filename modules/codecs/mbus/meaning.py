"""What an M-Bus record's value means: its VIF and VIFEs combined, and its data decoded."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from modules.codecs.mbus import types
from modules.codecs.mbus.manufacturers import (
    LINE_PAIRS,
    Convention,
    ScaledBy,
    convention,
    header_meaning,
    scale_of,
)
from modules.codecs.mbus.vif import Kind, Quantity, fb_table, fd_table, primary
from modules.codecs.mbus.vife import Vife, combinable, combinable_extension
from modules.codecs.records import RecordValue

__all__ = ["BCD_LENGTHS", "Meaning", "apply_header", "decode_value", "describe"]

# Data field (DIF bits 0-3) -> BCD length in bytes.
BCD_LENGTHS = {0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xE: 6}


@dataclass(slots=True)
class Meaning:
    """A quantity after its VIFEs: name parts, unit, scale and what OBIS needs."""

    quantity: Quantity
    suffixes: list[str]
    scale: Decimal
    unit: str | None
    kind: Kind
    direction: str | None = None
    phase: str | None = None
    plain: bool = True
    record_error: str | None = None
    manufacturer_vifes: bytes = b""
    rate_period: tuple[str, str] | None = None  # (rate unit, "per" time unit) of a rate


def describe(
    vif: int | None,
    vifes: bytes,
    plain_text: str | None,
    manufacturer: str | None,
    medium: int | None = None,
) -> Meaning:
    """What a VIF, its VIFEs (and plain-text unit) say about the record's value.

    ``manufacturer`` and ``medium`` select the manufacturer's documented codes (VIF 0xFF
    quantities, VIFEs after a VIFE 0xFF), see ``mbus.manufacturers``.
    """
    conv = convention(manufacturer, medium)
    vif = vif if vif is not None else 0
    code = vif & 0x7F
    if code == 0x7F:
        return _manufacturer_vif(vifes, conv)
    if code in (0x7B, 0x7D) and vifes:
        quantity = (fb_table if code == 0x7B else fd_table)(vifes[0])
        vifes = vifes[1:]
    elif code == 0x7C:
        quantity = Quantity(_slug(plain_text or ""), plain_text or None)
    else:
        quantity = primary(vif)
    meaning = Meaning(quantity, [], quantity.scale, quantity.unit, quantity.kind)
    _apply_vifes(meaning, vifes, conv)
    return meaning


def _manufacturer_vif(vifes: bytes, conv: Convention | None) -> Meaning:
    """VIF 0xFF: the manufacturer's own quantity, known when its convention documents it."""
    known = conv.vifs.get(vifes[0] & 0x7F) if conv is not None and vifes else None
    if isinstance(known, ScaledBy) and len(vifes) >= 2:
        scale, unit = scale_of(known, vifes[1])
        quantity = known.quantity
        meaning = Meaning(quantity, [], scale, unit, quantity.kind)
        meaning.manufacturer_vifes = vifes[:2]
        if vifes[1] & 0x80:
            _apply_vifes(meaning, vifes[2:], conv)
        meaning.plain = meaning.plain and bool(quantity.family)
        return meaning
    if isinstance(known, Quantity):
        meaning = Meaning(known, [], known.scale, known.unit, known.kind)
        meaning.plain = bool(known.family)
    else:
        fallback = primary(0x7F)
        meaning = Meaning(fallback, [], fallback.scale, None, fallback.kind, plain=False)
    meaning.manufacturer_vifes = vifes
    return meaning


def _apply_vifes(meaning: Meaning, vifes: bytes, conv: Convention | None) -> None:
    """Apply a chain of combinable VIFEs; 0xFC extends the table, 0xFF the manufacturer's."""
    index = 0
    while index < len(vifes):
        vife = vifes[index] & 0x7F
        following = vifes[index + 1] if index + 1 < len(vifes) else None
        if vife == 0x7C and following is not None:
            _apply(meaning, combinable_extension(following))
            index += 2
            continue
        if vife == 0x7F:
            known = None
            if conv is not None and following is not None:
                known = conv.vifes.get(following & 0x7F)
            if known is None:
                meaning.suffixes.append("manufacturer_specific")
                meaning.plain = False
                meaning.manufacturer_vifes = vifes[index + 1 :]
                return
            _apply(meaning, known)
            meaning.manufacturer_vifes += bytes([following or 0])
            index += 2
            continue
        if vife == 0x7C:
            index += 1
            continue
        _apply(meaning, combinable(vife))
        index += 1


_RATE_UNITS = {"W", "var", "VA", "MJ/h", "m³/h", "kg/h"}
_PERIODS = {
    "s": "second",
    "min": "minute",
    "h": "hour",
    "d": "day",
    "week": "week",
    "month": "month",
    "a": "year",
}


def _apply(meaning: Meaning, vife: Vife) -> None:
    if vife.direction is not None:
        meaning.direction = vife.direction
    elif vife.suffix:
        meaning.suffixes.append(vife.suffix)
    meaning.scale *= vife.scale
    if vife.phase is not None:
        meaning.phase = vife.phase
    if vife.kind is not None:
        meaning.kind = vife.kind
    if vife.unit != "":
        meaning.unit = vife.unit
    if vife.per in _PERIODS and meaning.unit in _RATE_UNITS:
        meaning.rate_period = (meaning.unit, vife.per)
    if vife.per and meaning.unit:
        per = vife.per
        meaning.unit += f"·{per[1:]}" if per.startswith("*") else f"/{per}"
    if vife.record_error is not None:
        if vife.record_error != "none":
            meaning.record_error = vife.record_error
            meaning.plain = False
    elif not vife.plain:
        meaning.plain = False


# Units an energy or power VIF gives, as the quantity a manufacturer's subunit names.
_RENAMED_UNITS = {
    "reactive_energy": {"kWh": "kvarh"},
    "apparent_energy": {"kWh": "kVAh"},
    "reactive_power": {"W": "var"},
    "apparent_power": {"W": "VA"},
    "energy": {"kWh": "kWh"},
    "power": {"W": "W"},
}


def apply_header(
    meaning: Meaning,
    manufacturer: str | None,
    medium: int | None,
    *,
    subunit: int,
    tariff: int,
    function: str = "instantaneous",
) -> tuple[int, bool]:
    """Apply what the manufacturer documents for the record's subunit or tariff.

    Returns the record's tariff and whether an OBIS code may be given: a subunit the
    manufacturer documents but whose meaning is not known here gets none.
    """
    if meaning.rate_period is not None and function in ("maximum", "minimum"):
        # The maximum of a power "per month" is the month's maximum (Zenner C5 sends
        # 94 80 01 AE 25): a rate divided by time again is no meter quantity.
        unit, per = meaning.rate_period
        meaning.unit = unit
        meaning.suffixes = [
            f"period_{_PERIODS[per]}" if part == f"per_{_PERIODS[per]}" else part
            for part in meaning.suffixes
        ]
    conv = convention(manufacturer, medium)
    family = meaning.quantity.family
    found = header_meaning(conv, family, subunit, tariff, meaning.phase)
    if found is None:
        return tariff, not (subunit and conv is not None and conv.subunits)
    if found.tariff is not None:
        tariff = found.tariff
    if found.phase is not None:
        first = meaning.manufacturer_vifes[:1]
        pairs = conv is not None and first and first[0] & 0x7F in conv.line_to_line
        meaning.phase = LINE_PAIRS[found.phase] if pairs else found.phase
    if found.family is not None and found.family != family:
        renamed = _RENAMED_UNITS.get(found.family, {}).get(meaning.unit or "")
        if renamed is None:
            return tariff, False
        meaning.quantity = replace(meaning.quantity, name=found.family, family=found.family)
        meaning.unit = renamed
    if found.backward:
        meaning.direction = "backward"
    if found.suffix:
        meaning.suffixes.append(found.suffix)
        meaning.plain = False
    return tariff, found.obis


def _slug(text: str) -> str:
    slug = "".join(c.lower() if c.isalnum() else "_" for c in text.strip())
    return "_".join(part for part in slug.split("_") if part) or "plain_text"


def decode_value(
    field: int, lvar: int | None, data: bytes, meaning: Meaning, raw: dict[str, Any]
) -> RecordValue:
    """The value of a record's data bytes (wire order); notes oddities in ``raw``."""
    kind = meaning.kind
    if lvar is not None:
        return _lvar_value(lvar, data, meaning, raw)
    if not data:
        return None
    if field in BCD_LENGTHS:
        number, invalid = types.bcd_decode(data)
        if invalid:
            raw["bcd_invalid"] = True
        if kind == "ident" and not invalid:
            return f"{number:0{2 * len(data)}d}"
        if kind == "time":
            return _time_value(data, meaning)
        return types.scaled(number, meaning.scale)
    if field == 0x05:
        real = types.real_decode(data)
        if not math.isfinite(real):
            raw["real_invalid"] = True
            return None
        return float(types.real_decimal(real) * meaning.scale)
    if kind == "time":
        return _time_value(data, meaning)
    if kind in ("ident", "bits"):
        unsigned = types.int_decode(data, signed=False)
        return str(unsigned) if kind == "ident" else unsigned
    return types.scaled(types.int_decode(data), meaning.scale)


def _time_value(data: bytes, meaning: Meaning) -> str | None:
    if meaning.quantity.name == "daylight_saving" and len(data) == 4:
        return types.daylight_saving_k(data)
    match len(data):
        case 2:
            day = types.date_g(data)
            return day.isoformat() if day else None
        case 3:
            clock = types.time_j(data)
            return clock.isoformat() if clock else None
        case 4:
            moment = types.datetime_f(data)
            return moment.isoformat() if moment else None
        case 6:
            moment = types.datetime_i(data)
            return moment.isoformat() if moment else None
    return data[::-1].hex().upper()


_PROFILES = {"compact_profile", "inverse_compact_profile", "compact_profile_with_register"}


def _unnamed(meaning: Meaning) -> bool:
    """Whether the manufacturer-specific part of the record's meaning is undocumented here."""
    return meaning.quantity.name == "manufacturer_specific" or (
        "manufacturer_specific" in meaning.suffixes
    )


def _lvar_value(lvar: int, data: bytes, meaning: Meaning, raw: dict[str, Any]) -> RecordValue:
    raw["lvar"] = f"{lvar:02x}"
    if lvar <= 0xBF and _PROFILES & set(meaning.suffixes):
        # A profile is a series of values, not one: it goes to raw, the value stays empty.
        profile = types.decode_profile(data, meaning.scale)
        if profile is None:
            raw["profile_invalid"] = True
        else:
            raw["profile"] = profile
        return None
    if lvar <= 0xBF and meaning.manufacturer_vifes and not meaning.plain and _unnamed(meaning):
        # Bytes only the manufacturer can read are no text: kept as sent.
        return data.hex().upper()
    if lvar <= 0xBF:
        # Texts travel last character first, like every other multi-byte field.
        return data[::-1].decode("latin-1").rstrip("\x00")
    if not data:
        return None
    if lvar <= 0xD9:
        number, invalid = types.bcd_decode(data)
        if invalid:
            raw["bcd_invalid"] = True
        return types.scaled(-number if lvar >= 0xD0 else number, meaning.scale)
    return data[::-1].hex().upper()
