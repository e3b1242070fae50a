"""Push list layouts of HAN meters: Kamstrup, Aidon, Kaifa, Iskra, Landis+Gyr, and generic ones.

A notification body comes in one of four shapes, tried in this order:
1. Landis+Gyr: a structure whose first element is the push object list (class, OBIS, attribute,
   index); the values follow in capture order.
2. Structures ``{OBIS, value[, {scaler, unit}]}`` (Aidon, Kaifa AT/PL, Iskra AT).
3. A flat structure of ``OBIS, value`` pairs, sometimes led by a list version text (Kamstrup,
   Kaifa SE).
4. Values only, placed by position (Kaifa NO, Iskra SI): matched against known layouts by
   element count and types.

Without a scaler in the frame the resolution is the vendor's convention (reference notes,
dlms-kmp-dsmr.md 2.5): Kamstrup currents 0.01 A (mA on CT meters), energy 10 Wh except lists
configured for Wh; Kaifa mA and 0.1 V; Iskra 0.1 V and 0.01 A; Landis+Gyr 0.01 A.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from modules.codecs.dlms.axdr import (
    ARRAY,
    BOOLEAN,
    ENUM,
    INTEGER,
    LONG_UNSIGNED,
    OCTET_STRING,
    STRUCTURE,
    UTF8_STRING,
    VISIBLE_STRING,
    CosemDateTime,
    Data,
    obis_text,
)
from modules.codecs.dlms.layouts import match_layout, type_signature
from modules.codecs.dlms.obis import base_unit, record_name, split_obis
from modules.codecs.records import Record, RecordValue

__all__ = ["ListResult", "interpret"]

# Blue Book 4.3.2: the unit enumeration of scaler_unit, HA spellings where HA has one.
UNIT_ENUM: dict[int, str] = {
    1: "a",
    2: "mo",
    3: "wk",
    4: "d",
    5: "h",
    6: "min",
    7: "s",
    8: "°",
    9: "°C",
    13: "m³",
    14: "m³",
    15: "m³/h",
    16: "m³/h",
    17: "m³/d",
    18: "m³/d",
    19: "L",
    20: "kg",
    21: "N",
    22: "Nm",
    23: "Pa",
    24: "bar",
    25: "J",
    26: "J/h",
    27: "W",
    28: "VA",
    29: "var",
    30: "Wh",
    31: "VAh",
    32: "varh",
    33: "A",
    34: "C",
    35: "V",
    36: "V/m",
    37: "F",
    38: "Ω",
    44: "Hz",
    56: "%",
}
# Energy goes out in the kilo unit Home Assistant's energy dashboard expects.
_KILO = {"Wh": "kWh", "varh": "kvarh", "VAh": "kVAh"}
_TYPE_NAMES = {
    0x03: "boolean",
    0x05: "int32",
    0x06: "uint32",
    0x09: "octet-string",
    0x0A: "visible-string",
    0x0C: "utf8-string",
    0x0F: "int8",
    0x10: "int16",
    0x11: "uint8",
    0x12: "uint16",
    0x14: "int64",
    0x15: "uint64",
    0x16: "enum",
    0x17: "float32",
    0x18: "float64",
    0x19: "date-time",
}
_TEXT_TAGS = (OCTET_STRING, VISIBLE_STRING, UTF8_STRING)
# Kamstrup type numbers end in a market code; meters seen with Swedish codes count energy in Wh
# (amsreader-firmware#239, amshan-homeassistant#43), the others in 10 Wh (Kamstrup HAN NVE).
_KAMSTRUP_WH_MARKETS = ("90", "92")
# Kamstrup CT meters have type numbers 685... and count currents in mA (amshan kamstrup.py).
_KAMSTRUP_CT_PREFIX = "685"
# Below this apparent power the currents are too small to tell their resolution apart.
_MIN_VA_FOR_RESOLUTION = 100
_NOMINAL_VOLTAGE_V = 230


@dataclass(slots=True)
class Element:
    """One list entry: its OBIS code (None when placed by position only) and value."""

    obis: str | None
    data: Data
    scaler: int | None = None
    unit_enum: int | None = None


@dataclass(slots=True)
class ListResult:
    """Records and meter facts read from a notification body."""

    vendor: str | None = None
    layout: str = "unknown"
    list_version: str | None = None
    records: list[Record] = field(default_factory=list)
    meter: dict[str, Any] = field(default_factory=dict)
    # For a value-only list: which layout placed it and why, or what an unknown one holds.
    placement: dict[str, Any] | None = None


def interpret(
    body: Data,
    *,
    system_title: bytes | None = None,
    kamstrup_energy_wh: bool | None = None,
    push: bool = True,
) -> ListResult:
    """Records for every element of a push body, in the units Home Assistant uses.

    ``push=False`` for values that are no push list (a GET result, an event's attribute):
    bare values are then not matched against the positional push layouts.
    """
    result = ListResult()
    elements, result.layout, leading = _elements(body)
    result.list_version = _list_version(elements, leading)
    result.vendor = _vendor(result.list_version, elements, system_title)
    if result.layout == "positional" and not push:
        items = body.items if body.tag in (STRUCTURE, ARRAY) else (body,)
        elements, result.layout = [Element(None, item) for item in items], "values"
    elif result.layout == "positional":
        title_vendor = _vendor(None, [], system_title)
        elements, result.vendor, result.layout, result.placement = _place(
            body, title_vendor, result.vendor
        )
    scalers = _vendor_scalers(result.vendor, elements, kamstrup_energy_wh)
    for index, element in enumerate(elements):
        record = _record(element, index, scalers)
        if record is not None:
            result.records.append(record)
    result.meter = _meter_facts(result, elements)
    return result


# ---------------------------------------------------------------- shapes


def _is_obis(data: Data) -> bool:
    value = data.value
    # A logical name is 6 octets; A (media) is 0..15 in IEC 62056-6-1.
    return (
        data.tag == OCTET_STRING and isinstance(value, bytes) and len(value) == 6 and value[0] < 16
    )


def _is_scaler_unit(data: Data) -> bool:
    items = data.items
    return (
        data.tag == STRUCTURE
        and len(items) == 2
        and items[0].tag == INTEGER
        and items[1].tag == ENUM
    )


def _is_capture_list(data: Data) -> bool:
    items = data.items
    return (
        data.tag == ARRAY
        and bool(items)
        and all(
            len(parts) == 4 and parts[0].tag == LONG_UNSIGNED and _is_obis(parts[1])
            for parts in (item.items for item in items)
        )
    )


def _obis(data: Data) -> str:
    assert isinstance(data.value, bytes)
    return obis_text(data.value)


def _elements(body: Data) -> tuple[list[Element], str, list[Data]]:
    """(labelled elements, layout name, unlabelled leading values such as a list version)."""
    items = body.items if body.tag in (STRUCTURE, ARRAY) else (body,)
    if items and _is_capture_list(items[0]):
        captures = items[0].items
        listed: list[Element] = []
        for capture, value in zip(captures, items, strict=False):
            if capture.items[0].value == 40:
                continue  # the push setup object itself: its object list and logical name
            listed.append(Element(_obis(capture.items[1]), value))
        return listed, "capture-list", []
    # Pairs and {OBIS, value[, scaler-unit]} structures may be mixed in one list (Kaifa PL).
    elements: list[Element] = []
    leading: list[Data] = []
    index = 0
    structured = False
    while index < len(items):
        item = items[index]
        parts = item.items if item.tag == STRUCTURE else ()
        if parts and _is_obis(parts[0]):
            element = Element(_obis(parts[0]), parts[1] if len(parts) > 1 else Data(0, None))
            if len(parts) > 2 and _is_scaler_unit(parts[2]):
                _scaler_unit(element, parts[2])
            elements.append(element)
            structured = True
            index += 1
            continue
        if _is_obis(item) and index + 1 < len(items):
            element = Element(_obis(item), items[index + 1])
            index += 2
            if index < len(items) and _is_scaler_unit(items[index]):
                _scaler_unit(element, items[index])
                index += 1
            elements.append(element)
            continue
        if item.tag != 0 and not elements:
            leading.append(item)
        index += 1
    if elements:
        return elements, "obis-structures" if structured else "obis-pairs", leading
    return [], "positional", list(items[:1])


def _scaler_unit(element: Element, pair: Data) -> None:
    scaler, unit = pair.items
    element.scaler = int(scaler.value) if isinstance(scaler.value, int) else None
    element.unit_enum = int(unit.value) if isinstance(unit.value, int) else None


_PRINTABLE = re.compile(rb"[\x20-\x7e]+")


def _text(data: Data) -> str | None:
    if isinstance(data.value, str):
        return data.value
    if isinstance(data.value, bytes) and _PRINTABLE.fullmatch(data.value):
        return data.value.decode("ascii")
    return None


def _list_version(elements: list[Element], leading: list[Data]) -> str | None:
    for element in elements:
        groups = split_obis(element.obis or "")
        if groups and groups[2:5] == (0, 2, 129):
            return _text(element.data)
    for item in leading:
        text = _text(item)
        if text:
            return text
    return None


def _vendor(
    list_version: str | None, elements: list[Element], system_title: bytes | None
) -> str | None:
    text = (list_version or "").upper()
    for prefix, vendor in (
        ("KAMSTRUP", "Kamstrup"),
        ("AIDON", "Aidon"),
        ("KFM", "Kaifa"),
        ("ISK", "Iskra"),
        ("LGZ", "Landis+Gyr"),
    ):
        if text.startswith(prefix):
            return vendor
    title = (system_title or b"")[:3]
    titles = {b"KAM": "Kamstrup", b"KFM": "Kaifa", b"ISK": "Iskra", b"LGZ": "Landis+Gyr"}
    if title in titles:
        return titles[title]
    if any(e.obis == "0-0:42.0.0" and (_text(e.data) or "").startswith("ISK") for e in elements):
        return "Iskra"
    return None


def _place(
    body: Data, title_vendor: str | None, vendor: str | None
) -> tuple[list[Element], str | None, str, dict[str, Any]]:
    """(elements placed by a known layout, its vendor, its name, how it was found).

    Unknown lists keep every value, unlabelled, with their positions and types, so a user can
    report the list and a layout can be added as data.
    """
    items = body.items if body.tag in (STRUCTURE, ARRAY) else (body,)
    found = match_layout(items, title_vendor)
    header = _text(items[0]) if items else None
    if found is None:
        placement: dict[str, Any] = {
            "name": "unknown",
            "vendor": vendor,
            "positions": len(items),
            "types": type_signature(items),
            "header": header,
        }
        return [Element(None, item) for item in items], vendor, "unknown", placement
    layout = found.layout
    placed = [
        Element(code, item, scaler if code else None)
        for item, (code, _k, scaler) in zip(items, layout.slots, strict=True)
    ]
    placement = {
        "name": layout.name,
        "vendor": layout.vendor,
        "positions": len(items),
        "identified_by": found.identified_by,
        "header": header,
        "unnamed_positions": [i for i, (code, _k, _s) in enumerate(layout.slots) if code is None],
    }
    return placed, layout.vendor, layout.name, placement


# ---------------------------------------------------------------- scaling


def _groups(element: Element) -> tuple[int, int, int] | None:
    return _cde(element.obis or "")


@lru_cache(maxsize=1024)
def _cde(code: str) -> tuple[int, int, int] | None:
    groups = split_obis(code)
    return None if groups is None else (groups[2], groups[3], groups[4])


def _raw_number(element: Element | None) -> float | None:
    if element is None or not element.data.is_number:
        return None
    value = element.data.value
    return float(value) if isinstance(value, (int, float)) else None


def _current_exponent(elements: list[Element], candidates: tuple[int, ...], default: int) -> int:
    """The current resolution that makes Σ U·I agree with the apparent power in the list."""
    by_cd = {cde[:2]: e for e in elements if (cde := _groups(e)) is not None}

    def value(c: int, d: int = 7) -> float | None:
        return _raw_number(by_cd.get((c, d)))

    p = max(value(1) or 0.0, value(2) or 0.0)
    q = max(value(3) or 0.0, value(4) or 0.0)
    apparent = math.hypot(p, q)
    phases = [(value(u), value(i)) for u, i in ((32, 31), (52, 51), (72, 71))]
    raw_va = sum((u or _NOMINAL_VOLTAGE_V) * i for u, i in phases if i is not None)
    if apparent < _MIN_VA_FOR_RESOLUTION or raw_va <= 0:
        return default
    return min(candidates, key=lambda e: abs(math.log10(raw_va * 10.0**e / apparent)))


def _vendor_scalers(
    vendor: str | None, elements: list[Element], kamstrup_energy_wh: bool | None
) -> dict[tuple[int, int], int]:
    """(C, D) -> scaler for elements whose frame carries none."""
    scalers: dict[tuple[int, int], int] = {}
    currents = ((31, 7), (51, 7), (71, 7))
    if vendor == "Kamstrup":
        meter_type = next((_text(e.data) or "" for e in elements if _groups(e) == (96, 1, 1)), "")
        if kamstrup_energy_wh is None:
            kamstrup_energy_wh = meter_type[-2:] in _KAMSTRUP_WH_MARKETS
        default_current = -3 if meter_type.startswith(_KAMSTRUP_CT_PREFIX) else -2
        current = _current_exponent(elements, (-3, -2), default_current)
        scalers.update(dict.fromkeys(currents, current))
        scalers.update(dict.fromkeys(((13, 7), (33, 7), (53, 7), (73, 7)), -2))
        energy = 0 if kamstrup_energy_wh else 1
        for element in elements:
            groups = _groups(element)
            if groups and groups[1] == 8:
                scalers[groups[:2]] = energy
    elif vendor == "Kaifa":
        scalers.update(dict.fromkeys(currents, -3))
        scalers.update(dict.fromkeys(((32, 7), (52, 7), (72, 7)), -1))
    elif vendor == "Iskra":
        scalers.update(dict.fromkeys(currents, -2))
        scalers.update(dict.fromkeys(((32, 7), (52, 7), (72, 7)), -1))
    elif vendor == "Landis+Gyr":
        scalers.update(dict.fromkeys(currents, _current_exponent(elements, (-3, -2, -1), -2)))
    elif vendor is None and not any(e.unit_enum is not None for e in elements):
        # An unknown list without scalers: pick the current resolution the powers agree with.
        scalers.update(dict.fromkeys(currents, _current_exponent(elements, (-3, -2, -1, 0), 0)))
    return scalers


# ---------------------------------------------------------------- records


def _scaled(raw: int | float, scaler: int) -> RecordValue:
    if isinstance(raw, float):
        return raw * 10.0**scaler if scaler else raw
    if scaler == 0:
        return raw
    return Decimal(raw).scaleb(scaler)


def _record(element: Element, index: int, scalers: dict[tuple[int, int], int]) -> Record | None:
    data = element.data
    code = element.obis
    type_name = _TYPE_NAMES.get(data.tag)
    raw_facts: dict[str, Any] = {"type": type_name or f"0x{data.tag:02x}"}
    if code is None:
        raw_facts["position"] = index
    name = record_name(code) if code else f"value_{index}"
    groups = _groups(element)
    if data.tag in (STRUCTURE, ARRAY):
        raw_facts["value"] = data.to_json()
        return Record(name, None, None, code, raw=raw_facts)
    if data.tag == 0:
        return None
    if data.tag == BOOLEAN:
        return Record(name, int(bool(data.value)), None, code, raw=raw_facts)
    if data.tag in _TEXT_TAGS or data.tag == 0x19:
        raw_bytes = data.value if isinstance(data.value, bytes) else None
        if raw_bytes is not None:
            raw_facts["hex"] = raw_bytes.hex()
        if raw_bytes is not None and len(raw_bytes) == 12:
            stamp = CosemDateTime.parse(raw_bytes)
            iso = stamp.iso()
            if iso is not None:
                raw_facts["clock_status"] = f"0x{stamp.status:02x}"
                return Record(name if code else "date_time", iso, None, code, raw=raw_facts)
        text = _text(data)
        value = text.strip() if text is not None else (raw_bytes or b"").hex()
        return Record(name, value, None, code, raw=raw_facts)
    if not data.is_number or not isinstance(data.value, (int, float)):
        return Record(name, str(data.value), None, code, raw=raw_facts)
    raw_number = data.value
    raw_facts["raw"] = raw_number
    unit: str | None
    if element.unit_enum is not None:
        raw_facts["scaler"] = element.scaler
        raw_facts["unit_enum"] = element.unit_enum
        unit = UNIT_ENUM.get(element.unit_enum)
        scaler = element.scaler or 0
    else:
        unit = base_unit(code) if code else None
        scaler = element.scaler if element.scaler is not None else 0
        if groups is not None and element.scaler is None:
            scaler = scalers.get(groups[:2], 0)
        if scaler:
            raw_facts["scaler"] = scaler
    if data.tag == ENUM and element.unit_enum is None and unit is None:
        return Record(name, raw_number, None, code, raw=raw_facts)
    if unit in _KILO:
        unit, scaler = _KILO[unit], scaler - 3
    return Record(name, _scaled(raw_number, scaler), unit, code, raw=raw_facts)


def _meter_facts(result: ListResult, elements: list[Element]) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if result.vendor:
        facts["manufacturer"] = result.vendor
    if result.list_version:
        facts["list_version"] = result.list_version
    texts = {
        _groups(e): (_text(e.data) or "").strip() for e in elements if e.data.tag in _TEXT_TAGS
    }
    id_codes = [(0, 0, 5), (96, 1, 0), (96, 1, 1), (96, 1, 3), (96, 1, 2), (42, 0, 0)]
    if result.vendor == "Kamstrup":
        id_codes.remove((96, 1, 1))
        if texts.get((96, 1, 1)):
            facts["type"] = texts[(96, 1, 1)]
    if texts.get((96, 1, 7)):
        facts["type"] = texts[(96, 1, 7)]
    meter_id = next((texts[c] for c in id_codes if texts.get(c)), None)
    if meter_id:
        facts["id"] = meter_id
    clock = next(
        (r.value for r in result.records if r.name == "meter_time" and isinstance(r.value, str)),
        None,
    )
    if clock:
        facts["time"] = clock
    return facts
