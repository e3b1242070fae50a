"""Wireless M-Bus layers below the application: DLL (with CRCs), ELL, AFL and TPL headers.

EN 13757-4 (link layer, frame formats A and B, ELL) and EN 13757-7 / OMS Vol.2 (AFL, TPL,
security modes). Parsing only: the decrypting and the application layer live in ``wmbus``.
Offsets in errors count bytes of the telegram with its DLL CRCs removed, except CRC errors,
which count bytes of the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modules.codecs.crypto import crc16_en13757
from modules.codecs.errors import ChecksumError, FrameError, IncompleteFrame, UnknownFormat

__all__ = [
    "AFL_CI",
    "ELL_CI",
    "ELL_SECURITY_AES_CTR",
    "MANUFACTURER_CI",
    "STALE_CRC_DROPPED",
    "TPL_COMPACT",
    "TPL_FORMAT",
    "TPL_FULL",
    "Afl",
    "Ell",
    "LinkHeader",
    "Tpl",
    "manufacturer_code",
    "parse_afl",
    "parse_ell",
    "parse_link",
    "parse_tpl",
    "strip_crcs",
]

DLL_HEADER_BYTES = 10  # L C M(2) A(6)
CRC_BYTES = 2
FORMAT_A_BLOCK_BYTES = 16
FORMAT_B_FIRST_CRC_SPAN = 126  # EN 13757-4 Format B: block 1 + block 2 (CI and 115 bytes)

# ELL CI -> header bytes after the CI (EN 13757-4 13.2).
ELL_CI = {0x8C: 2, 0x8D: 8, 0x8E: 10, 0x8F: 16}
ELL_SECURITY_AES_CTR = 1  # SN bits 29-31
AFL_CI = 0x90
# TPL CI -> header kind (EN 13757-7 table 2): full, compact and format frames of the APL.
TPL_FULL = {0x78: "none", 0x7A: "short", 0x72: "long"}
TPL_COMPACT = {0x79: "none", 0x7B: "short", 0x73: "long"}
TPL_FORMAT = {0x69: "none", 0x6A: "short", 0x6B: "long"}
MANUFACTURER_CI = range(0xA0, 0xB8)
STALE_CRC_DROPPED = "a leftover DLL CRC at the end dropped"

# AFL MCL authentication types -> MAC length in bytes (EN 13757-7 table 9).
_AFL_MAC_BYTES = {0: 0, 3: 2, 4: 4, 5: 8, 6: 12, 7: 16, 8: 12}


def manufacturer_code(field: int) -> str:
    """Three letters from the 15-bit manufacturer field (EN 13757-3 / FLAG association)."""
    code = _CODES.get(field)
    if code is None:
        code = "".join(chr(((field >> shift) & 0x1F) + 64) for shift in (10, 5, 0))
        if len(_CODES) < 4096:  # a few meters' makers; random input must not grow it forever
            _CODES[field] = code
    return code


_CODES: dict[int, str] = {}


def _id_text(address: bytes) -> str:
    # The identification number is BCD, least significant byte first; meters print it MSB first.
    return address[3::-1].hex().upper()


@dataclass(frozen=True, slots=True)
class LinkHeader:
    """The DLL header: L, C, manufacturer and address (id, version, device type)."""

    length: int
    c: int
    manufacturer: bytes  # the two wire bytes
    address: bytes  # id(4, LSB first) version type

    @property
    def manufacturer_code(self) -> str:
        """Three letters, e.g. ``KAM``."""
        return manufacturer_code(int.from_bytes(self.manufacturer, "little"))

    @property
    def id(self) -> str:
        """The eight-digit id as printed on the meter."""
        return _id_text(self.address)

    @property
    def version(self) -> int:
        """The version (generation) byte."""
        return self.address[4]

    @property
    def device_type(self) -> int:
        """The device type (medium) byte."""
        return self.address[5]


@dataclass(frozen=True, slots=True)
class Ell:
    """Extended link layer (CI 0x8C..0x8F)."""

    ci: int
    cc: int
    acc: int
    manufacturer: bytes | None = None  # 0x8E/0x8F: the other party's address
    address: bytes | None = None
    session: bytes | None = None  # 0x8D/0x8F: SN, 4 bytes
    payload_crc_at: int | None = None  # index of the (maybe encrypted) payload CRC

    @property
    def security(self) -> int:
        """SN bits 29-31: 0 none, 1 AES-128-CTR."""
        if self.session is None:
            return 0
        return int.from_bytes(self.session, "little") >> 29


@dataclass(frozen=True, slots=True)
class Afl:
    """Authentication and fragmentation layer (CI 0x90)."""

    fcl: int
    mcl: int | None
    key_info: bytes | None
    counter: int | None
    counter_bytes: bytes | None
    mac: bytes | None
    message_length: bytes | None

    @property
    def auth_type(self) -> int:
        """MCL bits 0-3: the MAC algorithm and length."""
        return (self.mcl or 0) & 0x0F

    def mac_input_prefix(self) -> bytes:
        """The AFL fields the MAC covers, in the order EN 13757-7 9.3.3 puts them."""
        mcl = self.mcl or 0
        parts = [bytes([mcl])]
        if mcl & 0x40 and self.key_info is not None:
            parts.append(self.key_info)
        if mcl & 0x20 and self.counter_bytes is not None:
            parts.append(self.counter_bytes)
        if mcl & 0x10 and self.message_length is not None:
            parts.append(self.message_length)
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Tpl:
    """Transport layer header: CI, and for short/long headers ACC, STS and CFG."""

    ci: int
    kind: str  # none, short, long
    acc: int | None = None
    sts: int | None = None
    cfg: int | None = None
    cfg_ext: int | None = None  # mode 7
    manufacturer: bytes | None = None  # long header: the meter's own address
    address: bytes | None = None
    header_bytes: int = 1  # CI included

    @property
    def security_mode(self) -> int:
        """CFG bits 8-12 (0 none, 5 AES-CBC with IV, 7 AES-CBC with KDF, ...)."""
        return 0 if self.cfg is None else (self.cfg >> 8) & 0x1F

    @property
    def encrypted_blocks(self) -> int:
        """CFG bits 4-7 for modes 5 and 7: how many 16-byte blocks are encrypted."""
        return 0 if self.cfg is None else (self.cfg >> 4) & 0x0F

    @property
    def long_id(self) -> str | None:
        """The long header's meter id, as printed."""
        return None if self.address is None else _id_text(self.address)


