"""Wireless M-Bus telegrams (EN 13757-4/-7, OMS): decode to ``Decoded``, sans-IO.

The pipeline: DLL CRCs (format A, B or already stripped) -> L C M A -> ELL (AES-CTR) ->
AFL (MAC) -> TPL (security modes 5 and 7) -> APL, a full frame decoded by the wired M-Bus
record code in ``mbus.records``, or a compact frame decoded through ``FormatCache``.
Telegrams logged already decrypted (the header still says encrypted) decode without a key;
with a key they are refused, as a configured key promises ciphertext.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from modules.codecs import crypto
from modules.codecs.errors import (
    ChecksumError,
    DecryptionError,
    FrameError,
    IncompleteFrame,
    UnknownFormat,
)
from modules.codecs.mbus import records as mbus_records
from modules.codecs.mbus.vif import medium_name
from modules.codecs.records import Decoded, Record
from modules.codecs.wmbus import drivers
from modules.codecs.wmbus.compact import FormatCache, format_signature
from modules.codecs.wmbus.layers import (
    AFL_CI,
    ELL_CI,
    ELL_SECURITY_AES_CTR,
    MANUFACTURER_CI,
    STALE_CRC_DROPPED,
    TPL_COMPACT,
    TPL_FORMAT,
    TPL_FULL,
    Afl,
    Ell,
    LinkHeader,
    Tpl,
    parse_afl,
    parse_ell,
    parse_link,
    parse_tpl,
    strip_crcs,
)

__all__ = ["WmbusDecoder", "decode_telegram"]

_HEX = tuple(f"{byte:02X}" for byte in range(256))
PLAINTEXT_MARKER = b"\x2f\x2f"  # EN 13757-7 9.2: decrypted mode 5/7 data starts with two fills


class WmbusDecoder:
    """``meter-gateway decode wmbus``: keeps compact formats learned across a --batch run."""

    input_kind: ClassVar[Literal["hex", "text"]] = "hex"

    def __init__(self, cache: FormatCache | None = None) -> None:
        self.cache = cache if cache is not None else FormatCache()

    def decode(self, data: bytes, *, key: bytes | None, auth_key: bytes | None) -> Decoded:
        """Decode one telegram (``auth_key`` is unused: wM-Bus derives its MAC key)."""
        return decode_telegram(data, key=key, cache=self.cache)


class _Telegram:
    """The bytes being peeled layer by layer, and the facts found on the way."""

    def __init__(self, body: bytes, link: LinkHeader, key: bytes | None) -> None:
        self.body = body
        self.link = link
        self.key = key
        self.frame: dict[str, Any] = {}
        self.chain: list[str] = []
        self.security = "none"
        self.plaintext: str | None = None  # "decrypted" or "logged" (arrived decrypted)
        self.sealed_end: int | None = None  # where the TPL's encrypted blocks end
        self.tpl: Tpl | None = None

    def who(self) -> str:
        """The meter as people name it: the long TPL header's address, else the DLL's."""
        tpl = self.tpl
        if tpl is not None and tpl.manufacturer is not None and tpl.address is not None:
            meter = LinkHeader(0, 0, tpl.manufacturer, tpl.address)
            return f"{meter.manufacturer_code} {meter.id}"
        return f"{self.link.manufacturer_code} {self.link.id}"

    def open_payload(self, start: int, opened: bytes, how: str) -> None:
        self.body = self.body[:start] + opened
        if self.plaintext != "logged":
            self.plaintext = how


def decode_telegram(
    data: bytes,
    *,
    key: bytes | None = None,
    cache: FormatCache | None = None,
    dll_crcs: Literal["auto", "A", "B", "none"] = "auto",
) -> Decoded:
    """One telegram to meter facts, frame facts and records; raises FrameError subclasses.

    ``dll_crcs`` says what the receiver delivers (CUL: "A" or "B", most dongles: "none");
    ``auto`` detects it. ``cache`` holds compact formats; without one compact frames fail.
    """
    if key is not None:
        crypto.check_key(key)
    body, frame_format, note = strip_crcs(data, dll_crcs)
    try:
        return _decode(body, frame_format, note, key, cache)
    except FrameError:
        if note != STALE_CRC_DROPPED:
            raise
    # The last two bytes looked like a leftover DLL CRC but the telegram does not decode
    # without them: they were data after all (a 1 in 65536 coincidence).
    return _decode(data, None, None, key, cache)


def _decode(
    body: bytes,
    frame_format: str | None,
    note: str | None,
    key: bytes | None,
    cache: FormatCache | None,
) -> Decoded:
    link = parse_link(body)
    tg = _Telegram(body, link, key)
    tg.frame.update(
        {
            "l": link.length,
            "c": link.c,
            "frame_format": frame_format,
            "crc_ok": True if frame_format else None,
        }
    )
    if note:
        tg.frame["note"] = note
    pos = 10
    ell = afl = tpl = None
    if tg.body[pos] in ELL_CI:
        ell, pos = parse_ell(tg.body, pos)
        tg.chain.append(_HEX[ell.ci])
        _open_ell(tg, ell)
    if pos < len(tg.body) and tg.body[pos] == AFL_CI:
        tg.chain.append(_HEX[AFL_CI])
        afl, pos = parse_afl(tg.body, pos)
        tg.frame["afl"] = _afl_facts(afl)
    records: list[Record] = []
    meter: dict[str, Any] | None = None
    payload: tuple[bytes, int] | None = None
    if pos >= len(tg.body):
        if ell is None and afl is None:
            raise IncompleteFrame("telegram ends before its CI field", offset=pos)
    else:
        ci = tg.body[pos]
        tg.chain.append(_HEX[ci])
        if ci in MANUFACTURER_CI:
            tg.frame["manufacturer_payload"] = tg.body[pos + 1 :].hex().upper()
            payload = (tg.body[pos + 1 :], pos + 1)
        elif ci in TPL_FULL or ci in TPL_COMPACT or ci in TPL_FORMAT:
            tpl = tg.tpl = parse_tpl(tg.body, pos)
            apl_at = _open_tpl(tg, tpl, afl, pos)
            if tg.key is not None and tg.security == "none":
                raise DecryptionError(
                    f"telegram from {tg.who()} is not encrypted, and a key is configured: "
                    "refusing it (remove the key if this meter sends in the clear)",
                    offset=pos,
                    code="not_encrypted",
                )
            meter = _meter_facts(link, tpl)
            records = _application(tg, tpl, apl_at, cache, meter)
        else:
            raise UnknownFormat(f"CI 0x{ci:02X} is not a supported wM-Bus layer", offset=pos)
    tg.frame["ci_chain"] = tg.chain
    tg.frame["security"] = tg.security
    tg.frame["plaintext"] = tg.plaintext
    access = tpl.acc if tpl is not None and tpl.acc is not None else (ell.acc if ell else None)
    tg.frame["access_number"] = access
    if meter is None:
        meter = _meter_facts(link, tpl)
    if meter["manufacturer"] in drivers.MANUFACTURERS:
        records = drivers.apply(
            drivers.DRIVERS, meter, tg.frame, records, payload, telegram=tg.body, key=tg.key
        )
    return Decoded(protocol="wmbus", meter=meter, frame=tg.frame, records=records)


def _meter_facts(link: LinkHeader, tpl: Tpl | None) -> dict[str, Any]:
    """The meter's facts; a meter sends the same header every time, so they are kept."""
    own = None
    if tpl is not None and tpl.address is not None and tpl.manufacturer is not None:
        own = tpl.manufacturer + tpl.address
    key = (link.manufacturer + link.address, own)
    known = _METERS.get(key)
    if known is None:
        known = _work_out_meter_facts(link, tpl)
        if len(_METERS) >= MAX_KNOWN_METERS:
            _METERS.clear()
        _METERS[key] = known
    return dict(known)


