"""What an M-Bus record's value means: its VIF and VIFEs combined, and its data decoded."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.decoding import RecordValue
from modules.codecs import mbus_types as types
from modules.codecs.mbus_vif import Kind, Quantity, fb_table, fd_table, manufacturer_table, primary
from modules.codecs.mbus_vife import Vife, combinable, combinable_extension

__all__ = ["BCD_LENGTHS", "Meaning", "decode_value", "describe"]

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


def describe(
    vif: int | None, vifes: bytes, plain_text: str | None, manufacturer: str | None
) -> Meaning:
    """What a VIF, its VIFEs (and plain-text unit) say about the record's value."""
    vif = vif if vif is not None else 0
    code = vif & 0x7F
    if code in (0x7B, 0x7D) and vifes:
        quantity = (fb_table if code == 0x7B else fd_table)(vifes[0])
        vifes = vifes[1:]
    elif code == 0x7C:
        quantity = Quantity(_slug(plain_text or ""), plain_text or None)
    else:
        quantity = primary(vif)
    meaning = Meaning(quantity, [], quantity.scale, quantity.unit, quantity.kind)
    if code == 0x7F:
        known = manufacturer_table(manufacturer, vifes[0]) if vifes else None
        if known is not None:
            meaning = Meaning(known, [], known.scale, known.unit, known.kind)
        meaning.plain = False
        meaning.manufacturer_vifes = vifes
        return meaning
    extension = False
    for index, vife in enumerate(vifes):
        if extension:
            _apply(meaning, combinable_extension(vife))
            extension = False
        elif vife & 0x7F == 0x7C:
            extension = True
        elif vife & 0x7F == 0x7F:
            meaning.suffixes.append("manufacturer_specific")
            meaning.plain = False
            meaning.manufacturer_vifes = vifes[index + 1 :]
            break
        else:
            _apply(meaning, combinable(vife))
    return meaning


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
    if vife.per and meaning.unit:
        per = vife.per
        meaning.unit += f"·{per[1:]}" if per.startswith("*") else f"/{per}"
    if vife.record_error is not None:
        if vife.record_error != "none":
            meaning.record_error = vife.record_error
            meaning.plain = False
    elif not vife.plain:
        meaning.plain = False


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


def _lvar_value(lvar: int, data: bytes, meaning: Meaning, raw: dict[str, Any]) -> RecordValue:
    raw["lvar"] = f"{lvar:02x}"
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