def strip_crcs(
    data: bytes, expect: Literal["auto", "A", "B", "none"] = "auto"
) -> tuple[bytes, str | None, str | None]:
    """(telegram without DLL CRCs, "A"/"B"/None, note).

    ``auto`` detects format A, format B or CRCs already stripped; a receiver that knows what
    it delivers says so, and then a corrupted format B telegram is a CRC error, not a guess.
    """
    if not data:
        raise IncompleteFrame("empty telegram", offset=0)
    if expect != "auto":
        return _strip_expected(data, expect), None if expect == "none" else expect, None
    length = data[0]
    total = len(data)
    a_total = _format_a_total(length)
    first_block_ok = total >= 12 and _crc_at(data, 0, DLL_HEADER_BYTES)
    if total == length + 1:
        if length >= DLL_HEADER_BYTES + CRC_BYTES + 1 and _format_b_ok(data):
            return _strip_b(data), "B", None
        if _stale_final_crc(data):
            body = data[:-CRC_BYTES]
            return bytes([len(body) - 1]) + body[1:], None, STALE_CRC_DROPPED
        return data, None, None
    if first_block_ok and total >= a_total:
        note = None if total == a_total else f"{total - a_total} bytes after the frame ignored"
        return _strip_a(data[:a_total]), "A", note
    if first_block_ok and total < a_total and total > length + 1:
        raise IncompleteFrame(
            f"format A telegram of L={length} needs {a_total} bytes with its CRCs, got {total}",
            offset=total,
        )
    if total < length + 1:
        raise IncompleteFrame(
            f"L={length} announces {length + 1} bytes, got {total}",
            offset=total,
        )
    if total == a_total:
        # The right length for format A but block 1 does not check: a corrupted telegram.
        raise ChecksumError("DLL CRC of block 1 (format A) does not match", offset=10)
    return data[: length + 1], None, f"{total - length - 1} bytes after the frame ignored"


