"""Cutting a HAN byte stream into checked frames (sans-IO): HDLC by length, wired M-Bus.

HAN pushes are not byte-stuffed, so a 0x7E inside the information field is data: a frame is
the number of bytes its format field says, accepted only when the header check (HCS) holds,
and delivered when the frame check (FCS) holds too. Bytes between frames (line noise, the
tail of a frame we joined in the middle of) are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from modules.codecs.dlms.hdlc import (
    FLAG,
    MBUS_START,
    crc16_x25,
    parse_frame,
    parse_mbus_segment,
)
from modules.codecs.errors import ChecksumError, FrameError

__all__ = ["HanSplitter"]

_FORMAT_TYPE_3 = 0xA  # IEC 62056-46 6.4.1
_MAX_HEADER = 2 + 4 + 4 + 1 + 2  # format, two addresses of up to 4 bytes, control, HCS
_MIN_HDLC_LENGTH = 7
_MIN_MBUS_LENGTH = 5  # C, A, CI, STSAP, DTSAP (EN 13757-2 long frame carrying DLMS)
# Far above the longest HDLC frame (2047 bytes) or M-Bus frame (261): a buffer this full
# without a frame is noise, and older bytes are dropped.
_MAX_BUFFER = 8192


class _Found(Enum):
    NOT_HERE = 0
    NEED_MORE = 1
    FRAME = 2
    BAD = 3


class HanSplitter:
    """Feed bytes as they arrive; get whole frames (and checksum errors) back in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        """Complete frames (flags included) and the errors of frames that failed their FCS."""
        self._buffer += data
        found: list[bytes | FrameError] = []
        while (item := self._next()) is not None:
            found.append(item)
        if len(self._buffer) > _MAX_BUFFER:
            del self._buffer[: len(self._buffer) - _MAX_BUFFER]
        return found

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buffer)

    def _next(self) -> bytes | FrameError | None:
        buffer = self._buffer
        pos = 0
        while pos < len(buffer):
            byte = buffer[pos]
            if byte == FLAG:
                found, size, error = self._hdlc_at(pos)
            elif byte == MBUS_START:
                found, size, error = self._mbus_at(pos)
            else:
                pos += 1
                continue
            if found is _Found.NEED_MORE:
                del buffer[:pos]
                return None
            if found is _Found.FRAME:
                frame = bytes(buffer[pos : pos + size])
                # An HDLC closing flag may open the next frame: leave it in the buffer.
                keep = 1 if frame[-1] == FLAG and frame[0] == FLAG else 0
                del buffer[: pos + size - keep]
                return frame
            if found is _Found.BAD:
                # Its header checked, its body did not: report it, but look for frames inside
                # it too, in case the header check matched by chance in line noise.
                del buffer[: pos + 1]
                assert error is not None
                return error
            pos += 1
        del buffer[:]
        return None

    def _hdlc_at(self, pos: int) -> tuple[_Found, int, FrameError | None]:
        buffer = self._buffer
        available = len(buffer) - pos - 1
        if available < 2:
            return _Found.NEED_MORE, 0, None
        if buffer[pos + 1] >> 4 != _FORMAT_TYPE_3:
            return _Found.NOT_HERE, 0, None
        length = (buffer[pos + 1] << 8 | buffer[pos + 2]) & 0x7FF
        if length < _MIN_HDLC_LENGTH:
            return _Found.NOT_HERE, 0, None
        if available < min(length, _MAX_HEADER):
            return _Found.NEED_MORE, 0, None
        if not self._header_checks(pos + 1, length):
            return _Found.NOT_HERE, 0, None
        size = length + 2  # both flags
        if available < length + 1:
            return _Found.NEED_MORE, 0, None
        return _checked(parse_frame, bytes(buffer[pos : pos + size]))

    def _header_checks(self, start: int, length: int) -> bool:
        """The addresses are well formed and the HCS matches (frames without info: later)."""
        buffer = self._buffer
        cursor = start + 2
        for _ in range(2):  # destination, then source address: 1, 2 or 4 bytes
            size = 0
            while size < 4 and cursor + size < start + length and not buffer[cursor + size] & 1:
                size += 1
            size += 1
            if size not in (1, 2, 4):
                return False
            cursor += size
        header_end = cursor + 1  # the control byte
        if header_end + 2 > start + length:
            return False
        if start + length - header_end == 2:
            return True  # no information field: the only check sequence covers everything
        hcs = buffer[header_end] | buffer[header_end + 1] << 8
        return hcs == crc16_x25(bytes(buffer[start:header_end]))

    def _mbus_at(self, pos: int) -> tuple[_Found, int, FrameError | None]:
        buffer = self._buffer
        if len(buffer) - pos < 4:
            return _Found.NEED_MORE, 0, None
        length = buffer[pos + 1]
        if buffer[pos + 2] != length or buffer[pos + 3] != MBUS_START:
            return _Found.NOT_HERE, 0, None
        if length < _MIN_MBUS_LENGTH:
            return _Found.NOT_HERE, 0, None
        size = length + 6
        if len(buffer) - pos < size:
            return _Found.NEED_MORE, 0, None
        return _checked(parse_mbus_segment, bytes(buffer[pos : pos + size]))


def _checked(
    parse: Callable[[bytes], object], candidate: bytes
) -> tuple[_Found, int, FrameError | None]:
    """A frame when ``parse`` takes it, BAD on a checksum error, else not a frame start."""
    try:
        parse(candidate)
    except ChecksumError as err:
        return _Found.BAD, len(candidate), err
    except FrameError:
        return _Found.NOT_HERE, 0, None
    return _Found.FRAME, len(candidate), None
