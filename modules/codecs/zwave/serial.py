"""Z-Wave Serial API framing: data frames, the ACK/NAK/CAN control bytes and a stream extractor.

A data frame is ``SOF | LEN | TYPE | FUNC_ID | params | CHK`` where LEN counts TYPE through CHK
and ``CHK = 0xFF ^ LEN ^ TYPE ^ FUNC_ID ^ params...`` (Silabs INS12350 "Serial API Host Appl.
Prg. Guide", section 5; zwave-js ``packages/serial/src/message/``). The receiver answers a good
frame with ACK, a bad checksum with NAK, and ignores every other byte while hunting for SOF.
"""

from __future__ import annotations

from enum import IntEnum

import msgspec

from modules.codecs.errors import ChecksumError, FrameError, IncompleteFrame

__all__ = [
    "ACK_TIMEOUT_S",
    "BAUD_RATE",
    "CHECKSUM_ERRORS_BEFORE_RESET",
    "MAX_PARAMS",
    "MAX_RETRANSMISSIONS",
    "RX_FRAME_TIMEOUT_S",
    "SOF",
    "SOFT_RESET_WAIT_S",
    "BadFrame",
    "ControlByte",
    "DataFrame",
    "FrameExtractor",
    "FrameType",
    "Garbage",
    "checksum",
    "parse_frame",
    "retransmit_delay_s",
]

SOF = 0x01
# Timing from INS12350 section 5 (the serial link and its retransmission rules).
BAUD_RATE = 115200  # 8 data bits, no parity, 1 stop bit
RX_FRAME_TIMEOUT_S = 1.5  # the receiver aborts a frame not complete 1500 ms after its SOF
ACK_TIMEOUT_S = 1.6  # the sender waits at least 1600 ms for the ACK of a data frame
MAX_RETRANSMISSIONS = 3  # after three retransmissions the host resets the module
CHECKSUM_ERRORS_BEFORE_RESET = 3  # three checksum errors in a row also mean "reset"
SOFT_RESET_WAIT_S = 1.5  # after NAK + SERIAL_API_SOFT_RESET, wait before the first request
_MIN_LENGTH = 3  # TYPE, FUNC_ID and CHK
MAX_PARAMS = 0xFF - _MIN_LENGTH


def retransmit_delay_s(attempt: int) -> float:
    """Wait before retransmission ``attempt`` (1..3): 100 ms + n x 1000 ms (INS12350)."""
    if not 1 <= attempt <= MAX_RETRANSMISSIONS:
        raise ValueError(f"retransmission {attempt} is not 1..{MAX_RETRANSMISSIONS}")
    return 0.1 + attempt * 1.0


class ControlByte(IntEnum):
    """The single-byte frames."""

    ACK = 0x06  # the data frame arrived with a good checksum
    NAK = 0x15  # the data frame had a bad checksum or length: retransmit
    CAN = 0x18  # both ends sent at once: the data frame was dropped, retransmit


class FrameType(IntEnum):
    """The TYPE byte; other values are reserved and their frames ignored."""

    REQ = 0x00  # requests, unsolicited messages and callbacks
    RES = 0x01  # the immediate response to a request


class DataFrame(msgspec.Struct, frozen=True):
    """One Serial API data frame; ``type`` is kept as received (0 REQ, 1 RES, others reserved)."""

    type: int
    function_id: int
    params: bytes = b""

    def encode(self) -> bytes:
        """SOF, length, type, function id, params, checksum."""
        if not 0 <= self.type <= 0xFF or not 0 <= self.function_id <= 0xFF:
            raise ValueError("type and function id are one byte each")
        if len(self.params) > MAX_PARAMS:
            raise ValueError(f"a data frame carries at most {MAX_PARAMS} parameter bytes")
        body = bytes((len(self.params) + _MIN_LENGTH, self.type, self.function_id)) + self.params
        return bytes((SOF,)) + body + bytes((checksum(body),))


