"""OBIS codes (IEC 62056-61): parsing the six value groups and the canonical short form.

What a code means to Home Assistant (names, classes) is the gateway's business, not the codecs'.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["normalize", "parse"]

_OBIS = re.compile(
    r"^(?:(?P<a>\d+)-(?P<b>\d+):)?(?P<c>\d+|[CFLP])\.(?P<d>\d+)(?:\.(?P<e>\d+))?(?:[.*](?P<f>\d+))?$"
)
_LETTER_C = {"C": 96, "F": 97, "L": 98, "P": 99}


def parse(code: str) -> tuple[int, int, int, int, int, int]:
    """The six OBIS groups A-B:C.D.E*F; missing A/B default to 1-0 and F to 255."""
    match = _OBIS.match(code.strip())
    if match is None:
        raise ValueError(f"not an OBIS code: {code!r}")
    c_text = match["c"]
    c = _LETTER_C[c_text] if c_text in _LETTER_C else int(c_text)
    return (
        int(match["a"] or 1),
        int(match["b"] or 0),
        c,
        int(match["d"]),
        int(match["e"] or 0),
        int(match["f"] or 255),
    )


@lru_cache(maxsize=4096)
def normalize(code: str) -> str:
    """The canonical short form ``A-B:C.D.E`` (F dropped when 255) used as register keys."""
    try:
        a, b, c, d, e, f = parse(code)
    except ValueError:
        return code
    base = f"{a}-{b}:{c}.{d}.{e}"
    return base if f == 255 else f"{base}*{f}"
