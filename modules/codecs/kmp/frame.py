"""KMP on the wire: start and stop bytes, CRC-16/XMODEM, byte stuffing, frame splitting.

A physical frame is ``start | DST CID DATA CRC | 0x0D``: start 0x80 to the meter, 0x40 from
it; the CRC (poly 0x1021, init 0, big-endian) covers DST..DATA; then every byte of DST..CRC
that is one of 06 0D 1B 40 80 is sent as ``1B, byte ^ FF``. A command the meter accepts
without data is answered by the single byte 0x06.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modules.codecs.crc import CRC16_XMODEM
from modules.codecs.errors import ChecksumError, FrameError, IncompleteFrame

__all__ = [
    "ACK",
    "ANY_STUFFED",
    "DEFAULT_ADDRESS",
    "ESCAPE",
    "MAX_FRAME_BYTES",
    "NAK",
    "START_FROM_METER",
    "START_TO_METER",
    "STOP",
    "Frame",
    "FrameSplitter",
    "crc16",
    "decode_frame",
    "encode_frame",
    "stuff",
    "unstuff",
]

START_TO_METER = 0x80
START_FROM_METER = 0x40
STOP = 0x0D
ACK = 0x06
NAK = 0x15
ESCAPE = 0x1B
_STUFFED = frozenset({ACK, STOP, ESCAPE, START_FROM_METER, START_TO_METER})
# Most frames hold none of them: then stuffing changes nothing.
ANY_STUFFED = re.compile(b"[" + re.escape(bytes(sorted(_STUFFED))) + b"]")
# Plain bytes and escape pairs only: what unstuff accepts, checked in one pass.
_WELL_STUFFED = re.compile(
    b"(?:[^"
    + re.escape(bytes(sorted(_STUFFED)))
    + b"]|\x1b["
    + re.escape(bytes(sorted(byte ^ 0xFF for byte in _STUFFED)))
    + b"])*"
)
_PAIRS = tuple(
    (bytes((ESCAPE, byte ^ 0xFF)), bytes((byte,)))
    for byte in sorted(_STUFFED, key=lambda byte: byte == ESCAPE)
)
DEFAULT_ADDRESS = 0x3F  # the meter itself; 0x7F/0xBF are the top/base loggers
# Longest frame a meter can send: 8 registers with 255-byte mantissas, every byte stuffed.
MAX_FRAME_BYTES = 2 + 2 * (2 + 8 * (5 + 255) + 2)


# CRC-16/XMODEM (CCITT poly 0x1021, init 0); over data plus its CRC it is 0.
crc16 = CRC16_XMODEM


def stuff(link: bytes) -> bytes:
    """Escape the bytes that would read as start, stop, ACK or escape."""
    if ANY_STUFFED.search(link) is None:
        return bytes(link)
    out = bytearray()
    for byte in link:
        if byte in _STUFFED:
            out += bytes((ESCAPE, byte ^ 0xFF))
        else:
            out.append(byte)
    return bytes(out)


def unstuff(body: bytes, *, offset: int = 0) -> bytes:
    """Undo the byte stuffing; ``offset`` is where ``body`` starts in the frame (for errors)."""
    if ANY_STUFFED.search(body) is None:
        return bytes(body)
    if _WELL_STUFFED.fullmatch(body) is not None:
        # Every 1B starts an escape pair, and a pair stands for a byte other than 1B except
        # 1B E4: replaced last, the 1B it leaves cannot start another pair.
        out_bytes = bytes(body)
        for pair, reserved in _PAIRS:
            out_bytes = out_bytes.replace(pair, reserved)
        return out_bytes
    out = bytearray()
    index = 0
    while index < len(body):
        byte = body[index]
        if byte == ESCAPE:
            if index + 1 >= len(body):
                raise FrameError(
                    "escape byte 0x1B with nothing after it",
                    offset=offset + index,
                    code="bad_stuffing",
                )
            plain = body[index + 1] ^ 0xFF
            if plain not in _STUFFED:
                raise FrameError(
                    f"escape 0x1B then 0x{body[index + 1]:02X}, which stands for no reserved byte",
                    offset=offset + index,
                    code="bad_stuffing",
                )
            out.append(plain)
            index += 2
            continue
        if byte in _STUFFED:
            raise FrameError(
                f"reserved byte 0x{byte:02X} inside the frame was not stuffed",
                offset=offset + index,
                code="bad_stuffing",
            )
        out.append(byte)
        index += 1
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Frame:
    """One data-link frame: direction, destination address, command id and application data."""

    to_meter: bool
    cid: int
    data: bytes = b""
    address: int = DEFAULT_ADDRESS

    @property
    def crc(self) -> int:
        """The CRC this frame carries."""
        return crc16(bytes((self.address, self.cid)) + self.data)


def encode_frame(frame: Frame) -> bytes:
    """The physical bytes of a frame: start, stuffed link bytes with CRC, stop."""
    link = bytes((frame.address, frame.cid)) + frame.data
    link += crc16(link).to_bytes(2, "big")
    start = START_TO_METER if frame.to_meter else START_FROM_METER
    return bytes((start,)) + stuff(link) + bytes((STOP,))


def decode_frame(raw: bytes) -> Frame:
    """One physical frame (start byte to stop byte) -> Frame; checks stuffing and CRC."""
    if not raw:
        raise IncompleteFrame("no bytes", offset=0)
    if raw[0] not in (START_TO_METER, START_FROM_METER):
        raise FrameError(f"start byte 0x{raw[0]:02X} is neither 0x80 nor 0x40", offset=0)
    stop = raw.find(STOP, 1)
    if stop < 0:
        raise IncompleteFrame("no stop byte 0x0D", offset=len(raw))
    if stop != len(raw) - 1:
        raise FrameError("bytes after the stop byte", offset=stop + 1)
    link = unstuff(raw[1:stop], offset=1)
    if len(link) < 4:
        raise IncompleteFrame(
            f"{len(link)} link bytes; a frame has at least address, CID and CRC", offset=stop
        )
    if crc16(link) != 0:
        given = int.from_bytes(link[-2:], "big")
        expected = crc16(link[:-2])
        raise ChecksumError(f"CRC {given:04X}, computed {expected:04X}", offset=stop - 2)
    return Frame(to_meter=raw[0] == START_TO_METER, address=link[0], cid=link[1], data=link[2:-2])


class FrameSplitter:
    """Cuts a byte stream into physical frames; skips noise and keeps partial frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        """Every complete frame (or ACK/NAK byte) in the stream so far, in order."""
        self._buffer += chunk
        frames: list[bytes] = []
        while self._buffer:
            first = self._buffer[0]
            if first in (ACK, NAK):
                frames.append(bytes(self._buffer[:1]))
                del self._buffer[:1]
                continue
            if first not in (START_TO_METER, START_FROM_METER):
                del self._buffer[:1]  # line noise between frames
                continue
            # A new start byte inside a frame means the frame before it was cut off.
            end = next(
                (
                    i
                    for i in range(1, len(self._buffer))
                    if self._buffer[i] in (STOP, START_TO_METER, START_FROM_METER)
                ),
                -1,
            )
            if end < 0:
                if len(self._buffer) > MAX_FRAME_BYTES:
                    self._buffer.clear()
                break
            if self._buffer[end] != STOP:
                del self._buffer[:end]
                continue
            frames.append(bytes(self._buffer[: end + 1]))
            del self._buffer[: end + 1]
        return frames
