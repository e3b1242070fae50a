"""Known value-only push layouts (Kaifa NO, Iskra SI, Landis+Gyr AT), as data.

A push list without logical names is placed by position. Which layout applies is decided, in
this order, by:
1. the list's own header: a list identifier at position 0 (Kaifa ``KFM_001``) or the meter's
   device name there (Iskra ``ISK1030775213859``, COSEM logical device name 0-0:42.0.0);
2. the meter, when the frame names it another way (the system title's FLAG id: KFM, ISK, LGZ);
3. the length and the element types alone (text, bool, uint16, uint32).
Within what 1 or 2 leave, the length and the types still have to fit every slot.

The orders come from amsreader-firmware IEC6205675.cpp and amshan kaifa.py (Kaifa NO lists 1-3
of the NVE scheme, Iskra AM550 lists of the Slovenian and Austrian DSOs) and from Netz
Burgenland's L+G E450 list (amsreader-firmware#501).
"""

from __future__ import annotations

from dataclasses import dataclass

from modules.codecs.dlms.axdr import (
    BOOLEAN,
    DOUBLE_LONG_UNSIGNED,
    LONG_UNSIGNED,
    OCTET_STRING,
    UTF8_STRING,
    VISIBLE_STRING,
    Data,
)

__all__ = ["LAYOUTS", "Layout", "Match", "Slot", "match_layout", "type_signature"]

Slot = tuple[str | None, str, int]  # (OBIS code or None, expected type, scaler)
_TEXT_TAGS = (OCTET_STRING, VISIBLE_STRING, UTF8_STRING)

_STR, _NUM, _BOOL, _U16, _U32, _TIME = "str", "num", "bool", "u16", "u32", "time"
_ANY = "any"  # a position whose meaning no public document gives; any type fits
_ISKRA_IDS = ("0-0:42.0.0", _STR)


def _u(code: str | None, kind: str = _NUM, scaler: int = 0) -> Slot:
    return code, kind, scaler


