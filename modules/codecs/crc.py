"""The CRC-16 variants the meter protocols use, from one table-driven implementation
(CCITT-polynomial variants through the standard library's binascii.crc_hqx).

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
        self._ccitt = poly == CCITT
        self._reflected_init = _reflect(init, 16)

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
