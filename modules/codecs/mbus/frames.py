"""Wired M-Bus (EN 13757-2 link layer, EN 13757-3 application layer), sans-IO.

Frames: the single character ACK (0xE5), short frames ``10 C A CS 16``, control frames
``68 03 03 68 C A CI CS 16`` and long frames ``68 L L 68 C A CI data CS 16`` where L counts
C..data and CS is their sum mod 256. ``MbusDecoder`` decodes one frame of any kind into
``Decoded``; the ``encode_*`` and request builders make the master's requests and, for the
emulator, a slave's RSP_UD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from modules.codecs.errors import ChecksumError, FrameError, IncompleteFrame, UnknownFormat
from modules.codecs.mbus.encode import manufacturer_code
from modules.codecs.mbus.fixed import decode_fixed
from modules.codecs.mbus.records import decode_records, more_records_follow, undecoded_warnings
from modules.codecs.mbus.vif import medium_name
from modules.codecs.records import Decoded

__all__ = [
    "ACK",
    "BROADCAST_ADDRESS",
    "NETWORK_LAYER_ADDRESS",
    "MbusDecoder",
    "SecondaryAddress",
    "application_reset",
    "decode_manufacturer",
    "encode_long",
    "encode_short",
    "req_ud1",
    "req_ud2",
    "rsp_ud",
    "select_secondary",
    "set_primary_address",
    "snd_nke",
    "split_frame",
    "switch_baud_rate",
]

ACK = 0xE5
SHORT_START = 0x10
LONG_START = 0x68
STOP = 0x16
NETWORK_LAYER_ADDRESS = 0xFD  # the slave selected by secondary address answers here
BROADCAST_ADDRESS = 0xFF  # every slave acts, none answers (0xFE: all act and answer)

C_SND_NKE = 0x40
C_SND_UD = 0x53
C_REQ_UD1 = 0x5A
C_REQ_UD2 = 0x5B
C_RSP_UD = 0x08
FCB = 0x20  # frame count bit, toggled per new request to the same slave

CI_APPLICATION_RESET = 0x50
CI_DATA_SEND = 0x51
CI_SELECT = 0x52
CI_ERROR = 0x70
CI_ALARM = 0x71
CI_VARIABLE = 0x72
CI_FIXED = 0x73
CI_VARIABLE_MSB = 0x76
CI_FIXED_MSB = 0x77
CI_NO_HEADER = 0x78
CI_SHORT_HEADER = 0x7A
BAUD_RATES = {
    0xB8: 300,
    0xB9: 600,
    0xBA: 1200,
    0xBB: 2400,
    0xBC: 4800,
    0xBD: 9600,
    0xBE: 19200,
    0xBF: 38400,
}

# EN 13757-3 table 8: the byte of a CI 0x70 application error frame.
APPLICATION_ERRORS = {
    0: "unspecified error",
    1: "unimplemented CI-field",
    2: "buffer too long, truncated",
    3: "too many records",
    4: "premature end of record",
    5: "more than 10 DIFEs",
    6: "more than 10 VIFEs",
    8: "application too busy for handling readout request",
    9: "too many readouts",
}
_STATUS_FLAGS = ((0x04, "power_low"), (0x08, "permanent_error"), (0x10, "temporary_error"))
_APPLICATION_STATUS = ("ok", "busy", "error", "alarm")


def encode_short(c: int, a: int) -> bytes:
    """A short frame: start, C, A, checksum, stop."""
    return bytes([SHORT_START, c, a, (c + a) & 0xFF, STOP])


def encode_long(c: int, a: int, ci: int, data: bytes = b"") -> bytes:
    """A long frame (a control frame when ``data`` is empty)."""
    length = 3 + len(data)
    if length > 255:
        raise ValueError(f"long frame user data of {len(data)} bytes exceeds 252")
    body = bytes([c, a, ci]) + data
    return bytes([LONG_START, length, length, LONG_START]) + body + bytes([sum(body) & 0xFF, STOP])


def snd_nke(address: int) -> bytes:
    """SND_NKE: link reset; the slave answers ACK and expects FCB = 1 next."""
    return encode_short(C_SND_NKE, address)


def req_ud2(address: int, *, fcb: bool) -> bytes:
    """REQ_UD2: request class 2 data (toggle ``fcb`` per new request, keep it for a retry)."""
    return encode_short(C_REQ_UD2 | (FCB if fcb else 0), address)


def req_ud1(address: int, *, fcb: bool) -> bytes:
    """REQ_UD1: request class 1 (alarm) data."""
    return encode_short(C_REQ_UD1 | (FCB if fcb else 0), address)


def application_reset(address: int, subcode: int | None = None, *, fcb: bool = False) -> bytes:
    """SND_UD with CI 0x50, optionally with the reset subcode (e.g. 0x10 = all user data)."""
    data = b"" if subcode is None else bytes([subcode])
    return encode_long(C_SND_UD | (FCB if fcb else 0), address, CI_APPLICATION_RESET, data)


def set_primary_address(address: int, new_address: int) -> bytes:
    """SND_UD writing a new primary address (DIF 01, VIF 7A)."""
    if not 0 <= new_address <= 250:
        raise ValueError(f"primary address {new_address} is outside 0..250")
    return encode_long(C_SND_UD, address, CI_DATA_SEND, bytes([0x01, 0x7A, new_address]))


def switch_baud_rate(address: int, baud: int) -> bytes:
    """A control frame switching the slave's baud rate (CI 0xB8..0xBF)."""
    by_rate = {rate: ci for ci, rate in BAUD_RATES.items()}
    if baud not in by_rate:
        raise ValueError(f"baud rate {baud} is not one of {sorted(by_rate)}")
    return encode_long(C_SND_UD, address, by_rate[baud])