# A building's worth of meters; past that the memo starts over (random input must not grow it).
MAX_KNOWN_METERS = 4096
_METERS: dict[tuple[bytes, bytes | None], dict[str, Any]] = {}


def _work_out_meter_facts(link: LinkHeader, tpl: Tpl | None) -> dict[str, Any]:
    meter: dict[str, Any] = {
        "manufacturer": link.manufacturer_code,
        "id": link.id,
        "version": link.version,
        "device_type": link.device_type,
        "medium": medium_name(link.device_type),
    }
    if tpl is not None and tpl.address is not None and tpl.manufacturer is not None:
        # The long TPL header names the meter; the DLL address is then its radio module's.
        own = LinkHeader(link.length, link.c, tpl.manufacturer, tpl.address)
        meter.update(
            {
                "manufacturer": own.manufacturer_code,
                "id": own.id,
                "version": own.version,
                "device_type": own.device_type,
                "medium": medium_name(own.device_type),
                "link_manufacturer": link.manufacturer_code,
                "link_id": link.id,
                "link_version": link.version,
                "link_device_type": link.device_type,
            }
        )
    return meter


# ---------------------------------------------------------------------------- ELL


def _open_ell(tg: _Telegram, ell: Ell) -> None:
    facts: dict[str, Any] = {"ci": f"{ell.ci:02X}", "cc": f"{ell.cc:02X}", "acc": ell.acc}
    if ell.manufacturer is not None and ell.address is not None:
        other = LinkHeader(0, 0, ell.manufacturer, ell.address)
        facts["address"] = {"manufacturer": other.manufacturer_code, "id": other.id}
    tg.frame["ell"] = facts
    if ell.session is None or ell.payload_crc_at is None:
        return
    security = ell.security
    facts["session"] = ell.session.hex().upper()
    facts["security"] = security
    crc_at = ell.payload_crc_at
    if crc_at + 2 > len(tg.body):
        raise IncompleteFrame("ELL payload CRC is missing", offset=len(tg.body))
    if security == 0:
        if not _ell_crc_ok(tg.body[crc_at:]):
            raise ChecksumError("ELL payload CRC does not match", offset=crc_at)
        facts["payload_crc_ok"] = True
        return
    if security != ELL_SECURITY_AES_CTR:
        raise UnknownFormat(
            f"ELL security mode {security} is not supported",
            offset=crc_at - 4,
            code="unsupported_security",
        )
    tg.security = "ell_aes_ctr"
    sealed = tg.body[crc_at:]
    if tg.key is None:
        if _ell_crc_ok(sealed):
            tg.plaintext = "logged"
            facts["payload_crc_ok"] = True
            return
        raise DecryptionError(
            f"telegram from {tg.who()} is encrypted (ELL AES-128-CTR): give the meter's AES key "
            "(32 hex digits)",
            offset=crc_at,
            code="no_key",
        )
    iv = crypto.ell_iv(tg.link.manufacturer, tg.link.address, ell.cc, ell.session)
    opened = crypto.aes_ctr(tg.key, iv, sealed)
    if _ell_crc_ok(opened):
        tg.open_payload(crc_at, opened, "decrypted")
        facts["payload_crc_ok"] = True
        return
    if _ell_crc_ok(sealed):
        raise DecryptionError(
            f"telegram from {tg.who()} says ELL AES-CTR but arrived decrypted, and a key is "
            "configured: refusing an unencrypted payload",
            offset=crc_at,
            code="not_encrypted",
        )
    raise DecryptionError(
        f"wrong key for {tg.who()}: the payload CRC does not match after AES-CTR decryption "
        "(check the meter's AES key)",
        offset=crc_at,
        code="wrong_key",
    )


