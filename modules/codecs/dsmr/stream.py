"""Cutting a P1 byte stream into telegrams (sans-IO): plain text and smarty-encrypted frames.

A plain telegram runs from ``/XXXZ`` to the line after ``!`` (its CRC, or nothing before
DSMR 4). An encrypted one (Luxembourg smarty) is a general-glo-ciphering APDU whose length
field says where it ends; its ciphertext may contain ``/`` and ``!``, so the two start
patterns are told apart by what follows them, never by scanning for the end character.
"""

from __future__ import annotations

import re

from modules.codecs.dlms.security import parse_general_ciphering
from modules.codecs.errors import FrameError, IncompleteFrame

__all__ = ["P1Splitter"]

# "/" + three letters (the FLAG manufacturer id) + the baud character (IEC 62056-21 6.3.14).
_TEXT_START = re.compile(rb"/[A-Za-z]{3}[0-9A-Za-z]")
_CIPHER_START = b"\xdb\x08"  # general-glo-ciphering, 8-byte system title
_HEADER_BYTES = 5
_MAX_TELEGRAM_BYTES = 16 * 1024  # a DSMR 5 telegram with four M-Bus devices is ~2 kB
_CRC_DIGITS = 4
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")
_MIN_CIPHERED = 5 + 12  # SC + IC + tag
_SUITE_MASK = 0x0F
_SC_SECURED = 0x30  # authenticated and/or encrypted: some protection must be on


class P1Splitter:
    """Feed bytes as they arrive; get whole telegrams (text or ciphered frames) back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        """Complete telegrams in arrival order; partial ones stay buffered."""
        self._buffer += data
        found: list[bytes | FrameError] = []
        while (telegram := self._next()) is not None:
            found.append(telegram)
        return found

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a telegram."""
        return len(self._buffer)

    def _next(self) -> bytes | None:
        buffer = self._buffer
        pos = 0
        while pos < len(buffer):
            byte = buffer[pos]
            if byte == 0x2F:  # "/"
                if len(buffer) - pos < _HEADER_BYTES:
                    del buffer[:pos]
                    return None
                if _TEXT_START.match(buffer, pos):
                    return self._text(pos)
            elif byte == _CIPHER_START[0]:
                if len(buffer) - pos < 2:
                    del buffer[:pos]
                    return None
                if buffer[pos + 1] == _CIPHER_START[1]:
                    size = self._ciphered_size(pos)
                    if size == 0:
                        del buffer[:pos]
                        return None
                    if size > 0:
                        frame = bytes(buffer[pos : pos + size])
                        del buffer[: pos + size]
                        return frame
            pos += 1
        del buffer[:]
        return None

    def _text(self, start: int) -> bytes | None:
        buffer = self._buffer
        end = buffer.find(b"!", start)
        if end == -1:
            if len(buffer) - start > _MAX_TELEGRAM_BYTES:
                del buffer[: start + 1]
                return self._next()
            del buffer[:start]
            return None
        # "!" is followed by up to 4 hex digits of CRC (none before DSMR 4, fewer when a
        # meter drops leading zeros), then CR LF; some meters leave the line ending out.
        cursor = end + 1
        while cursor < len(buffer) and cursor - end <= _CRC_DIGITS and _is_hex(buffer[cursor]):
            cursor += 1
        if cursor == len(buffer) and cursor - end <= _CRC_DIGITS:
            del buffer[:start]
            return None  # the CRC may still be arriving
        for ending in b"\r\n":
            if cursor < len(buffer) and buffer[cursor] == ending:
                cursor += 1
        telegram = bytes(buffer[start:cursor])
        del buffer[:cursor]
        return telegram

    def _ciphered_size(self, pos: int) -> int:
        """The frame's size; 0 while it is incomplete; -1 when this is no frame start."""
        try:
            ciphered, size = parse_general_ciphering(bytes(self._buffer[pos:]))
        except IncompleteFrame:
            # Only wait when the length field itself is plausible (not random ciphertext).
            head = self._buffer[pos + 10 : pos + 13]
            if len(head) < 3:
                return 0
            first = head[0]
            length = first if first < 0x80 else int.from_bytes(head[1 : 1 + (first & 0x7F)], "big")
            return 0 if _MIN_CIPHERED <= length <= _MAX_TELEGRAM_BYTES else -1
        except FrameError:
            return -1
        sc = ciphered.security_control
        if not sc & _SC_SECURED or size - 10 > _MAX_TELEGRAM_BYTES:
            return -1
        return size


def _is_hex(byte: int) -> bool:
    return byte in _HEX_DIGITS