@dataclass(frozen=True, slots=True)
class SecondaryAddress:
    """A secondary address, possibly with wildcards (F digits, None fields).

    ``id`` is 8 characters, each a digit or F (any digit); ``manufacturer`` three letters or
    None (0xFFFF); ``version`` and ``medium`` a byte or None (0xFF).
    """

    id: str
    manufacturer: str | None = None
    version: int | None = None
    medium: int | None = None

    @classmethod
    def parse(cls, text: str) -> SecondaryAddress:
        """From libmbus's 16 hex digits ``IIIIIIIIMMMMVVTT`` (M in wire order), F = wildcard."""
        digits = text.strip().upper()
        if len(digits) == 8:
            digits += "FFFFFFFF"
        if len(digits) != 16 or any(c not in "0123456789ABCDEF" for c in digits):
            raise ValueError(f"secondary address {text!r} is not 8 or 16 hex digits")
        wire = bytes.fromhex(digits[8:12])
        return cls(
            digits[:8],
            None if wire == b"\xff\xff" else decode_manufacturer(int.from_bytes(wire, "little")),
            None if digits[12:14] == "FF" else int(digits[12:14], 16),
            None if digits[14:16] == "FF" else int(digits[14:16], 16),
        )

    @classmethod
    def from_bytes(cls, body: bytes) -> SecondaryAddress:
        """From the 8 bytes of a selection (CI 0x52) body or of a long TPL header."""
        if len(body) < 8:
            raise ValueError(f"a secondary address needs 8 bytes, got {len(body)}")
        return cls.parse(body[:4][::-1].hex() + body[4:8].hex())

    def encode(self) -> bytes:
        """The 8 bytes of a selection (CI 0x52) body."""
        if len(self.id) != 8 or any(c not in "0123456789Ff" for c in self.id):
            raise ValueError(f"id {self.id!r} is not 8 digits or F wildcards")
        code = 0xFFFF if self.manufacturer is None else manufacturer_code(self.manufacturer)
        return (
            bytes.fromhex(self.id)[::-1]
            + code.to_bytes(2, "little")
            + bytes([0xFF if self.version is None else self.version])
            + bytes([0xFF if self.medium is None else self.medium])
        )

    def matches(self, other: SecondaryAddress) -> bool:
        """Whether a concrete address ``other`` is selected by this (wildcard) pattern."""
        digits = all(p in "Ff" or p == o for p, o in zip(self.id, other.id, strict=True))
        return (
            digits
            and self.manufacturer in (None, other.manufacturer)
            and self.version in (None, other.version)
            and self.medium in (None, other.medium)
        )

    def __str__(self) -> str:
        return self.id.upper() + self.encode()[4:].hex().upper()


def select_secondary(address: SecondaryAddress, *, fcb: bool = False) -> bytes:
    """SND_UD to address 0xFD with CI 0x52: select a slave by its secondary address."""
    return encode_long(
        C_SND_UD | (FCB if fcb else 0), NETWORK_LAYER_ADDRESS, CI_SELECT, address.encode()
    )


