"""A wireless M-Bus transmitter: telegrams built from records, encrypted like a real meter.

The inverse of ``wmbus``: used by round-trip tests and by the wM-Bus emulator. It writes
what Kamstrup meters send (ELL 0x8D with AES-128-CTR around a full 0x78 or compact 0x79
frame) and OMS meters send (TPL short header with security mode 5), with or without DLL CRCs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from modules.codecs import crypto
from modules.codecs.mbus.encode import DataRecord, encode_dib, encode_record, manufacturer_code
from modules.codecs.wmbus.compact import format_signature
from modules.codecs.wmbus.layers import (
    DLL_HEADER_BYTES,
    ELL_SECURITY_AES_CTR,
    FORMAT_A_BLOCK_BYTES,
    FORMAT_B_FIRST_CRC_SPAN,
)

__all__ = ["build_telegram", "encode_apl", "omnipower_records"]

SND_NR = 0x44
KAMSTRUP_CC = 0x20  # ELL communication control as Kamstrup meters send it (S bit)
MAX_STRIPPED_LENGTH = 255


def _split(record: DataRecord) -> tuple[bytes, bytes]:
    """(DIF/VIF header, data) of one encoded record."""
    wire = encode_record(record)
    dib = encode_dib(
        wire[0] & 0x0F,
        storage=record.storage,
        tariff=record.tariff,
        subunit=record.subunit,
        function=record.function,
    )
    cut = len(dib) + len(record.vib)
    return wire[:cut], wire[cut:]


def encode_apl(records: Sequence[DataRecord], *, compact: bool = False) -> bytes:
    """The APL with its TPL CI: 0x78 + full records, or 0x79 + signature, CRC and values."""
    parts = [_split(record) for record in records]
    full = b"".join(header + data for header, data in parts)
    if not compact:
        return b"\x78" + full
    fmt = b"".join(header for header, _ in parts)
    values = b"".join(data for _, data in parts)
    signature = format_signature(fmt)
    full_crc = crypto.crc16_en13757(full)
    return b"\x79" + signature.to_bytes(2, "little") + full_crc.to_bytes(2, "little") + values


def omnipower_records(
    import_wh: int, export_wh: int, import_w: int, export_w: int
) -> list[DataRecord]:
    """The four values a Kamstrup Omnipower sends: A+, A- (10 Wh), P+, P- (W)."""
    return [
        DataRecord(b"\x04", import_wh // 10),
        DataRecord(b"\x84\x3c", export_wh // 10),
        DataRecord(b"\x2b", import_w),
        DataRecord(b"\xab\x3c", export_w),
    ]


def build_telegram(
    records: Sequence[DataRecord],
    *,
    manufacturer: str = "KAM",
    meter_id: str = "12345678",
    version: int = 0x30,
    device_type: int = 0x02,
    security: Literal["none", "ell_aes_ctr", "tpl_mode5"] = "ell_aes_ctr",
    key: bytes | None = None,
    compact: bool = False,
    access_number: int = 0,
    session: int = 0,
    status: int = 0,
    frame_format: Literal["A", "B"] | None = None,
) -> bytes:
    """A complete telegram (DLL CRCs only when ``frame_format`` is given)."""
    if len(meter_id) != 8:
        raise ValueError("meter_id is 8 hex/BCD digits")
    address = bytes.fromhex(meter_id)[::-1] + bytes([version, device_type])
    mfct = manufacturer_code(manufacturer).to_bytes(2, "little")
    apl = encode_apl(records, compact=compact)
    if security == "ell_aes_ctr":
        if key is None:
            raise ValueError("ELL AES-CTR needs a key")
        sn = ((ELL_SECURITY_AES_CTR << 29) | (session & 0x1FFFFFFF)).to_bytes(4, "little")
        payload = crypto.crc16_en13757(apl).to_bytes(2, "little") + apl
        iv = crypto.ell_iv(mfct, address, KAMSTRUP_CC, sn)
        body = bytes([0x8D, KAMSTRUP_CC, access_number]) + sn + crypto.aes_ctr(key, iv, payload)
    elif security == "tpl_mode5":
        if key is None:
            raise ValueError("TPL mode 5 needs a key")
        ci = 0x7B if compact else 0x7A
        plain = b"\x2f\x2f" + apl[1:]
        plain += b"\x2f" * (-len(plain) % crypto.AES_BLOCK_BYTES)
        blocks = len(plain) // crypto.AES_BLOCK_BYTES
        if blocks > 0x0F:
            raise ValueError("TPL mode 5 encrypts at most 15 blocks")
        cfg = (5 << 8) | (blocks << 4)
        iv = crypto.mode5_iv(mfct, address, access_number)
        header = bytes([ci, access_number, status]) + cfg.to_bytes(2, "little")
        body = header + crypto.aes_cbc_encrypt(key, iv, plain)
    else:
        body = apl
    stripped = bytes([SND_NR]) + mfct + address + body
    if len(stripped) > MAX_STRIPPED_LENGTH:
        raise ValueError("telegram is longer than an L field can say")
    telegram = bytes([len(stripped)]) + stripped
    if frame_format == "A":
        return _add_crcs_a(telegram)
    if frame_format == "B":
        return _add_crcs_b(telegram)
    return telegram


def _with_crc(block: bytes) -> bytes:
    return block + crypto.crc16_en13757(block).to_bytes(2, "big")


def _add_crcs_a(telegram: bytes) -> bytes:
    out = _with_crc(telegram[:DLL_HEADER_BYTES])
    for start in range(DLL_HEADER_BYTES, len(telegram), FORMAT_A_BLOCK_BYTES):
        out += _with_crc(telegram[start : start + FORMAT_A_BLOCK_BYTES])
    return out


def _add_crcs_b(telegram: bytes) -> bytes:
    crcs = 2 if len(telegram) <= FORMAT_B_FIRST_CRC_SPAN else 4
    if len(telegram) + crcs > MAX_STRIPPED_LENGTH + 1:
        raise ValueError("telegram is too long for format B")
    # In format B the L field counts the CRCs too.
    body = bytes([len(telegram) - 1 + crcs]) + telegram[1:]
    if crcs == 2:
        return _with_crc(body)
    return _with_crc(body[:FORMAT_B_FIRST_CRC_SPAN]) + _with_crc(body[FORMAT_B_FIRST_CRC_SPAN:])
