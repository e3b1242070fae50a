"""Known value-only push layouts (Kaifa NO, Iskra SI, Landis+Gyr AT), matched by count and types.

The orders come from amsreader-firmware IEC6205675.cpp and amshan kaifa.py; when two layouts
have the same length, the element types (text, bool, uint16, uint32) tell them apart.
"""

from __future__ import annotations

from modules.codecs.dlms.axdr import (
    BOOLEAN,
    DOUBLE_LONG_UNSIGNED,
    LONG_UNSIGNED,
    OCTET_STRING,
    UTF8_STRING,
    VISIBLE_STRING,
    Data,
)

__all__ = ["LAYOUTS", "Slot", "match_layout"]

Slot = tuple[str | None, str, int]  # (OBIS code or None, expected type, scaler)
_TEXT_TAGS = (OCTET_STRING, VISIBLE_STRING, UTF8_STRING)

_STR, _NUM, _BOOL, _U16, _U32, _TIME = "str", "num", "bool", "u16", "u32", "time"
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
LAYOUTS: list[tuple[str, str, list[Slot]]] = [
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
            _u("1-0:1.8.0", _U32),
            _u("1-0:1.8.1", _U32),
            _u("1-0:1.8.2", _U32),
            _u("1-0:2.8.0", _U32),
            _u("1-0:2.8.1", _U32),
            _u("1-0:2.8.2", _U32),
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


def _fits(data: Data, kind: str) -> bool:
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


def match_layout(items: tuple[Data, ...], vendor: str | None) -> tuple[str, str, list[Slot]] | None:
    """(vendor, layout name, slots) of the first known layout these values fit."""
    for layout_vendor, name, layout in LAYOUTS:
        if vendor not in (None, layout_vendor) or len(layout) != len(items):
            continue
        if all(_fits(item, kind) for item, (_c, kind, _s) in zip(items, layout, strict=True)):
            return layout_vendor, name, layout
    return None