def _ell_crc_ok(payload: bytes) -> bool:
    return len(payload) >= 2 and crypto.crc16_en13757(payload[2:]) == int.from_bytes(
        payload[:2], "little"
    )


# ---------------------------------------------------------------------------- AFL / TPL


def _afl_facts(afl: Afl) -> dict[str, Any]:
    facts: dict[str, Any] = {"fcl": f"{afl.fcl:04X}"}
    if afl.mcl is not None:
        facts["mcl"] = f"{afl.mcl:02X}"
        facts["auth_type"] = afl.auth_type
    if afl.key_info is not None:
        facts["key_info"] = afl.key_info[::-1].hex().upper()
    if afl.counter is not None:
        facts["counter"] = afl.counter
    if afl.mac is not None:
        facts["mac"] = afl.mac.hex().upper()
    return facts


def _tpl_facts(tpl: Tpl) -> dict[str, Any]:
    facts: dict[str, Any] = {"ci": f"{tpl.ci:02X}", "header": tpl.kind}
    if tpl.kind != "none":
        facts.update(
            {
                "acc": tpl.acc,
                "status": tpl.sts,
                "cfg": f"{tpl.cfg or 0:04X}",
                "security_mode": tpl.security_mode,
            }
        )
        if tpl.security_mode in (5, 7):
            facts["encrypted_blocks"] = tpl.encrypted_blocks
        if tpl.cfg_ext is not None:
            facts["cfg_ext"] = f"{tpl.cfg_ext:02X}"
    return facts


