"""M-Bus slaves and the bus they share, sans-IO, for the emulator.

``Slave.handle(frame)`` is one meter's link and application layer: SND_NKE, REQ_UD2 with the
frame count bit (a repeated FCB repeats the last telegram), multi-telegram readouts, secondary
selection with wildcards, broadcasts. ``Bus.handle(frame)`` asks every slave; when several
answer at once their bits mix on the wire (``collide``), as a master must be able to detect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from modules.codecs.mbus.encode import DataRecord, encode_long_header, encode_record
from modules.codecs.mbus.frames import (
    ACK,
    BROADCAST_ADDRESS,
    CI_APPLICATION_RESET,
    CI_DATA_SEND,
    CI_SELECT,
    CI_VARIABLE,
    FCB,
    LONG_START,
    NETWORK_LAYER_ADDRESS,
    SHORT_START,
    SecondaryAddress,
    rsp_ud,
)

__all__ = ["Bus", "Slave", "collide"]

TEST_ADDRESS = 0xFE  # every slave acts and answers (EN 13757-2: only with one slave on the bus)
FCV = 0x10  # frame count valid: the FCB means something
_FUNCTION_SND_NKE = 0x0
_FUNCTION_SND_UD = 0x3
_FUNCTION_REQ_UD1 = 0xA
_FUNCTION_REQ_UD2 = 0xB
# A long frame carries at most 252 bytes after C, A, CI; the long header takes 12 of them and
# a telegram with more to come ends with the 0x1F DIF.
_MAX_RECORD_BYTES = 252 - 12 - 1
_DIF_SET_ADDRESS = bytes([0x01, 0x7A])  # EN 13757-3: 8-bit integer, VIF "bus address"

RecordSource = Callable[[], list[DataRecord]]


@dataclass
class Slave:
    """One meter on the bus: addresses, a source of fresh records, and link-layer state."""

    primary: int
    secondary: SecondaryAddress  # a concrete address: no wildcards
    records: RecordSource
    records_per_telegram: int | None = None  # None: as many as fit in a long frame
    selected: bool = False
    requests: int = 0  # REQ_UD2 frames answered, for tests
    _last_fcb: bool | None = field(default=None, repr=False)
    _last_answer: bytes | None = field(default=None, repr=False)
    _pending: list[bytes] = field(default_factory=list, repr=False)
    _access: int = field(default=0, repr=False)

    def handle(self, frame: bytes) -> bytes | None:
        """The answer to one checked master frame, or None when this slave stays silent."""
        if frame[0] == SHORT_START:
            c, a, ci, body = frame[1], frame[2], None, b""
        elif frame[0] == LONG_START:
            c, a, ci, body = frame[4], frame[5], frame[6], frame[7:-2]
        else:
            return None
        if not c & 0x40:
            return None  # a slave's frame (another meter's answer): not for us
        function = c & 0x0F
        if function == _FUNCTION_SND_UD and ci == CI_SELECT and a == NETWORK_LAYER_ADDRESS:
            return self._select(body)
        if not self._addressed(a):
            return None
        answer = self._act(function, c, ci, body, a)
        return None if a == BROADCAST_ADDRESS else answer

    def reset(self) -> None:
        """Forget the frame count and any readout in progress (SND_NKE, power-up)."""
        self._last_fcb = None
        self._last_answer = None
        self._pending = []

    # internals ---------------------------------------------------------------------------------

    def _addressed(self, a: int) -> bool:
        if a == NETWORK_LAYER_ADDRESS:
            return self.selected
        return a in (self.primary, TEST_ADDRESS, BROADCAST_ADDRESS)

    def _act(self, function: int, c: int, ci: int | None, body: bytes, a: int) -> bytes | None:
        if function == _FUNCTION_SND_NKE:
            self.reset()
            if a == NETWORK_LAYER_ADDRESS:
                self.selected = False  # EN 13757-3: SND_NKE to 253 ends the selection
            return bytes([ACK])
        if function == _FUNCTION_REQ_UD2:
            return self._req_ud2(c)
        if function == _FUNCTION_REQ_UD1:
            return bytes([ACK])  # no alarm (class 1) data
        if function == _FUNCTION_SND_UD:
            if ci == CI_APPLICATION_RESET:
                self.reset()
            elif ci == CI_DATA_SEND and body[:2] == _DIF_SET_ADDRESS and len(body) == 3:
                self.primary = body[2]
            return bytes([ACK])
        return None

    def _select(self, body: bytes) -> bytes | None:
        try:
            pattern = SecondaryAddress.from_bytes(body)
        except ValueError:
            return None
        self.selected = len(body) == 8 and pattern.matches(self.secondary)
        return bytes([ACK]) if self.selected else None

    def _req_ud2(self, c: int) -> bytes:
        self.requests += 1
        fcb = bool(c & FCB)
        if c & FCV and self._last_answer is not None and fcb == self._last_fcb:
            return self._last_answer  # the master missed it: same FCB means "again"
        if not self._pending:
            self._pending = self._readout()
        answer = self._pending.pop(0)
        self._last_fcb = fcb if c & FCV else None
        self._last_answer = answer
        return answer

    def _readout(self) -> list[bytes]:
        """The telegrams of one readout of fresh records."""
        groups = self._groups([(record, encode_record(record)) for record in self.records()])
        telegrams = []
        address = self.secondary
        for index, group in enumerate(groups):
            self._access = (self._access + 1) & 0xFF
            header = encode_long_header(
                address.id,
                address.manufacturer or "KAM",
                address.version or 0,
                address.medium or 0,
                access_number=self._access,
            )
            more = index < len(groups) - 1
            body = b"".join(group) + (b"\x1f" if more else b"")
            telegrams.append(rsp_ud(self.primary, CI_VARIABLE, header + body))
        return telegrams

    def _groups(self, encoded: list[tuple[DataRecord, bytes]]) -> list[list[bytes]]:
        groups: list[list[bytes]] = [[]]
        size = 0
        for _record, data in encoded:
            full = (
                len(groups[-1]) == self.records_per_telegram
                if self.records_per_telegram
                else size + len(data) > _MAX_RECORD_BYTES
            )
            if full and groups[-1]:
                groups.append([])
                size = 0
            groups[-1].append(data)
            size += len(data)
        return groups


@dataclass
class Bus:
    """Slaves sharing one pair of wires."""

    slaves: Sequence[Slave]
    collisions: int = 0

    def handle(self, frame: bytes) -> bytes:
        """What the master hears after ``frame``: nothing, one answer, or a collision."""
        answers = [answer for slave in self.slaves if (answer := slave.handle(frame)) is not None]
        if len(answers) > 1:
            self.collisions += 1
            return collide(answers)
        return answers[0] if answers else b""


# Slaves answer after slightly different delays; this many bit times apart per slave.
COLLISION_SKEW_BITS = 3


def collide(answers: Sequence[bytes], skew_bits: int = COLLISION_SKEW_BITS) -> bytes:
    """What a UART hears when slaves send at once: a sending slave's space (0) draws current
    and dominates the line, so the line is the AND of all bit streams, each a little late."""
    streams = [[1] * (index * skew_bits) + _bits(answer) for index, answer in enumerate(answers)]
    length = max(len(stream) for stream in streams)
    line = [min(stream[t] if t < len(stream) else 1 for stream in streams) for t in range(length)]
    received = bytearray()
    t = 0
    while t < len(line):
        if line[t]:
            t += 1  # idle (mark): wait for a start bit
            continue
        data = line[t + 1 : t + 9] + [1] * max(0, t + 9 - len(line))
        received.append(sum(bit << i for i, bit in enumerate(data)))
        t += 11  # start, 8 data, parity, stop; a framing error is not visible past a pty
    return bytes(received)


def _bits(data: bytes) -> list[int]:
    """The 8E1 bit stream of ``data``: start 0, data LSB first, even parity, stop 1."""
    stream: list[int] = []
    for byte in data:
        bits = [(byte >> i) & 1 for i in range(8)]
        stream += [0, *bits, sum(bits) & 1, 1]
    return stream
