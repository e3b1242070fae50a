"""Diehl (Sappel, Hydrometer) IZAR water meters with the PRIOS radio protocol.

PRIOS telegrams carry a manufacturer CI field (0xA0-0xA7) and scramble their payload with a
32-bit linear-feedback shift register: the register starts as a key (the XOR of the two halves
of an 8-byte key) XORed with three big-endian words of the telegram (bytes 2-5: manufacturer
and address, 6-9: address, version and type, 10-13: CI and the first three payload bytes);
every payload byte from byte 15 on is XORed with the low byte of the register after eight
shifts, the new bit being the XOR of bits 1, 2, 11 and 31. The first clear byte is 0x4B.
Meters leave the factory with one of two public default keys; for a meter configured with its
own, the first 8 bytes of the key given for it (``--key``, the meter's ``key``) are tried first.

After 0x4B come the total (litres, uint32) and, when present, the volume at the last billing
date and that date (type G). Bytes 11-13 of the telegram hold the alarms, the battery life
left (half years) and the transmit period (4 << n seconds).

Sappel (SAP) meters use the A field's version byte as part of their id; Diehl (DME) and
Hydrometer (HYD) PRIOS meters code the A field as version, device type, then the id.
As documented by the wmbusmeters project's izar driver and its Diehl support code.
"""

from __future__ import annotations

from decimal import Decimal

from msgspec.structs import replace

from modules.codecs.wmbus.drivers.model import (
    Driver,
    FieldSpec,
    LayoutMismatch,
    Reading,
    TelegramLayout,
)

__all__ = ["IZAR_DME", "IZAR_HYD", "IZAR_SAP", "PriosPayload", "prios_descramble"]

DEFAULT_KEYS = (bytes.fromhex("39BC8A10E66D83F8"), bytes.fromhex("51728910E66D83F8"))
CLEAR_MARKER = 0x4B
_SCRAMBLED_FROM = 15  # the LFSR covers the telegram from this byte on
_MASK32 = 0xFFFFFFFF


def _seed(key: bytes) -> int:
    return int.from_bytes(key[:4], "big") ^ int.from_bytes(key[4:8], "big")


def prios_descramble(telegram: bytes, key: bytes) -> bytes:
    """The payload from byte 15 on, unscrambled with ``key`` (8 bytes); the same call scrambles."""
    state = _seed(key)
    for start in (2, 6, 10):
        state ^= int.from_bytes(telegram[start : start + 4], "big")
    out = bytearray()
    for byte in telegram[_SCRAMBLED_FROM:]:
        for _ in range(8):
            bit = ((state >> 1) ^ (state >> 2) ^ (state >> 11) ^ (state >> 31)) & 1
            state = ((state << 1) | bit) & _MASK32
        out.append(byte ^ (state & 0xFF))
    return bytes(out)


_TOTAL = FieldSpec("total_volume", "m³", exponent=-3, offset=1)
_BILLED = FieldSpec("volume_at_last_billing", "m³", exponent=-3, offset=5)
_BILLED_ON = FieldSpec("last_billing_date", None, length=2)
_BATTERY = FieldSpec("battery_remaining", "y", length=1)
_PERIOD = FieldSpec("transmit_period", "s", length=1)
_ALARMS = FieldSpec("alarms", None, length=3)

# (byte, bit) of the telegram -> alarm name; bytes 11-13 are the first three payload bytes.
_ALARM_BITS = (
    (12, 7, "leakage"),
    (12, 5, "meter_blocked"),
    (13, 7, "back_flow"),
    (13, 6, "underflow"),
    (13, 5, "overflow"),
    (13, 4, "submarine"),
    (13, 3, "sensor_fraud"),
    (13, 1, "mechanical_fraud"),
)


class PriosPayload(TelegramLayout):
    """The PRIOS payload: tried with each key until the clear marker comes out."""

    def __init__(self, keys: tuple[bytes, ...] = DEFAULT_KEYS) -> None:
        self.keys = keys

    def read_telegram(self, telegram: bytes, start: int, key: bytes | None) -> list[Reading]:
        if len(telegram) < _SCRAMBLED_FROM + 5:
            raise LayoutMismatch("a PRIOS payload has at least 5 scrambled bytes", 0)
        keys = self.keys if key is None else (key[:8], *self.keys)
        clear = next(
            (
                data
                for candidate in keys
                if (data := prios_descramble(telegram, candidate))[0] == CLEAR_MARKER
            ),
            None,
        )
        if clear is None:
            raise LayoutMismatch(
                "neither the meter's key nor a default PRIOS key unscrambles this payload",
                _SCRAMBLED_FROM - start,
            )
        at = _SCRAMBLED_FROM - start  # offsets below are within the payload, like the others
        found: list[Reading] = [(_TOTAL, _TOTAL.read(clear, 1), at + 1)]
        if len(clear) > 8:
            found.append((_BILLED, _BILLED.read(clear, 5), at + 5))
        if len(clear) > 10:
            found.append((_BILLED_ON, _billing_date(clear[9], clear[10]), at + 9))
        found.append((_BATTERY, Decimal(telegram[12] & 0x1F) / 2, 12 - start))
        found.append((_PERIOD, Decimal(4 << (telegram[11] & 0x0F)), 11 - start))
        alarms = [name for byte, bit, name in _ALARM_BITS if telegram[byte] >> bit & 1]
        found.append((_ALARMS, ",".join(alarms) or "none", 11 - start))
        return found


def _billing_date(low: int, high: int) -> str | None:
    year = ((high & 0xF0) >> 1) + ((low & 0xE0) >> 5)
    year += 1900 if year > 80 else 2000
    month, day = high & 0x0F, low & 0x1F
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None  # no billing date stored yet
    return f"{year:04d}-{month:02d}-{day:02d}"


_SOURCE = "Diehl PRIOS payload as recorded by the wmbusmeters izar driver"
_PRIOS = PriosPayload()

# Sappel IZAR: no version or device type in the header (the byte is part of the id).
IZAR_SAP = Driver(
    name="izar",
    manufacturer="SAP",
    versions=None,
    device_types=None,
    layout=_PRIOS,
    source=_SOURCE,
)
IZAR_DME = Driver(
    name="izar",
    manufacturer="DME",
    versions=frozenset({0x78}),
    device_types=frozenset({0x06, 0x07}),
    layout=_PRIOS,
    source=_SOURCE,
    address_swapped=True,
)
IZAR_HYD = replace(
    IZAR_DME, manufacturer="HYD", versions=frozenset({0x85, 0x86}), device_types=frozenset({0x07})
)
