"""CUL / nanoCUL sticks (CC1101) with culfw: ASCII lines.

``brc``/``brt``/``brs`` + CRLF start reception in C (hears C1 and T1), T or S mode; culfw
answers ``CMODE``/``TMODE``/``SMODE``. ``X21`` makes it append the CC1101's LQI and RSSI
status bytes to each telegram. A telegram is a line ``b<hex>`` (frame format A, DLL CRCs
included) or ``bY<hex>`` (C1 frame format B), then two hex bytes LQI and RSSI when enabled.
CC1101 datasheet (SWRS061) 17.3: RSSI is two's complement, dBm = RSSI / 2 - 74 at 868 MHz;
the LQI byte holds CRC_OK in bit 7 and the link quality in bits 0..6 (lower is better).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.errors import FatalAdapterError
from modules.codecs.crypto import crc16_en13757
from modules.wmbus.receivers import Heard, Item, Rejected, Reply

__all__ = ["Cul", "CulDevice", "format_a_length"]

RSSI_OFFSET_DB = 74
_MODE_COMMANDS = {
    frozenset(["C1"]): ("c", "CMODE"),
    frozenset(["C1", "T1"]): ("c", "CMODE"),
    frozenset(["T1"]): ("t", "TMODE"),
    frozenset(["S1"]): ("s", "SMODE"),
}
# A telegram line, found even behind line noise (culfw prints hex in one case).
_TELEGRAM = re.compile(r"bY?(?:[0-9A-F]+|[0-9a-f]+)$")
_MAX_LINE = 1024  # 'bY' + 2 x 290 bytes + status, with room to spare
_BLOCK_BYTES = 16
_FIRST_BLOCK_BYTES = 10


def format_a_length(length: int) -> int:
    """Bytes of a format A telegram with its DLL CRCs, from its L field (EN 13757-4 5.5.2)."""
    rest = max(0, length + 1 - _FIRST_BLOCK_BYTES)
    return length + 1 + 2 * (1 + (rest + _BLOCK_BYTES - 1) // _BLOCK_BYTES)


def rssi_to_dbm(raw: int) -> float:
    """CC1101 RSSI status byte to dBm."""
    return (raw - 256 if raw >= 128 else raw) / 2 - RSSI_OFFSET_DB


class _Lines:
    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[str]:
        buffer = self._buffer
        buffer += data
        lines = []
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end]).strip(b"\r\n\x00 ")
            del buffer[: end + 1]
            if line:
                lines.append(line.decode("ascii", errors="replace"))
        if len(buffer) > _MAX_LINE:
            buffer.clear()
        return lines


class Cul:
    """The host side of a CUL running culfw."""

    kind = "cul"
    baudrate = 38400

    def __init__(self, modes: Sequence[str]) -> None:
        self.mode_letter, self.expected = _MODE_COMMANDS[frozenset(modes)]
        self.device_info = ""
        self._lines = _Lines()
        self._done = False

    def setup(self, reply: Reply | None) -> bytes | None:
        """LQI/RSSI reporting on, then reception in the wanted mode."""
        if reply is None:
            return b"X21\r\nbr" + self.mode_letter.encode() + b"\r\n"
        if reply.name == self.expected:
            self._done = True
            return None
        if reply.name == "TEXT" and reply.detail.startswith("?"):
            raise FatalAdapterError(
                f"the CUL does not know wM-Bus commands ({reply.detail!r}): flash a culfw "
                "built with wM-Bus support"
            )
        return b""

    def feed(self, data: bytes) -> list[Item]:
        """Lines in; telegrams and mode confirmations out."""
        out: list[Item] = []
        for line in self._lines.feed(data):
            if line in ("CMODE", "TMODE", "SMODE"):
                out.append(Reply(line))
            elif (found := _TELEGRAM.search(line)) is not None:
                out.append(_telegram(found[0]))
            else:
                out.append(Reply("TEXT", detail=line[:80]))
        return out


def _telegram(line: str) -> Heard | Rejected:
    frame_b = line.startswith("bY")
    text = line[2:] if frame_b else line[1:]
    try:
        data = bytes.fromhex(text)
    except ValueError:
        return Rejected("CUL line is not hex", line.encode())
    if not data:
        return Rejected("empty CUL telegram", line.encode())
    expected = data[0] + 1 if frame_b else format_a_length(data[0])
    if len(data) == expected + 2:
        lqi, rssi = data[-2], data[-1]
        return Heard(
            data[:-2],
            dll_crcs="B" if frame_b else "A",
            rssi_dbm=rssi_to_dbm(rssi),
            lqi=lqi & 0x7F,
            mode="C1" if frame_b else None,
        )
    if len(data) == expected:
        return Heard(data, dll_crcs="B" if frame_b else "A", mode="C1" if frame_b else None)
    return Rejected(
        f"CUL telegram of L={data[0]} should have {expected} bytes, has {len(data)}",
        line.encode(),
    )


class CulDevice:
    """A CUL as seen from the host; ``frame_format`` "B" reports C1 telegrams as ``bY``."""

    def __init__(self, *, frame_format: str = "B", lqi: int = 0x2A) -> None:
        self.frame_format = frame_format
        self.lqi = lqi
        self.report_rssi = False
        self.mode = ""
        self._lines = _Lines()

    def answer(self, data: bytes) -> bytes:
        """Commands in; culfw's answers out."""
        out = b""
        for line in self._lines.feed(data):
            if line in ("brc", "brt", "brs"):
                self.mode = line[2]
                out += {"c": b"CMODE", "t": b"TMODE", "s": b"SMODE"}[self.mode] + b"\r\n"
            elif line.startswith("X"):
                self.report_rssi = line == "X21"
            elif line == "V":
                out += b"V 1.67 nanoCUL868\r\n"
            else:
                out += f"? ({line} is unknown) Use one of b C V X\r\n".encode()
        return out

    def indication(self, telegram: bytes, rssi_dbm: float) -> bytes:
        """``b``/``bY`` + hex with DLL CRCs + LQI and RSSI (when X21 was sent)."""
        if self.frame_format == "B":
            prefix, framed = "bY", _with_crcs_b(telegram)
        else:
            prefix, framed = "b", _with_crcs_a(telegram)
        text = prefix + framed.hex().upper()
        if self.report_rssi:
            raw = max(-128, min(127, round((rssi_dbm + RSSI_OFFSET_DB) * 2))) & 0xFF
            text += f"{self.lqi:02X}{raw:02X}"
        return text.encode() + b"\r\n"


def _crc(block: bytes) -> bytes:
    return block + crc16_en13757(block).to_bytes(2, "big")


def _with_crcs_a(telegram: bytes) -> bytes:
    out = _crc(telegram[:_FIRST_BLOCK_BYTES])
    for start in range(_FIRST_BLOCK_BYTES, len(telegram), _BLOCK_BYTES):
        out += _crc(telegram[start : start + _BLOCK_BYTES])
    return out


def _with_crcs_b(telegram: bytes) -> bytes:
    # Format B: L counts the CRCs; one CRC up to 126 bytes, a second one over the rest.
    first_span = 126
    crcs = 2 if len(telegram) <= first_span else 4
    body = bytes([len(telegram) - 1 + crcs]) + telegram[1:]
    if crcs == 2:
        return _crc(body)
    return _crc(body[:first_span]) + _crc(body[first_span:])
