"""The CRC-16 variants the meter protocols use, from one table-driven implementation
(CCITT-polynomial variants through the standard library's binascii.crc_hqx; interpreted,
long messages of the others as parities under per-bit masks, see ``Crc16._masks``).

| name | poly | init | xorout | reflected | used by |
|---|---|---|---|---|---|
| EN 13757-4 | 0x3D65 | 0 | 0xFFFF | no | wM-Bus DLL blocks, ELL payloads, compact signatures |
| XMODEM | 0x1021 | 0 | 0 | no | KMP (Kamstrup) |
| ARC | 0x8005 | 0 | 0 | yes | DSMR 4/5 P1 telegrams |
| X.25 | 0x1021 | 0xFFFF | 0xFFFF | yes | HDLC HCS/FCS (IEC 62056-46 annex A) |
"""

from __future__ import annotations

import struct
from array import array
from binascii import crc_hqx
from types import FunctionType

__all__ = ["CRC16_ARC", "CRC16_EN13757", "CRC16_X25", "CRC16_XMODEM", "Crc16"]


def _reflect(value: int, bits: int) -> int:
    return int(f"{value:0{bits}b}"[::-1], 2)


# Compiled with mypyc (scripts/compile-codecs), the byte loop runs as C and beats the pair
# table, whose array lookups stay calls into the interpreter; interpreted, the pairs win.
COMPILED = type(_reflect) is not FunctionType

CCITT = 0x1021
# Interpreted, from this many bytes on the parity masks beat the pair table (callgrind), up to
# the longest message they are built for (a DSMR telegram with four M-Bus devices is ~2 KB).
MASKS_FROM = 128
MASK_BYTES = 4096
# Each byte with its bits in reverse order: a reflected CCITT CRC is the plain one (which
# binascii.crc_hqx computes in C) of the bit-reversed bytes, bit-reversed.
_REVERSED = bytes(_reflect(byte, 8) for byte in range(256))


class Crc16:
    """One CRC-16 variant: call it with bytes to get the CRC as an int."""

    def __init__(
        self, poly: int, *, init: int = 0, xorout: int = 0, reflected: bool = False
    ) -> None:
        self.init = init
        self.xorout = xorout
        self.reflected = reflected
        table = []
        for byte in range(256):
            if reflected:
                crc, rpoly = byte, _reflect(poly, 16)
                for _ in range(8):
                    crc = (crc >> 1) ^ rpoly if crc & 1 else crc >> 1
            else:
                crc = byte << 8
                for _ in range(8):
                    crc = (crc << 1) ^ poly if crc & 0x8000 else crc << 1
            table.append(crc & 0xFFFF)
        self._table = tuple(table)
        self._pairs_table: array[int] | None = None
        self._masks_table: tuple[int, ...] | None = None
        self._ccitt = poly == CCITT
        self._reflected_init = _reflect(init, 16)
        self._poly = _reflect(poly, 16) if reflected else poly

    def _pairs(self) -> array[int]:
        """The table for two bytes at a time (a 16-bit CRC's register is replaced whole by
        two bytes), built on first use: 128 KiB, only for the variants a config uses."""
        table, pairs = self._table, array("H", bytes(2 * 65536))
        if self.reflected:
            for word in range(65536):
                crc = (word >> 8) ^ table[word & 0xFF]
                pairs[word] = (crc >> 8) ^ table[crc & 0xFF]
        else:
            for word in range(65536):
                crc = table[word >> 8]
                pairs[word] = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ (word & 0xFF)]
        self._pairs_table = pairs
        return pairs

    def _masks(self) -> tuple[int, ...]:
        """Per CRC bit, which message bits flip it (with init 0 the CRC is linear in the
        message): bit k of mask j is set when a 1 that is k bits from the end of the message
        flips CRC bit j. Built on first use for messages up to MASK_BYTES: 16 x 4 KiB."""
        contributions = []
        flips = self._poly  # the last bit's: the register after shifting in a single 1
        for _ in range(8 * MASK_BYTES):
            contributions.append(flips)
            if self.reflected:
                flips = (flips >> 1) ^ self._poly if flips & 1 else flips >> 1
            else:
                flips = ((flips << 1) & 0xFFFF) ^ self._poly if flips & 0x8000 else flips << 1
        # One column per CRC bit of the contributions written in binary (bit 15 first), each
        # read back with the last message bit lowest.
        columns = zip(*(f"{flips:016b}" for flips in contributions), strict=True)
        masks = tuple(int("".join(column)[::-1], 2) for column in columns)[::-1]
        self._masks_table = masks
        return masks

    def _by_masks(self, data: bytes) -> int:
        """The CRC as 16 parities of the message (one integer) under the masks: a few
        big-integer operations in C instead of one interpreted step per byte or two."""
        masks = self._masks_table if self._masks_table is not None else self._masks()
        # The message as one integer whose bit k is k bits from its end, in the order the
        # bits go through the register (a reflected CRC takes each byte lowest bit first).
        message = int.from_bytes(data.translate(_REVERSED) if self.reflected else data, "big")
        crc = 0
        for bit, mask in enumerate(masks):
            crc |= ((message & mask).bit_count() & 1) << bit
        return crc ^ self.xorout

    def __call__(self, data: bytes) -> int:
        if self._ccitt:
            if not self.reflected:
                return crc_hqx(data, self.init) ^ self.xorout
            crc = crc_hqx(bytes(data).translate(_REVERSED), self._reflected_init)
            return (_REVERSED[crc & 0xFF] << 8 | _REVERSED[crc >> 8]) ^ self.xorout
        crc, table = self.init, self._table
        size = len(data)
        if size < 16 or COMPILED:
            if self.reflected:
                for byte in data:
                    crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
            else:
                for byte in data:
                    crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
            return crc ^ self.xorout
        if MASKS_FROM <= size <= MASK_BYTES and not self.init:
            return self._by_masks(bytes(data))
        pairs = self._pairs_table if self._pairs_table is not None else self._pairs()
        start = size & 1
        if start:  # an odd first byte on its own, then whole 16-bit words
            byte = data[0]
            if self.reflected:
                crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
            else:
                crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
        order = "<" if self.reflected else ">"
        for word in struct.unpack_from(f"{order}{size >> 1}H", data, start):
            crc = pairs[crc ^ word]
        return crc ^ self.xorout


CRC16_EN13757 = Crc16(0x3D65, xorout=0xFFFF)
CRC16_XMODEM = Crc16(0x1021)
CRC16_ARC = Crc16(0x8005, reflected=True)
CRC16_X25 = Crc16(0x1021, init=0xFFFF, xorout=0xFFFF, reflected=True)
