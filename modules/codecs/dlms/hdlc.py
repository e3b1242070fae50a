"""DLMS transport layers: HDLC (IEC 62056-46 frame type 3), LLC, the TCP wrapper, wired M-Bus.

HAN pushes are not byte-stuffed: 0x7E and 0x7D appear raw inside the information field, so
frames are delimited by the length in the format field and checked with HCS/FCS, never by
scanning for the next flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modules.codecs.crc import CRC16_X25
from modules.codecs.errors import ChecksumError, FrameError, IncompleteFrame

__all__ = [
    "FLAG",
    "LLC_COMMAND",
    "LLC_RESPONSE",
    "WRAPPER_PORT_TCP",
    "WRAPPER_VERSION",
    "HdlcFrame",
    "MbusSegment",
    "SegmentAssembler",
    "Wrapper",
    "control_name",
    "crc16_x25",
    "decode_address",
    "encode_address",
    "encode_frame",
    "encode_wrapper",
    "find_frame_start",
    "parse_frame",
    "parse_mbus_segment",
    "parse_wrapper",
    "strip_llc",
]

FLAG = 0x7E
FORMAT_TYPE_3 = 0xA  # IEC 62056-46 6.4.1: the four high bits of the format field
SEGMENTED_BIT = 0x08  # in the first format byte
MAX_FRAME_LENGTH = 0x7FF  # 11 length bits
LLC_COMMAND = b"\xe6\xe6\x00"  # client -> server: destination LSAP, source LSAP, quality
LLC_RESPONSE = b"\xe6\xe7\x00"  # server -> client
WRAPPER_VERSION = 0x0001  # IEC 62056-47 7.2: the only wrapper version
WRAPPER_PORT_TCP = 4059  # IANA "dlms-cosem", IEC 62056-47
WRAPPER_HEADER_BYTES = 8
MBUS_START = 0x68
MBUS_STOP = 0x16

# The HDLC frame check sequence: CRC-16/X.25 (IEC 62056-46 annex A), sent least significant
# byte first.
crc16_x25 = CRC16_X25


def decode_address(data: bytes, start: int, what: str) -> tuple[int, bytes, int]:
    """(address value, raw bytes, next position) of an HDLC address of 1, 2 or 4 bytes."""
    for size in (1, 2, 4):
        end = start + size
        if end > len(data):
            break
        if data[end - 1] & 1:
            if any(b & 1 for b in data[start : end - 1]):
                break
            raw = data[start:end]
            if size == 4:
                # A 4-byte server address is upper HDLC address (2 bytes) + lower (2 bytes).
                upper = (raw[0] >> 1) << 7 | raw[1] >> 1
                lower = (raw[2] >> 1) << 7 | raw[3] >> 1
                return upper << 14 | lower, raw, end
            value = 0
            for byte in raw:
                value = value << 7 | byte >> 1
            return value, raw, end
    raise FrameError(f"HDLC {what} address is not 1, 2 or 4 bytes", offset=start)


def encode_address(value: int, size: int | None = None) -> bytes:
    """An HDLC address: 7 bits a byte, low bit set on the last byte (IEC 62056-46 6.4.2)."""
    if size is None:
        size = 1 if value < 0x80 else 2 if value < 0x4000 else 4
    if size == 4:
        upper, lower = value >> 14, value & 0x3FFF
        groups = [upper >> 7, upper & 0x7F, lower >> 7, lower & 0x7F]
    elif size in (1, 2):
        if value >> (7 * size):
            raise ValueError(f"address {value} does not fit in {size} byte(s)")
        groups = [(value >> (7 * (size - 1 - i))) & 0x7F for i in range(size)]
    else:
        raise ValueError("HDLC addresses are 1, 2 or 4 bytes")
    out = bytearray(g << 1 for g in groups)
    out[-1] |= 1
    return bytes(out)


_U_FRAMES = {0x83: "SNRM", 0x43: "DISC", 0x63: "UA", 0x0F: "DM", 0x87: "FRMR", 0x03: "UI"}


def control_name(control: int) -> str:
    """I, RR, RNR or the U-frame name of an HDLC control byte (P/F bit ignored)."""
    if not control & 1:
        return "I"
    if control & 0x03 == 0x01:
        return "RR" if control & 0x0F == 0x01 else "RNR" if control & 0x0F == 0x05 else "S"
    return _U_FRAMES.get(control & ~0x10, "U")


@dataclass(frozen=True, slots=True)
class HdlcFrame:
    """One HDLC frame type 3, checked."""

    segmented: bool
    length: int
    dest: int
    dest_raw: bytes
    src: int
    src_raw: bytes
    control: int
    hcs: int | None
    fcs: int
    info: bytes
    size: int  # bytes consumed from the input, flags included

    def facts(self) -> dict[str, Any]:
        """Frame facts for ``Decoded.frame``."""
        fmt = (0xA0 | (SEGMENTED_BIT if self.segmented else 0)) << 8 | self.length & 0x7FF
        return {
            "format": f"0x{fmt:04x}",
            "segmented": self.segmented,
            "length": self.length,
            "dest_addr": self.dest_raw.hex(),
            "src_addr": self.src_raw.hex(),
            "dest": self.dest,
            "src": self.src,
            "control": f"0x{self.control:02x}",
            "frame_type": control_name(self.control),
            "hcs": None if self.hcs is None else f"0x{self.hcs:04x}",
            "fcs": f"0x{self.fcs:04x}",
        }


def parse_frame(data: bytes, start: int = 0) -> HdlcFrame:
    """The frame beginning at ``start`` (a 0x7E flag, or the format field itself)."""
    pos = start
    flagged = pos < len(data) and data[pos] == FLAG
    if flagged:
        pos += 1
    if pos + 2 > len(data):
        raise IncompleteFrame("HDLC frame: no format field", offset=pos)
    fmt = data[pos] << 8 | data[pos + 1]
    if fmt >> 12 != FORMAT_TYPE_3:
        raise FrameError(f"HDLC format field 0x{fmt:04x} is not frame type 3", offset=pos)
    length = fmt & MAX_FRAME_LENGTH
    end = pos + length
    if length < 7:
        raise FrameError(f"HDLC length {length} is shorter than a header", offset=pos)
    if end > len(data):
        raise IncompleteFrame(
            f"HDLC frame says {length} bytes, {len(data) - pos} arrived", offset=len(data)
        )
    dest, dest_raw, cursor = decode_address(data, pos + 2, "destination")
    src, src_raw, cursor = decode_address(data, cursor, "source")
    if cursor >= end:
        raise FrameError("HDLC header runs past the frame length", offset=cursor)
    control = data[cursor]
    cursor += 1
    header_end = cursor
    if end - header_end == 2:
        # No information field: the frame ends with the one check sequence over the header.
        hcs, fcs_pos = None, header_end
    else:
        if end - header_end < 4:
            raise FrameError("HDLC frame too short for HCS and FCS", offset=header_end)
        hcs = data[header_end] | data[header_end + 1] << 8
        computed = crc16_x25(data[pos:header_end])
        if hcs != computed:
            raise ChecksumError(
                f"HDLC HCS is 0x{hcs:04x}, header gives 0x{computed:04x}", offset=header_end
            )
        fcs_pos = end - 2
    fcs = data[fcs_pos] | data[fcs_pos + 1] << 8
    computed = crc16_x25(data[pos:fcs_pos])
    if fcs != computed:
        raise ChecksumError(
            f"HDLC FCS is 0x{fcs:04x}, frame gives 0x{computed:04x}", offset=fcs_pos
        )
    info = b"" if hcs is None else data[header_end + 2 : fcs_pos]
    consumed = end
    if flagged:
        if end < len(data) and data[end] == FLAG:
            consumed += 1
        elif end < len(data):
            raise FrameError("HDLC frame does not end with a 0x7E flag", offset=end)
    return HdlcFrame(
        bool(data[pos] & SEGMENTED_BIT),
        length,
        dest,
        dest_raw,
        src,
        src_raw,
        control,
        hcs,
        fcs,
        info,
        consumed - start,
    )


def find_frame_start(data: bytes, start: int = 0) -> int | None:
    """The next 0x7E that opens a frame with a valid header check (resync after junk)."""
    pos = data.find(FLAG, start)
    while pos != -1:
        if pos + 1 < len(data) and data[pos + 1] >> 4 == FORMAT_TYPE_3:
            try:
                parse_frame(data, pos)
            except IncompleteFrame:
                return pos
            except FrameError:
                pass
            else:
                return pos
        pos = data.find(FLAG, pos + 1)
    return None


def encode_frame(
    info: bytes,
    *,
    dest: int,
    src: int,
    control: int = 0x13,
    segmented: bool = False,
    dest_size: int | None = None,
    src_size: int | None = None,
) -> bytes:
    """One flagged HDLC frame type 3 around an information field (which may be empty)."""
    header_tail = encode_address(dest, dest_size) + encode_address(src, src_size) + bytes([control])
    length = 2 + len(header_tail) + (len(info) + 4 if info else 2)
    if length > MAX_FRAME_LENGTH:
        raise ValueError(f"HDLC frame of {length} bytes exceeds the 11-bit length")
    fmt = (0xA000 | (SEGMENTED_BIT << 8 if segmented else 0) | length).to_bytes(2, "big")
    header = fmt + header_tail
    body = header
    if info:
        body += crc16_x25(header).to_bytes(2, "little") + info
    body += crc16_x25(body).to_bytes(2, "little")
    return bytes([FLAG]) + body + bytes([FLAG])


def strip_llc(info: bytes) -> tuple[bytes, str | None]:
    """(APDU, LLC hex) with an IEC 62056-46 LLC header removed when present."""
    if info[:3] in (LLC_COMMAND, LLC_RESPONSE):
        return info[3:], info[:3].hex()
    return info, None


@dataclass(frozen=True, slots=True)
class Wrapper:
    """The IEC 62056-47 wrapper header used on TCP port 4059."""

    version: int
    source: int
    destination: int
    length: int
    apdu: bytes
    size: int


def parse_wrapper(data: bytes, start: int = 0) -> Wrapper:
    """The wrapper PDU at ``start``: version, source wport, destination wport, length, APDU."""
    if len(data) - start < WRAPPER_HEADER_BYTES:
        raise IncompleteFrame("wrapper header needs 8 bytes", offset=len(data))
    version = int.from_bytes(data[start : start + 2], "big")
    if version != WRAPPER_VERSION:
        raise FrameError(f"wrapper version {version} is not 1", offset=start)
    source = int.from_bytes(data[start + 2 : start + 4], "big")
    destination = int.from_bytes(data[start + 4 : start + 6], "big")
    length = int.from_bytes(data[start + 6 : start + 8], "big")
    end = start + WRAPPER_HEADER_BYTES + length
    if end > len(data):
        raise IncompleteFrame(
            f"wrapper says {length} APDU bytes, {len(data) - start - 8} arrived", offset=len(data)
        )
    return Wrapper(version, source, destination, length, data[start + 8 : end], end - start)


def encode_wrapper(apdu: bytes, *, source: int, destination: int) -> bytes:
    """An APDU inside a wrapper header (source/destination are the client/server wports)."""
    header = WRAPPER_VERSION.to_bytes(2, "big") + source.to_bytes(2, "big")
    return header + destination.to_bytes(2, "big") + len(apdu).to_bytes(2, "big") + apdu


@dataclass(frozen=True, slots=True)
class MbusSegment:
    """A wired M-Bus long frame carrying a DLMS segment (EN 13757-2, DLMS/COSEM over M-Bus)."""

    control: int
    address: int
    ci: int
    stsap: int
    dtsap: int
    data: bytes
    size: int

    @property
    def last(self) -> bool:
        """CI bit 4 marks the final segment; the low nibble is the segment number."""
        return bool(self.ci & 0x10)


def parse_mbus_segment(data: bytes, start: int = 0) -> MbusSegment:
    """``68 L L 68 C A CI STSAP DTSAP data CS 16`` at ``start``."""
    if len(data) - start < 6:
        raise IncompleteFrame("M-Bus long frame header needs 4 bytes", offset=len(data))
    length = data[start + 1]
    if data[start] != MBUS_START or data[start + 3] != MBUS_START or data[start + 2] != length:
        raise FrameError("not an M-Bus long frame (68 L L 68)", offset=start)
    end = start + 4 + length + 2
    if end > len(data):
        raise IncompleteFrame(
            f"M-Bus frame says {length} bytes, {len(data) - start - 4} arrived", offset=len(data)
        )
    body = data[start + 4 : start + 4 + length]
    if length < 5:
        raise FrameError("M-Bus frame too short for C, A, CI and the TSAPs", offset=start + 4)
    checksum = sum(body) & 0xFF
    if data[end - 2] != checksum:
        raise ChecksumError(
            f"M-Bus checksum is 0x{data[end - 2]:02x}, data gives 0x{checksum:02x}",
            offset=end - 2,
        )
    if data[end - 1] != MBUS_STOP:
        raise FrameError("M-Bus frame does not end with 0x16", offset=end - 1)
    return MbusSegment(body[0], body[1], body[2], body[3], body[4], body[5:], end - start)


@dataclass(slots=True)
class SegmentAssembler:
    """Joins HDLC segments (format S bit) into one information field, across calls."""

    parts: list[bytes] = field(default_factory=list)

    def feed(self, frame: HdlcFrame) -> bytes | None:
        """The whole information field once the last segment arrived, else None."""
        self.parts.append(frame.info)
        if frame.segmented:
            return None
        info = b"".join(self.parts)
        self.parts.clear()
        return info

    @property
    def pending(self) -> bool:
        """Segments are waiting for their continuation."""
        return bool(self.parts)