class BadFrame(msgspec.Struct, frozen=True):
    """A complete frame that failed its checks; answer NAK when ``error.code`` is bad_crc."""

    data: bytes
    error: FrameError


class Garbage(msgspec.Struct, frozen=True):
    """Bytes skipped while hunting for SOF (line noise, a partial frame from before a reset)."""

    data: bytes


Event = ControlByte | DataFrame | BadFrame | Garbage


def checksum(body: bytes) -> int:
    """0xFF XOR every byte from LEN to the last parameter."""
    result = 0xFF
    for byte in body:
        result ^= byte
    return result


def parse_frame(data: bytes) -> DataFrame:
    """Exactly one data frame: IncompleteFrame, ChecksumError or FrameError when it is not."""
    if not data:
        raise IncompleteFrame("no bytes", offset=0)
    if data[0] != SOF:
        raise FrameError(f"starts with 0x{data[0]:02x}, not SOF 0x01", offset=0, code="bad_frame")
    event, used = _next_frame(data)
    if event is None:
        raise IncompleteFrame(
            f"frame needs {_frame_size(data)} bytes, got {len(data)}", offset=len(data)
        )
    if isinstance(event, BadFrame):
        raise event.error
    if used != len(data):
        raise FrameError(
            f"{len(data) - used} byte(s) after the checksum", offset=used, code="bad_frame"
        )
    return event


def _frame_size(data: bytes) -> int:
    return data[1] + 2 if len(data) > 1 else 2


def _next_frame(data: bytes) -> tuple[DataFrame | BadFrame | None, int]:
    """The frame at data[0] == SOF: (event, bytes used), or (None, 0) while incomplete."""
    if len(data) < 2:
        return None, 0
    length = data[1]
    if length < _MIN_LENGTH:
        error = FrameError(f"length {length} is below {_MIN_LENGTH}", offset=1, code="bad_frame")
        # Only SOF is consumed: the length byte may itself be the SOF of the real next frame.
        return BadFrame(data[:2], error), 1
    size = length + 2
    if len(data) < size:
        return None, 0
    body = data[1 : size - 1]
    expected = checksum(body)
    if data[size - 1] != expected:
        error = ChecksumError(
            f"checksum 0x{data[size - 1]:02x}, computed 0x{expected:02x}", offset=size - 1
        )
        return BadFrame(data[:size], error), size
    return DataFrame(data[2], data[3], bytes(data[4 : size - 1])), size


class FrameExtractor:
    """Cuts a received byte stream into control bytes and data frames, resyncing on garbage.

    ``feed`` returns what became complete; an unfinished frame waits in ``pending`` until more
    bytes come or the caller gives up on it with ``expire`` (RX_FRAME_TIMEOUT_S after its SOF).
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> bytes:
        """The bytes of an unfinished frame."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[Event]:
        """Add received bytes; return every control byte, frame, bad frame and skipped run."""
        self._buffer += data
        events: list[Event] = []
        skipped = bytearray()
        while self._buffer:
            first = self._buffer[0]
            if first != SOF:
                if first in _CONTROL:
                    if skipped:
                        events.append(Garbage(bytes(skipped)))
                        skipped.clear()
                    events.append(ControlByte(first))
                else:
                    skipped.append(first)
                del self._buffer[0]
                continue
            event, used = _next_frame(bytes(self._buffer))
            if event is None:
                break
            if skipped:
                events.append(Garbage(bytes(skipped)))
                skipped.clear()
            events.append(event)
            del self._buffer[:used]
        if skipped:
            events.append(Garbage(bytes(skipped)))
        return events

    def expire(self) -> bytes:
        """Drop the unfinished frame (its time is up) and return its bytes."""
        dropped = bytes(self._buffer)
        self._buffer.clear()
        return dropped


_CONTROL = frozenset(int(byte) for byte in ControlByte)