def rsp_ud(address: int, ci: int, data: bytes, *, acd: bool = False, dfc: bool = False) -> bytes:
    """A slave's RSP_UD long frame (``data`` = TPL header + records, see mbus_encode)."""
    c = C_RSP_UD | (0x20 if acd else 0) | (0x10 if dfc else 0)
    return encode_long(c, address, ci, data)


def decode_manufacturer(code: int) -> str:
    """The three FLAG letters of a manufacturer code (bit 15 of wM-Bus hard/soft ids ignored)."""
    code &= 0x7FFF
    return "".join(chr(((code >> shift) & 0x1F) + 64) for shift in (10, 5, 0))


FrameKind = Literal["ack", "short", "control", "long"]


def split_frame(data: bytes) -> tuple[FrameKind, int]:
    """The kind of frame at the start of ``data`` and its full length, checked.

    Raises IncompleteFrame when more bytes may complete it, FrameError when the start or
    length bytes are wrong, ChecksumError on a bad checksum.
    """
    if not data:
        raise IncompleteFrame("no bytes", offset=0)
    start = data[0]
    if start == ACK:
        return "ack", 1
    if start == SHORT_START:
        _need(data, 5)
        _check_end(data, 1, 2)
        return "short", 5
    if start != LONG_START:
        raise FrameError(f"0x{start:02x} starts no M-Bus frame", offset=0, code="bad_frame")
    _need(data, 4)
    length = data[1]
    if data[2] != length:
        raise FrameError(f"length bytes differ: {length} and {data[2]}", offset=2, code="bad_frame")
    if data[3] != LONG_START:
        raise FrameError("second start byte is not 0x68", offset=3, code="bad_frame")
    if length < 3:
        raise FrameError(f"L-field {length} is below 3 (C, A, CI)", offset=1, code="bad_frame")
    _need(data, length + 6)
    _check_end(data, 4, length)
    return ("control" if length == 3 else "long"), length + 6


def _need(data: bytes, size: int) -> None:
    if len(data) < size:
        raise IncompleteFrame(f"frame needs {size} bytes, got {len(data)}", offset=len(data))


def _check_end(data: bytes, start: int, length: int) -> None:
    checksum = data[start + length]
    if data[start + length + 1] != STOP:
        raise FrameError("stop byte is not 0x16", offset=start + length + 1, code="bad_frame")
    if sum(data[start : start + length]) & 0xFF != checksum:
        expected = sum(data[start : start + length]) & 0xFF
        raise ChecksumError(
            f"checksum 0x{checksum:02x}, computed 0x{expected:02x}", offset=start + length
        )


_MASTER_FUNCTIONS = {0x0: "SND_NKE", 0x3: "SND_UD", 0xA: "REQ_UD1", 0xB: "REQ_UD2"}
_SLAVE_FUNCTIONS = {0x0: "ACK", 0x1: "NACK", 0x8: "RSP_UD"}


def c_field(c: int) -> dict[str, Any]:
    """The C-field's meaning: direction, function name and its FCB/FCV or ACD/DFC bits."""
    if c & 0x40:
        name = _MASTER_FUNCTIONS.get(c & 0x0F, f"function_{c & 0x0F:x}")
        return {"name": name, "fcb": bool(c & 0x20), "fcv": bool(c & 0x10)}
    name = _SLAVE_FUNCTIONS.get(c & 0x0F, f"function_{c & 0x0F:x}")
    return {"name": name, "acd": bool(c & 0x20), "dfc": bool(c & 0x10)}


class MbusDecoder:
    """``meter-gateway decode mbus``: one wired M-Bus frame (hex) into meter, frame and records."""

    input_kind: ClassVar[Literal["hex", "text"]] = "hex"

    def decode(
        self, data: bytes, *, key: bytes | None = None, auth_key: bytes | None = None
    ) -> Decoded:
        """Decode one frame; raise FrameError (code says why) when it is not a valid one."""
        kind, size = split_frame(data)
        if len(data) > size:
            raise FrameError(
                f"{len(data) - size} bytes after the end of the frame",
                offset=size,
                code="bad_frame",
            )
        if kind == "ack":
            return Decoded("mbus", frame={"type": "ack", "name": "ACK"})
        if kind == "short":
            short = {"type": "short", "c": data[1], "a": data[2], **c_field(data[1])}
            return Decoded("mbus", frame=short)
        c, a, ci = data[4], data[5], data[6]
        frame: dict[str, Any] = {"type": kind, "c": c, "a": a, "ci": ci, **c_field(c)}
        frame["length"] = data[1]
        body = data[7 : 4 + data[1]]
        return _decode_application(frame, ci, body, body_offset=7)


