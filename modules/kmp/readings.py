"""KMP register values -> the engine's OBIS readings."""

from __future__ import annotations

from gateway.model import Reading
from modules.codecs.kmp.commands import GetRegisterResponse
from modules.codecs.kmp.registers import REGISTERS

__all__ = ["readings"]


def readings(response: GetRegisterResponse) -> tuple[Reading, ...]:
    """Engine readings from a response; a high-resolution register wins over its low copy."""
    chosen: dict[str, tuple[bool, Reading]] = {}
    for item in response.values:
        known = REGISTERS.get(item.register)
        value, unit = item.reading()
        key = (known.obis or known.name) if known else f"kmp_register_{item.register}"
        hires = bool(known and known.hires)
        if key in chosen and chosen[key][0] and not hires:
            continue
        chosen[key] = (hires, Reading(obis=key, value=value, unit=unit))
    return tuple(reading for _, reading in chosen.values())