# (vendor, name, [(OBIS, expected type, scaler)]): amsreader-firmware IEC6205675.cpp and
# amshan kaifa.py document these orders; the element types tell same-sized lists apart.
_KAIFA_PHASES = [
    _u("1-0:1.7.0"),
    _u("1-0:2.7.0"),
    _u("1-0:3.7.0"),
    _u("1-0:4.7.0"),
]
_KAIFA_HEAD = [_u("1-1:0.2.129", _STR), _u("0-0:96.1.0", _STR), _u("0-0:96.1.7", _STR)]
_KAIFA_3P = [
    *_KAIFA_HEAD,
    *_KAIFA_PHASES,
    _u("1-0:31.7.0", _NUM, -3),
    _u("1-0:51.7.0", _NUM, -3),
    _u("1-0:71.7.0", _NUM, -3),
    _u("1-0:32.7.0", _NUM, -1),
    _u("1-0:52.7.0", _NUM, -1),
    _u("1-0:72.7.0", _NUM, -1),
]
_KAIFA_1P = [*_KAIFA_HEAD, *_KAIFA_PHASES, _u("1-0:31.7.0", _NUM, -3), _u("1-0:32.7.0", _NUM, -1)]
_KAIFA_HOURLY = [
    _u("0-0:1.0.0", _TIME),
    _u("1-0:1.8.0"),
    _u("1-0:2.8.0"),
    _u("1-0:3.8.0"),
    _u("1-0:4.8.0"),
]
_ISKRA_U = [_u("1-0:32.7.0", _U16, -1), _u("1-0:52.7.0", _U16, -1), _u("1-0:72.7.0", _U16, -1)]
_ISKRA_I = [_u("1-0:31.7.0", _U16, -2), _u("1-0:51.7.0", _U16, -2), _u("1-0:71.7.0", _U16, -2)]
_ISKRA_P = [
    _u("1-0:1.7.0", _U32),
    _u("1-0:2.7.0", _U32),
    _u("1-0:3.7.0", _U32),
    _u("1-0:4.7.0", _U32),
]
# A+ and A- in total and per tariff T1, T2.
_ISKRA_ENERGY_TARIFFS = [_u(f"1-0:{c}.8.{t}", _U32) for c in (1, 2) for t in (0, 1, 2)]
_LAYOUT_ROWS: list[tuple[str, str, list[Slot]]] = [
    ("Kaifa", "kaifa-list1", [_u("1-0:1.7.0", _U32)]),
    ("Kaifa", "kaifa-list2-3phase", _KAIFA_3P),
    ("Kaifa", "kaifa-list3-3phase", [*_KAIFA_3P, *_KAIFA_HOURLY]),
    ("Kaifa", "kaifa-list2-1phase", _KAIFA_1P),
    ("Kaifa", "kaifa-list3-1phase", [*_KAIFA_1P, *_KAIFA_HOURLY]),
    (
        "Iskra",
        "iskra-instantaneous",
        [
            _u(*_ISKRA_IDS),
            _u("0-0:96.1.3", _STR),
            *_ISKRA_P,
            *_ISKRA_U,
            *_ISKRA_I,
            _u("1-0:21.7.0", _U32),
            _u("1-0:41.7.0", _U32),
            _u("1-0:61.7.0", _U32),
            _u("1-0:22.7.0", _U32),
            _u("1-0:42.7.0", _U32),
            _u("1-0:62.7.0", _U32),
        ],
    ),
    (
        "Iskra",
        "iskra-energy",
        [
            _u(*_ISKRA_IDS),
            _u("0-0:96.1.3", _STR),
            _u("0-0:96.3.10", _BOOL),
            _u("0-0:96.14.0", _NUM),
            *_ISKRA_ENERGY_TARIFFS,
            _u("1-0:3.8.0", _U32),
            _u("1-0:4.8.0", _U32),
        ],
    ),
    (
        # Netz Burgenland E450 (amsreader-firmware#501): three values are not documented.
        "Landis+Gyr",
        "lgz-at-burgenland",
        [
            _u("1-0:32.7.0", _U16),
            _u("1-0:52.7.0", _U16),
            _u("1-0:72.7.0", _U16),
            _u("1-0:31.7.0", _U16, -2),
            _u("1-0:51.7.0", _U16, -2),
            _u("1-0:71.7.0", _U16, -2),
            _u("1-0:1.7.0", _U32),
            _u("1-0:2.7.0", _U32),
            _u("1-0:1.8.0", _U32),
            _u("1-0:2.8.0", _U32),
            _u(None, _U16),
            _u(None, _U16),
            _u(None, _U16),
            _u("0-0:96.1.0", _STR),
        ],
    ),
    (
        "Iskra",
        "iskra-3phase",
        [_u(*_ISKRA_IDS), _u("0-0:96.1.2", _STR), *_ISKRA_U, *_ISKRA_I, *_ISKRA_P],
    ),
    (
        "Iskra",
        "iskra-1phase",
        [
            _u(*_ISKRA_IDS),
            _u("0-0:96.1.2", _STR),
            *_ISKRA_P,
            _ISKRA_U[0],
            _ISKRA_I[0],
            _u("1-0:21.7.0", _U32),
            _u("1-0:22.7.0", _U32),
        ],
    ),
    (
        "Iskra",
        "iskra-tariffs",
        [
            _u(*_ISKRA_IDS),
            _u("0-0:96.1.3", _STR),
            *(_u(f"1-0:{c}.8.{t}", _U32) for c in (1, 2, 3, 4) for t in (1, 2)),
        ],
    ),
    (
        "Iskra",
        "iskra-1phase-short",
        [_u(*_ISKRA_IDS), _u("0-0:96.1.2", _STR), _ISKRA_U[0], _ISKRA_I[0], *_ISKRA_P],
    ),
]


_LAYOUT_ROWS += [
    (
        # ISK list of 9 with a uint16 at position 7 (amsreader IEC6205675.cpp): a single-phase
        # prosumer list with the export tariff registers.
        "Iskra",
        "iskra-1phase-export",
        [
            _u(*_ISKRA_IDS),
            _u("0-0:96.1.2", _STR),
            *_ISKRA_P,
            _ISKRA_U[0],
            _u("1-0:2.8.1", _U32),
            _u("1-0:2.8.2", _U32),
        ],
    ),
    (
        # The 33-value AM550 list that starts without a device name (amsreader IEC6205675.cpp,
        # "Iskra, length 0x21"): four leading and four trailing values are not documented.
        "Iskra",
        "iskra-am550-full",
        [
            *(_u(None, _ANY) for _ in range(4)),
            *_ISKRA_ENERGY_TARIFFS,
            *(_u(f"1-0:{c}.8.0", _U32) for c in (5, 6, 7, 8)),
            _u("1-0:1.7.0", _U32),
            _u("1-0:2.7.0", _U32),
            _u("1-0:13.7.0", _U32, -3),
            *(_u(f"1-0:{c}.7.0", _U32) for c in (21, 41, 61, 22, 42, 62)),
            *_ISKRA_U,
            *_ISKRA_I,
            *(_u(None, _ANY) for _ in range(4)),
        ],
    ),
]