def _decode_application(
    frame: dict[str, Any], ci: int, body: bytes, *, body_offset: int
) -> Decoded:
    if ci in (CI_VARIABLE, CI_VARIABLE_MSB):
        meter = _long_header(body, body_offset, msb_first=ci == CI_VARIABLE_MSB)
        return _variable(frame, meter, body[12:], body_offset + 12, ci == CI_VARIABLE_MSB)
    if ci == CI_SHORT_HEADER:
        meter = _short_header(body, body_offset)
        meter["address"] = frame["a"]
        return _variable(frame, meter, body[4:], body_offset + 4, False)
    if ci in (CI_NO_HEADER, CI_DATA_SEND):
        return _variable(frame, {"address": frame["a"]}, body, body_offset, False)
    if ci in (CI_FIXED, CI_FIXED_MSB):
        fixed = decode_fixed(body, offset=body_offset, msb_first=ci == CI_FIXED_MSB)
        meter = {
            "id": fixed.id,
            "medium": medium_name(fixed.medium),
            "medium_code": fixed.medium,
            "access_number": fixed.access_number,
            "status": fixed.status,
            "address": frame["a"],
        }
        return Decoded("mbus", meter=meter, frame=frame, records=fixed.records)
    if ci == CI_ERROR:
        code = body[0] if body else 0
        text = APPLICATION_ERRORS.get(code, f"reserved error code {code}")
        raise FrameError(
            f"application error frame: {text}", offset=body_offset, code="application_error"
        )
    if ci == CI_ALARM:
        frame["alarm"] = body[0] if body else 0
        return Decoded("mbus", meter={"address": frame["a"]}, frame=frame)
    if ci == CI_SELECT:
        if len(body) != 8:
            raise FrameError("selection needs 8 bytes", offset=body_offset, code="bad_frame")
        frame["secondary_address"] = body[:4][::-1].hex().upper() + body[4:].hex().upper()
        return Decoded("mbus", frame=frame)
    if ci == CI_APPLICATION_RESET:
        if body:
            frame["reset_subcode"] = body[0]
        return Decoded("mbus", frame=frame)
    if ci in BAUD_RATES:
        frame["baud_rate"] = BAUD_RATES[ci]
        return Decoded("mbus", frame=frame)
    raise UnknownFormat(f"CI-field 0x{ci:02x} is not supported", offset=6)


def _variable(
    frame: dict[str, Any], meter: dict[str, Any], payload: bytes, offset: int, msb_first: bool
) -> Decoded:
    medium = meter.get("medium_code")
    records = decode_records(
        payload,
        offset=offset,
        medium=medium,
        manufacturer=meter.get("manufacturer"),
        msb_first=msb_first,
        keep_going=True,
    )
    frame["more_records_follow"] = more_records_follow(records)
    if warnings := undecoded_warnings(records):
        frame["warnings"] = warnings
    return Decoded("mbus", meter=meter, frame=frame, records=records)


def _short_header(body: bytes, offset: int) -> dict[str, Any]:
    if len(body) < 4:
        raise IncompleteFrame("short TPL header needs 4 bytes", offset=offset + len(body))
    return {**_status(body[0], body[1]), "signature": int.from_bytes(body[2:4], "little")}


def _long_header(body: bytes, offset: int, *, msb_first: bool) -> dict[str, Any]:
    if len(body) < 12:
        raise IncompleteFrame("long TPL header needs 12 bytes", offset=offset + len(body))

    def part(start: int, size: int) -> bytes:
        chunk = body[start : start + size]
        return chunk if msb_first else chunk[::-1]

    manufacturer = int.from_bytes(part(4, 2), "big")
    ident = part(0, 4).hex().upper()
    # libmbus's 16 hex digits (id, M in wire order, version, medium), as scans list them.
    secondary = ident + manufacturer.to_bytes(2, "little").hex().upper() + body[6:8].hex().upper()
    return {
        "id": ident,
        "secondary_address": secondary,
        "manufacturer": decode_manufacturer(manufacturer),
        "version": body[6],
        "medium": medium_name(body[7]),
        "medium_code": body[7],
        **_status(body[8], body[9]),
        "signature": int.from_bytes(part(10, 2), "big"),
    }


def _status(access_number: int, status: int) -> dict[str, Any]:
    flags = [name for bit, name in _STATUS_FLAGS if status & bit]
    return {
        "access_number": access_number,
        "status": status,
        "application_status": _APPLICATION_STATUS[status & 0x03],
        "status_flags": flags,
    }