def _open_tpl(tg: _Telegram, tpl: Tpl, afl: Afl | None, pos: int) -> int:
    """Decrypt the TPL's encrypted blocks in place; returns where the APL starts."""
    tg.frame["tpl"] = _tpl_facts(tpl)
    start = pos + tpl.header_bytes
    mode = tpl.security_mode
    if mode == 0:
        return start
    if mode not in (5, 7):
        raise UnknownFormat(
            f"TPL security mode {mode} is not supported (modes 5 and 7 are)",
            offset=pos,
            code="unsupported_security",
        )
    tg.security = f"tpl_mode{mode}"
    length = tpl.encrypted_blocks * crypto.AES_BLOCK_BYTES
    if start + length > len(tg.body):
        raise IncompleteFrame(
            f"TPL says {tpl.encrypted_blocks} encrypted blocks, the telegram ends first",
            offset=len(tg.body),
        )
    if length == 0:
        return start
    tg.sealed_end = start + length
    sealed = tg.body[start : start + length]
    manufacturer = tpl.manufacturer or tg.link.manufacturer
    address = tpl.address or tg.link.address
    if tg.key is None:
        if sealed.startswith(PLAINTEXT_MARKER):
            tg.plaintext = "logged"
            return start + len(PLAINTEXT_MARKER)
        raise DecryptionError(
            f"telegram from {tg.who()} is encrypted (TPL security mode {mode}): give the "
            "meter's AES key (32 hex digits)",
            offset=start,
            code="no_key",
        )
    mac_ok: bool | None = None
    if mode == 5:
        iv = crypto.mode5_iv(manufacturer, address, tpl.acc or 0)
        opened = crypto.aes_cbc_decrypt(tg.key, iv, sealed)
    else:
        if afl is None or afl.counter is None:
            raise FrameError(
                "TPL security mode 7 needs an AFL with a message counter",
                offset=pos,
                code="bad_frame",
            )
        kdf = ((tpl.cfg_ext or 0) >> 4) & 0x03
        if kdf not in (0, 1):
            raise UnknownFormat(
                f"mode 7 key derivation {kdf} is not supported",
                offset=pos,
                code="unsupported_security",
            )
        meter_id = address[:4]
        enc_key = (
            tg.key
            if kdf == 0
            else crypto.mode7_key(tg.key, crypto.MODE7_DC_ENC, afl.counter, meter_id)
        )
        if afl.mac is not None:
            mac_key = (
                tg.key
                if kdf == 0
                else crypto.mode7_key(tg.key, crypto.MODE7_DC_MAC, afl.counter, meter_id)
            )
            mac = crypto.aes_cmac(mac_key, afl.mac_input_prefix() + tg.body[pos:])
            mac_ok = mac[: len(afl.mac)] == afl.mac
            tg.frame["afl"]["mac_ok"] = mac_ok
        opened = crypto.aes_cbc_decrypt(enc_key, bytes(crypto.AES_BLOCK_BYTES), sealed)
    if opened.startswith(PLAINTEXT_MARKER) and mac_ok is not False:
        tg.open_payload(start, opened + tg.body[start + length :], "decrypted")
        return start + len(PLAINTEXT_MARKER)
    if sealed.startswith(PLAINTEXT_MARKER):
        raise DecryptionError(
            f"telegram from {tg.who()} says TPL mode {mode} but arrived decrypted, and a key "
            "is configured: refusing an unencrypted payload",
            offset=start,
            code="not_encrypted",
        )
    if opened.startswith(PLAINTEXT_MARKER):
        raise DecryptionError(
            f"the AFL MAC of {tg.who()} does not match although the payload decrypts: "
            "the telegram was altered",
            offset=pos,
            code="bad_mac",
        )
    check = "the AFL MAC and the 2F2F check fail" if mac_ok is False else "no 2F2F after decrypting"
    raise DecryptionError(
        f"wrong key for {tg.who()}: {check} (TPL mode {mode}; check the meter's AES key)",
        offset=start,
        code="wrong_key",
    )


# ---------------------------------------------------------------------------- APL