@dataclass(frozen=True, slots=True)
class Layout:
    """One value-only list: its slots and the header texts that name it."""

    vendor: str
    name: str
    slots: tuple[Slot, ...]
    list_ids: tuple[str, ...] = ()  # prefixes of a list identifier at position 0
    meter_ids: tuple[str, ...] = ()  # prefixes of the meter's device name at position 0


@dataclass(frozen=True, slots=True)
class Match:
    """The layout a list was placed by, and what identified it."""

    layout: Layout
    identified_by: str  # "list identifier", "meter id", "system title", "length and types"


# Which texts at position 0 name a family: Kaifa sends its list identifier there, Iskra the
# meter's COSEM logical device name (0-0:42.0.0), which starts with its FLAG id.
_HEADERS = {"Kaifa": (("KFM_",), ()), "Iskra": ((), ("ISK",))}
LAYOUTS: tuple[Layout, ...] = tuple(
    Layout(vendor, name, tuple(slots), *_HEADERS.get(vendor, ((), ())))
    for vendor, name, slots in _LAYOUT_ROWS
)


def type_signature(items: tuple[Data, ...]) -> list[str]:
    """The A-XDR type of each position, as the layout table spells them (for unknown lists)."""
    names = []
    for item in items:
        if item.tag in _TEXT_TAGS:
            names.append(_STR)
        elif item.tag == BOOLEAN:
            names.append(_BOOL)
        elif item.tag == LONG_UNSIGNED:
            names.append(_U16)
        elif item.tag == DOUBLE_LONG_UNSIGNED:
            names.append(_U32)
        else:
            names.append(_OTHER_TYPES.get(item.tag, f"0x{item.tag:02x}"))
    return names


_OTHER_TYPES = {
    0x00: "null",
    0x01: "array",
    0x02: "structure",
    0x05: "i32",
    0x0F: "i8",
    0x10: "i16",
    0x11: "u8",
    0x14: "i64",
    0x15: "u64",
    0x16: "enum",
    0x17: "f32",
    0x18: "f64",
    0x19: "date-time",
}


def _fits(data: Data, kind: str) -> bool:
    if kind == _ANY:
        return True
    if kind == _STR:
        return data.tag in _TEXT_TAGS
    if kind == _TIME:
        return data.tag == OCTET_STRING and isinstance(data.value, bytes) and len(data.value) == 12
    if kind == _BOOL:
        return data.tag == BOOLEAN
    if kind == _U16:
        return data.tag == LONG_UNSIGNED
    if kind == _U32:
        return data.tag == DOUBLE_LONG_UNSIGNED
    return data.is_number


def _header_text(items: tuple[Data, ...]) -> str | None:
    first = items[0].value if items else None
    if isinstance(first, str):
        return first
    if isinstance(first, bytes) and first and all(32 <= b < 127 for b in first):
        return first.decode("ascii")
    return None


def match_layout(items: tuple[Data, ...], vendor: str | None) -> Match | None:
    """The known layout these values fit, or None.

    ``vendor`` is what the frame says besides the list (the system title); a header text at
    position 0 that names a family wins over it.
    """
    fitting = [
        layout
        for layout in LAYOUTS
        if len(layout.slots) == len(items)
        and all(_fits(item, kind) for item, (_c, kind, _s) in zip(items, layout.slots, strict=True))
    ]
    header = (_header_text(items) or "").upper()
    if header:
        for layout in fitting:
            if any(header.startswith(prefix) for prefix in layout.list_ids):
                return Match(layout, "list identifier")
            if any(header.startswith(prefix) for prefix in layout.meter_ids):
                return Match(layout, "meter id")
        if any(
            header.startswith(p) for known in LAYOUTS for p in (*known.list_ids, *known.meter_ids)
        ):
            # The header names a family none of whose layouts fits: do not guess another's.
            return None
    if vendor is not None:
        fitting = [layout for layout in fitting if layout.vendor == vendor]
        return Match(fitting[0], "system title") if fitting else None
    return Match(fitting[0], "length and types") if fitting else None