def _strip_expected(data: bytes, expect: str) -> bytes:
    length = data[0]
    total = _format_a_total(length) if expect == "A" else length + 1
    if len(data) < total:
        raise IncompleteFrame(
            f"L={length} in format {expect} needs {total} bytes, got {len(data)}", offset=len(data)
        )
    if expect == "A":
        return _strip_a(data[:total])
    if expect == "B":
        if length < DLL_HEADER_BYTES + CRC_BYTES + 1 or not _format_b_ok(data[:total]):
            raise ChecksumError("DLL CRC (format B) does not match", offset=total - CRC_BYTES)
        return _strip_b(data[:total])
    return data[:total]


def _stale_final_crc(data: bytes) -> bool:
    """Whether a stripped telegram still ends with the CRC of its last format A block."""
    # Some loggers strip the block CRCs but keep the last one and count it in L.
    end = len(data) - CRC_BYTES
    if end <= DLL_HEADER_BYTES + 1:
        return False
    start = DLL_HEADER_BYTES + FORMAT_A_BLOCK_BYTES * ((end - DLL_HEADER_BYTES - 1) // 16)
    return _crc_at(data, start, end)


def _format_a_total(length: int) -> int:
    if length < DLL_HEADER_BYTES - 1:
        return length + 1 + CRC_BYTES
    rest = length - (DLL_HEADER_BYTES - 1)
    blocks = 1 + (rest + FORMAT_A_BLOCK_BYTES - 1) // FORMAT_A_BLOCK_BYTES
    return length + 1 + CRC_BYTES * blocks


def _crc_at(data: bytes, start: int, end: int) -> bool:
    if end + CRC_BYTES > len(data):
        return False
    return crc16_en13757(data[start:end]) == int.from_bytes(data[end : end + CRC_BYTES], "big")


def _strip_a(data: bytes) -> bytes:
    if not _crc_at(data, 0, DLL_HEADER_BYTES):
        raise ChecksumError("DLL CRC of block 1 (format A) does not match", offset=10)
    out = bytearray(data[:DLL_HEADER_BYTES])
    pos = DLL_HEADER_BYTES + CRC_BYTES
    while pos < len(data):
        end = min(pos + FORMAT_A_BLOCK_BYTES, len(data) - CRC_BYTES)
        if end <= pos or not _crc_at(data, pos, end):
            raise ChecksumError(
                f"DLL CRC of the block at byte {pos} (format A) does not match", offset=pos
            )
        out += data[pos:end]
        pos = end + CRC_BYTES
    return bytes(out)


def _format_b_ok(data: bytes) -> bool:
    total = len(data)
    if total <= FORMAT_B_FIRST_CRC_SPAN + CRC_BYTES:
        return _crc_at(data, 0, total - CRC_BYTES)
    return _crc_at(data, 0, FORMAT_B_FIRST_CRC_SPAN) and _crc_at(
        data, FORMAT_B_FIRST_CRC_SPAN + CRC_BYTES, total - CRC_BYTES
    )


def _strip_b(data: bytes) -> bytes:
    total = len(data)
    if total <= FORMAT_B_FIRST_CRC_SPAN + CRC_BYTES:
        body = data[: total - CRC_BYTES]
    else:
        second = FORMAT_B_FIRST_CRC_SPAN + CRC_BYTES
        body = data[:FORMAT_B_FIRST_CRC_SPAN] + data[second : total - CRC_BYTES]
    # From here on L counts the bytes after itself without CRCs, as in a stripped telegram.
    return bytes([len(body) - 1]) + body[1:]


def parse_link(data: bytes) -> LinkHeader:
    """The DLL header of a telegram without CRCs."""
    if len(data) < DLL_HEADER_BYTES + 1:
        raise IncompleteFrame(
            f"a telegram has at least {DLL_HEADER_BYTES + 1} bytes (L C M A CI), got {len(data)}",
            offset=len(data),
        )
    return LinkHeader(data[0], data[1], data[2:4], data[4:10])


def _need(data: bytes, pos: int, count: int, what: str) -> None:
    if pos + count > len(data):
        raise IncompleteFrame(f"{what} needs {count} bytes at byte {pos}", offset=len(data))


def parse_ell(data: bytes, pos: int) -> tuple[Ell, int]:
    """The ELL header whose CI is at ``pos``; returns it and the index after it."""
    ci = data[pos]
    size = ELL_CI[ci]
    _need(data, pos + 1, size, f"ELL 0x{ci:02X}")
    body = data[pos + 1 : pos + 1 + size]
    cc, acc = body[0], body[1]
    manufacturer = address = session = None
    crc_at = None
    rest = body[2:]
    if ci in (0x8E, 0x8F):
        manufacturer, address, rest = rest[:2], rest[2:8], rest[8:]
    if ci in (0x8D, 0x8F):
        session = rest[:4]
        crc_at = pos + 1 + size - CRC_BYTES
    return Ell(ci, cc, acc, manufacturer, address, session, crc_at), pos + 1 + size


def parse_afl(data: bytes, pos: int) -> tuple[Afl, int]:
    """The AFL whose CI is at ``pos``; returns it and the index after it."""
    _need(data, pos + 1, 1, "AFL length")
    length = data[pos + 1]
    start = pos + 2
    _need(data, start, length, "AFL")
    body = data[start : start + length]
    if length < 2:
        raise FrameError(f"AFL of {length} bytes has no fragmentation control", offset=start)
    fcl = int.from_bytes(body[:2], "little")
    if fcl & 0x4000:
        raise UnknownFormat(
            "fragmented telegram (AFL more-fragments bit set)", offset=start, code="fragmented"
        )
    cursor = 2
    mcl = key_info = counter_bytes = mac = message_length = None

    def take(count: int, what: str) -> bytes:
        nonlocal cursor
        if cursor + count > length:
            raise FrameError(f"AFL too short for its {what}", offset=start + cursor)
        chunk = body[cursor : cursor + count]
        cursor += count
        return chunk

    if fcl & 0x2000:
        mcl = take(1, "message control")[0]
    if fcl & 0x0200:
        key_info = take(2, "key information")
    if fcl & 0x0800:
        counter_bytes = take(4, "message counter")
    if fcl & 0x0400:
        mac_bytes = _AFL_MAC_BYTES.get((mcl or 0) & 0x0F)
        if mac_bytes is None:
            raise UnknownFormat(
                f"AFL authentication type {(mcl or 0) & 0x0F} is not supported",
                offset=start,
                code="unsupported_security",
            )
        mac = take(mac_bytes, "MAC")
    if fcl & 0x1000:
        message_length = take(2, "message length")
    counter = None if counter_bytes is None else int.from_bytes(counter_bytes, "little")
    afl = Afl(fcl, mcl, key_info, counter, counter_bytes, mac, message_length)
    return afl, start + length


def parse_tpl(data: bytes, pos: int) -> Tpl:
    """The TPL header whose CI is at ``pos`` (the CI must be a full, compact or format CI)."""
    ci = data[pos]
    kind = TPL_FULL.get(ci) or TPL_COMPACT.get(ci) or TPL_FORMAT.get(ci) or "none"
    if kind == "none":
        return Tpl(ci, kind)
    cursor = pos + 1
    manufacturer = address = None
    if kind == "long":
        _need(data, cursor, 8, "long TPL header")
        identity = data[cursor : cursor + 8]
        address = identity[:4] + identity[6:8]
        manufacturer = identity[4:6]
        cursor += 8
    _need(data, cursor, 4, "TPL ACC/STS/CFG")
    acc, sts = data[cursor], data[cursor + 1]
    cfg = int.from_bytes(data[cursor + 2 : cursor + 4], "little")
    cursor += 4
    cfg_ext = None
    if (cfg >> 8) & 0x1F == 7:
        _need(data, cursor, 1, "mode 7 configuration extension")
        cfg_ext = data[cursor]
        cursor += 1
    return Tpl(ci, kind, acc, sts, cfg, cfg_ext, manufacturer, address, cursor - pos)