def _application(
    tg: _Telegram, tpl: Tpl, start: int, cache: FormatCache | None, meter: dict[str, Any]
) -> list[Record]:
    apl = tg.body[start:]
    medium, maker = meter["device_type"], meter["manufacturer"]
    if tpl.ci in TPL_FULL:
        layout: list[bytes] = []  # the records' headers, read while decoding them
        try:
            records = mbus_records.decode_records(
                apl, offset=start, medium=medium, manufacturer=maker, layout=layout
            )
        except FrameError:
            # Bytes after the encrypted blocks are outside what the key vouches for; logged
            # telegrams sometimes end with a stale DLL CRC there. Keep what decrypted.
            end = tg.sealed_end
            if end is not None and end < len(tg.body):
                apl = tg.body[start:end]
                tg.frame["unparsed_tail"] = tg.body[end:].hex().upper()
            # One odd record (a reserved DIF, a record past the end) keeps those before it,
            # and the header facts always come out: the link layer was checked already.
            layout.clear()
            records = mbus_records.decode_records(
                apl, offset=start, medium=medium, manufacturer=maker, salvage=True, layout=layout
            )
            if warnings := mbus_records.undecoded_warnings(records):
                tg.frame["warnings"] = warnings
        # A format is learnt only from records that all decoded: a compact frame that
        # refers to it later must not inherit an undecoded tail.
        learnt = cache is not None and not any(r.name == "undecoded" for r in records)
        fmt = b"".join(layout)
        if learnt and fmt and cache is not None:
            signature = cache.learn(fmt)
            tg.frame["format_signature"] = f"{signature:04X}"
        return records
    if tpl.ci in TPL_FORMAT:
        return _format_frame(tg, apl, start, cache)
    return _compact(tg, apl, start, cache, medium=medium, maker=maker)


def _format_frame(tg: _Telegram, apl: bytes, start: int, cache: FormatCache | None) -> list[Record]:
    # EN 13757-3 G.5: length, signature (LSB first), then the DIF/VIF headers.
    if len(apl) < 3:
        raise IncompleteFrame("format frame is shorter than its header", offset=start + len(apl))
    length = apl[0]
    fmt = apl[3 : 1 + length]
    if length < 2 or len(fmt) != length - 2:
        raise IncompleteFrame("format frame is shorter than its length byte", offset=start)
    signature = int.from_bytes(apl[1:3], "little")
    if format_signature(fmt) != signature:
        raise ChecksumError(
            f"format frame signature {signature:04X} does not match its headers",
            offset=start + 1,
        )
    if cache is not None:
        cache.learn(fmt)
    tg.frame["compact"] = {"signature": f"{signature:04X}", "format": fmt.hex().upper()}
    return []


def _compact(
    tg: _Telegram,
    apl: bytes,
    start: int,
    cache: FormatCache | None,
    *,
    medium: int,
    maker: str,
) -> list[Record]:
    if len(apl) < 4:
        raise IncompleteFrame("compact frame is shorter than its header", offset=start + len(apl))
    signature = int.from_bytes(apl[:2], "little")
    full_crc = int.from_bytes(apl[2:4], "little")
    data = apl[4:]
    facts: dict[str, Any] = {"signature": f"{signature:04X}", "full_frame_crc": f"{full_crc:04X}"}
    tg.frame["compact"] = facts
    candidates = cache.lookup(signature) if cache is not None else []
    if not candidates:
        raise UnknownFormat(
            f"compact frame from {tg.who()} has format signature {signature:04X}, not seen "
            "before: a full frame from this meter type will teach it",
            offset=start,
            code="unknown_compact_format",
        )
    # CBC pads the last block with 0x2F fill bytes that no format describes.
    padding = len(data) - len(data.rstrip(b"\x2f")) if tg.security.startswith("tpl") else 0
    first_error: FrameError | None = None
    fallback: tuple[bytes, list[Record]] | None = None
    for fmt in candidates:
        for trim in range(padding + 1):
            values = data[: len(data) - trim]
            try:
                records = mbus_records.decode_compact(
                    fmt, values, offset=start + 4, medium=medium, manufacturer=maker
                )
            except FrameError as err:
                first_error = first_error or err
                continue
            if crypto.crc16_en13757(_full_frame(fmt, records)) == full_crc:
                facts.update({"format": fmt.hex().upper(), "full_frame_crc_ok": True})
                return records
            fallback = fallback or (fmt, records)
            break
    if fallback is None:
        assert first_error is not None
        raise first_error
    facts.update({"format": fallback[0].hex().upper(), "full_frame_crc_ok": False})
    return fallback[1]


def _full_frame(fmt: bytes, records: list[Record]) -> bytes:
    """The full-frame record bytes a compact frame stands for (its second CRC covers them)."""
    headers = [h for h in mbus_records.iter_headers(fmt, data=False) if not h.manufacturer_data]
    parts = []
    for header, record in zip(headers, records, strict=False):
        lvar = str(record.raw.get("lvar", ""))
        parts.append(fmt[header.start : header.end] + bytes.fromhex(lvar + record.raw["data"]))
    return b"".join(parts)
