"""DSMR P1 telegrams (sans-IO): DSMR 2.2 to 5, Fluvius e-MUCS, Luxembourg smarty, Kamstrup /KAM5.

A telegram is ``/XXXZ<ident>`` then ``OBIS(value[*unit])(...)`` lines, then ``!`` and, from
DSMR 4 on, a CRC-16/ARC over ``/`` .. ``!`` in hex (sometimes unpadded or lowercase). Values
continue on the next line when it starts with ``(`` (DSMR 2.2/3 gas, long texts). Encrypted
P1 (Luxembourg smarty, some Austrian meters) is a DLMS general-glo-ciphering frame around the
plaintext telegram.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar, Literal, NamedTuple

from modules.codecs.crc import CRC16_ARC
from modules.codecs.dlms.obis import record_name, split_obis
from modules.codecs.dlms.security import (
    SC_AUTHENTICATED,
    SC_ENCRYPTED,
    cipher,
    decipher,
    encode_general_ciphering,
    parse_general_ciphering,
)
from modules.codecs.errors import ChecksumError, FrameError, IncompleteFrame
from modules.codecs.records import Decoded, Record, RecordValue

__all__ = [
    "SMARTY_AUTH_KEY",
    "DsmrDecoder",
    "crc16_arc",
    "encode_telegram",
    "encrypt_telegram",
    "parse_timestamp",
    "split_telegrams",
]

# The AAD key every smarty meter uses (Luxembourg P1 companion spec; dsmr_parser default).
SMARTY_AUTH_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
_MAX_TELEGRAM_BYTES = 64 * 1024  # far above the ~2 kB of a DSMR 5 telegram with four M-Bus devices

# Every line of a body in one pass (MULTILINE; a blank is any whitespace but the line end).
# An object's line: blanks, OBIS (its "*F" left out), then one "number*unit" group with its
# text, number and unit captured (as _VALUE_UNIT reads them) or all its value groups, then
# blanks around any trailing "!". Any other line is captured whole, in the last group.
_BLANK = r"[^\S\n]*"
_BODY_LINE = re.compile(
    rf"^{_BLANK}(?:(\d+-\d+:\d+\.\d+\.\d+)(?:\*\d+)?"
    rf"(?:\(({_BLANK}([-+]?\d+(?:\.\d+)?){_BLANK}\*{_BLANK}([^()\s]+){_BLANK})\)"
    rf"|((?:\([^()\n]*\))+)){_BLANK}!*{_BLANK}$|(.*)$)",
    re.MULTILINE,
)
# A line that starts with "(" continues the object before it (DSMR 2.2/3 gas, long texts).
_CONTINUED = re.compile(r"^\s*\(", re.MULTILINE)
_GROUP = re.compile(r"\(([^()]*)\)")
_VALUE_UNIT = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*\*\s*(\S+)\s*$")
_NUMBER = re.compile(r"^\s*[-+]?\d+(?:\.\d+)?\s*$")
_STAMP = re.compile(r"^(\d{12})([SW]?)$")
_OBIS_VALUE = re.compile(r"^\d+-\d+:\d+\.\d+\.\d+$")
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
_CRC_HEX = re.compile(r"[0-9A-Fa-f]{1,4}")

# DSMR unit spellings -> Home Assistant's. kW stays kW: P1 meters give three decimals of kW.
_UNITS = {
    "kwh": "kWh",
    "wh": "Wh",
    "kw": "kW",
    "w": "W",
    "kvarh": "kvarh",
    "varh": "varh",
    "kvar": "kvar",
    "var": "var",
    "kvah": "kVAh",
    "kva": "kVA",
    "va": "VA",
    "v": "V",
    "a": "A",
    "hz": "Hz",
    "s": "s",
    "m3": "m³",
    "m³": "m³",
    "gj": "GJ",
    "mj": "MJ",
}
# The spellings meters use, each mapped as _UNITS maps it folded: one lookup for those.
_SPELLED = {
    spelling: _UNITS[spelling.lower()]
    for unit in (*_UNITS, *_UNITS.values(), "kVArh", "kVAr")
    for spelling in (unit, unit.upper(), unit.capitalize())
    if spelling.lower() in _UNITS
}
# M-Bus device types (EN 13757-3 table 3) the P1 companion standard uses on 0-n:24.1.0.
_MEDIUM = {3: "gas", 4: "heat", 7: "water", 12: "heat", 11: "heat"}
# Which object names the meter, best first: equipment id, serial, logical device name.
_ID_RANK = {(96, 1, 1): 0, (96, 1, 0): 1, (42, 0, 0): 2}
# Objects whose value is an identity or status text, never a number.
_TEXT_CD = {(0, 0), (96, 1), (42, 0), (96, 13), (96, 5), (0, 2), (96, 50)}


# CRC-16/ARC as DSMR 4/5 computes it over ``/`` .. ``!``.
crc16_arc = CRC16_ARC


def parse_timestamp(text: str) -> str | None:
    """ISO 8601 of ``YYMMDDhhmmss[S|W]``: S is summer time (UTC+2), W winter (UTC+1)."""
    match = _STAMP.match(text.strip())
    if match is None:
        return None
    digits, flag = match.groups()
    try:
        moment = datetime(
            2000 + int(digits[0:2]),
            int(digits[2:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            tzinfo=_ZONES.get(flag),
        )
    except ValueError:
        return None
    return moment.isoformat()


_ZONES = {"S": timezone(timedelta(hours=2)), "W": timezone(timedelta(hours=1))}


class _Value(NamedTuple):
    text: str
    number: Decimal | None
    unit: str | None


def _value(text: str) -> _Value:
    if "*" in text:
        match = _VALUE_UNIT.match(text)
        if match:
            unit = match.group(2)
            return _Value(text, Decimal(match.group(1)), _UNITS.get(unit.lower(), unit))
    elif _NUMBER.match(text):
        return _Value(text, Decimal(text.strip()), None)
    return _Value(text, None, None)


def _hex_text(text: str) -> str:
    """Hex-encoded ASCII decoded (DSMR ids and messages), else the text as it is."""
    stripped = text.strip()
    if len(stripped) >= 8 and _HEX.match(stripped):
        raw = bytes.fromhex(stripped)
        if raw.isascii() and (text := raw.decode("ascii")).isprintable():  # 0x20..0x7E
            return text.strip()
    return stripped


class DsmrDecoder:
    """Decodes one P1 telegram (plain or smarty-encrypted) per call."""

    input_kind: ClassVar[Literal["hex", "text"]] = "text"

    def decode(self, data: bytes, *, key: bytes | None, auth_key: bytes | None) -> Decoded:
        """Decode a telegram; raises ChecksumError on a CRC mismatch."""
        decoded = Decoded("dsmr")
        data = _maybe_hex(data)
        start = data.find(b"\xdb\x08")
        if start != -1 and b"/" not in data[:start]:
            data = self._decrypt(data, start, decoded.frame, key, auth_key)
        telegram, crc_text = _frame(data)
        _check_crc(telegram, crc_text, decoded.frame)
        text = telegram.decode("latin-1")
        header, _, body = text.partition("\n")
        _header(header.rstrip("\r"), decoded)
        records = decoded.records
        for item in _objects(body, decoded.frame):
            if isinstance(item, Record):
                records.append(item)
            else:
                _interpret(item[0], item[1], decoded)
        meter_id = _meter_id(decoded.records)
        if meter_id:
            decoded.meter["id"] = meter_id
        return decoded

    def _decrypt(
        self,
        data: bytes,
        start: int,
        frame: dict[str, Any],
        key: bytes | None,
        auth_key: bytes | None,
    ) -> bytes:
        ciphered, _size = parse_general_ciphering(data, start)
        frame.update(ciphered.facts())
        plaintext, verified = decipher(
            ciphered, key=key, auth_key=auth_key if auth_key is not None else SMARTY_AUTH_KEY
        )
        frame["tag_verified"] = verified
        if b"/" not in plaintext or b"!" not in plaintext:
            raise FrameError(
                "deciphered payload is no P1 telegram: wrong key", code="wrong_key", offset=start
            )
        return plaintext


def _maybe_hex(data: bytes) -> bytes:
    """Encrypted P1 given as hex text (from a log or the CLI) becomes its bytes."""
    if data.lstrip()[:1] not in (b"d", b"D"):  # not even the first digit of db08
        return data
    compact = b"".join(data.split())
    # Whole bytes only: an odd digit count is not hex text (fromhex would raise ValueError).
    if compact[:4].lower() == b"db08" and re.fullmatch(rb"(?:[0-9A-Fa-f]{2})+", compact):
        return bytes.fromhex(compact.decode("ascii"))
    return data


def _frame(data: bytes) -> tuple[bytes, str]:
    """(``/`` .. ``!`` inclusive, the CRC hex after ``!``); leading echo or noise is skipped."""
    start = data.find(b"/")
    if start == -1:
        raise FrameError("no '/' starts a P1 telegram", offset=0, code="bad_frame")
    end = data.find(b"!", start)
    if end == -1:
        raise IncompleteFrame("the P1 telegram has no closing '!'", offset=len(data))
    if end - start > _MAX_TELEGRAM_BYTES:
        raise FrameError("P1 telegram is implausibly long", offset=start)
    tail = data[end + 1 : end + 5].decode("latin-1")
    match = _CRC_HEX.match(tail)
    return data[start : end + 1], match.group(0) if match else ""


def _check_crc(telegram: bytes, crc_text: str, frame: dict[str, Any]) -> None:
    if not crc_text:
        frame["crc_ok"] = None  # DSMR 2.2/3 telegrams carry no CRC
        return
    computed = crc16_arc(telegram)
    given = int(crc_text, 16)
    frame["crc"] = crc_text.upper()
    frame["crc_computed"] = f"{computed:04X}"
    if given != computed:
        raise ChecksumError(
            f"telegram CRC is {crc_text.upper()}, its bytes give {computed:04X}",
            offset=len(telegram),
        )
    frame["crc_ok"] = True


def _header(line: str, decoded: Decoded) -> None:
    if len(line) < 5:
        raise FrameError(f"P1 header {line!r} is too short for /XXXZ", offset=0)
    maker = line[1:4]
    decoded.meter["manufacturer"] = maker.upper()
    decoded.frame["header"] = line
    decoded.frame["baud_char"] = line[4]
    decoded.frame["identification"] = line[5:]
    ident = line[5:].lstrip("\\2").strip()
    if ident:
        decoded.meter["model"] = ident


def _objects(body: str, frame: dict[str, Any]) -> list[tuple[str, list[str]] | Record]:
    """(OBIS, value groups) per object, or the record itself of an object that is one number
    with a unit; ``(``-lines continue the object before them. Touches only skipped_lines
    of ``frame`` (the objects' own facts come in order after it)."""
    body = body.replace("\r", "")
    if _CONTINUED.search(body) is None:
        # One object per line (DSMR 4/5): every line read as it is, surrounding blanks and a
        # trailing "!" included, with no copy of it made.
        return _read_lines(body, frame)
    return _joined_objects(body, frame)


def _joined_objects(body: str, frame: dict[str, Any]) -> list[tuple[str, list[str]] | Record]:
    """``_objects`` of the lines stripped, each ``(``-line joined to the object before it."""
    lines: list[str] = []
    for raw in body.split("\n"):
        line = raw.strip()
        if not line or line == "!":
            continue
        if line.startswith("(") and lines:
            lines[-1] += line
        else:
            lines.append(line)
    return _read_lines("\n".join(lines), frame)


def _read_lines(text: str, frame: dict[str, Any]) -> list[tuple[str, list[str]] | Record]:
    """The objects of lines that each hold one, in one pass of _BODY_LINE; other lines go to
    the frame's skipped_lines."""
    objects: list[tuple[str, list[str]] | Record] = []
    for obis, inner, number, spelled, groups, other in _BODY_LINE.findall(text):
        if not obis:
            line = other.strip()
            if line and line != "!":
                frame.setdefault("skipped_lines", []).append(line)
            continue
        if number:
            route = _route(obis)
            if route is not None and route[0] == _NUMBERS:
                # What _interpret does for these, in one regular expression.
                unit = _SPELLED.get(spelled) or _UNITS.get(spelled.lower(), spelled)
                objects.append(Record(route[2], Decimal(number), unit, obis, raw={"text": inner}))
                continue
            objects.append((obis, [inner]))
        elif groups.count("(") == 1:
            objects.append((obis, [groups[1:-1]]))
        else:
            objects.append((obis, _GROUP.findall(groups)))
    return objects


def _meter_id(records: list[Record]) -> str | None:
    """The equipment id, else the serial, else the logical device name (channel 0 only)."""
    ranked = []
    for record in records:
        if not isinstance(record.value, str) or not record.value:
            continue
        groups = split_obis(record.obis or "")
        if groups and groups[:2] == (0, 0):
            rank = _ID_RANK.get(groups[2:5])
            if rank is not None:
                ranked.append((rank, record.value))
    return min(ranked)[1] if ranked else None


def _record(
    name: str,
    obis: str,
    value: RecordValue,
    unit: str | None = None,
    *,
    subunit: int = 0,
    storage: int = 0,
    **raw: Any,
) -> Record:
    return Record(name, value, unit, obis, storage=storage, subunit=subunit, raw=raw)


def _number(value: _Value) -> RecordValue:
    if value.number is None:
        return value.text.strip()
    if value.unit is None and "." not in value.text:
        return int(value.number)
    return value.number


# How an object is read, by its OBIS code (see _route).
_MBUS, _FAILURES, _BILLING, _TIME, _TEXT, _HEXED_TEXT, _NUMBERS = range(7)


@lru_cache(maxsize=1024)
def _route(obis: str) -> tuple[int, int, str, bool] | None:
    """(how to read it, channel B, record name, whether it is the DSMR version) of an object,
    worked out once per OBIS code: a meter sends the same codes in every telegram."""
    parts = split_obis(obis)
    if parts is None:
        return None
    a, b, c, d, e, _f = parts
    name = record_name(obis)
    if a == 0 and b > 0 and c == 24:
        return _MBUS, b, name, False
    if (c, d, e) == (99, 97, 0):
        return _FAILURES, b, name, False
    if (c, d, e) == (98, 1, 0):
        return _BILLING, b, name, False
    if (c, d, e) == (1, 0, 0):
        return _TIME, b, name, False
    if (c, d) in _TEXT_CD:
        hexed = (c, d) in ((96, 1), (42, 0), (96, 13)) and (c, d, e) != (96, 1, 4)
        version = (c, d, e) in ((0, 2, 8), (96, 1, 4))
        return _HEXED_TEXT if hexed else _TEXT, b, name, version
    return _NUMBERS, b, name, False


def _interpret(obis: str, groups: list[str], decoded: Decoded) -> None:
    route = _route(obis)
    if route is None:
        return
    kind, b, name, version = route
    records = decoded.records
    if kind == _MBUS:
        _mbus(obis, b, groups, decoded)
        return
    if kind == _FAILURES:
        _power_failures(obis, groups, records)
        return
    if kind == _BILLING:
        _billing(obis, groups, records)
        return
    if len(groups) == 1:
        text = groups[0]
        if kind == _NUMBERS:
            # _value and _number inline: most objects are one number with a unit.
            unit = None
            match = _VALUE_UNIT.match(text) if "*" in text else None
            if match is not None:
                spelled = match.group(2)
                unit = _UNITS.get(spelled.lower(), spelled)
                value: RecordValue = Decimal(match.group(1))
            elif "*" not in text and _NUMBER.match(text):
                number = Decimal(text.strip())
                value = number if "." in text else int(number)
            else:
                value = text.strip()
            records.append(Record(name, value, unit, obis, raw={"text": text}))
            return
        if kind == _TIME:
            stamp = parse_timestamp(text)
            records.append(Record("meter_time", stamp, None, obis, raw={"raw": text}))
            if stamp:
                decoded.meter["time"] = stamp
            return
        value = _hex_text(text) if kind == _HEXED_TEXT else text.strip()
        if version:
            decoded.frame["dsmr_version"] = value
        records.append(Record(name, value, None, obis, subunit=b, raw={"text": text}))
        return
    # (timestamp)(value*unit): maxima with their time (Fluvius 1.6.0) and similar.
    stamps = [parse_timestamp(g) for g in groups]
    values = [_value(g) for g in groups]
    stamp = next((s for s in stamps if s), None)
    for index, parsed in enumerate(values):
        if parsed.number is not None and stamps[index] is None:
            records.append(
                _record(name, obis, _number(parsed), parsed.unit, timestamp=stamp, index=index)
            )


def _mbus(obis: str, channel: int, groups: list[str], decoded: Decoded) -> None:
    parts = split_obis(obis)
    c, d = (parts[2], parts[3]) if parts else (24, 0)
    records = decoded.records
    devices = decoded.meter.setdefault("mbus", {})
    device: dict[str, Any] = devices.setdefault(str(channel), {})
    if d == 1 and groups:
        first = _value(groups[0])
        kind = first.number
        device["device_type"] = int(kind) if kind is not None else groups[0]
        device["medium"] = _MEDIUM.get(int(kind), "other") if kind is not None else None
        records.append(_record("mbus_device_type", obis, _number(first), subunit=channel))
        return
    if d == 4 and groups:
        records.append(_record("valve_state", obis, _number(_value(groups[0])), subunit=channel))
        return
    stamp = next((s for s in map(parse_timestamp, groups) if s), None)
    reading_obis = next((g for g in groups if _OBIS_VALUE.match(g.strip())), obis)
    unit: str | None = None
    number: _Value | None = None
    for group in groups:
        if "*" in group:  # only a "value*unit" group has a unit of its own
            parsed = _value(group)
            if parsed.unit is not None:
                unit, number = parsed.unit, parsed
                continue
        spelled = group.strip().lower()
        if spelled in _UNITS and not _NUMBER.match(group):
            unit = _UNITS[spelled]  # DSMR 2.2: (m3) then (value) on its own line
    if number is None and c == 24 and d == 3 and groups:
        number = _value(groups[-1])
    if number is None or number.number is None:
        return
    medium = device.get("medium")
    name = f"{medium}_volume" if medium in ("gas", "water") and unit == "m³" else "mbus_value"
    if medium == "heat" or unit in ("GJ", "MJ", "kWh"):
        name = "heat_energy" if medium == "heat" else name
    if stamp:
        device["time"] = stamp
    records.append(
        _record(
            name,
            reading_obis.strip(),
            number.number,
            unit,
            subunit=channel,
            timestamp=stamp,
            object=obis,
        )
    )


def _power_failures(obis: str, groups: list[str], records: list[Record]) -> None:
    """``(count)(0-0:96.7.19)(end)(duration*s)...``: one record per logged failure."""
    body = groups[2:] if len(groups) >= 2 and _OBIS_VALUE.match(groups[1].strip()) else groups[1:]
    for index in range(0, len(body) - 1, 2):
        parsed = _value(body[index + 1])
        if parsed.number is None:
            continue
        records.append(
            _record(
                "power_failure_duration",
                "0-0:96.7.19",
                int(parsed.number),
                parsed.unit or "s",
                storage=index // 2 + 1,
                end=parse_timestamp(body[index]),
                log=obis,
            )
        )


def _billing(obis: str, groups: list[str], records: list[Record]) -> None:
    """0-0:98.1.0 buffers: Fluvius monthly maxima, or a flat list of billing values."""
    if len(groups) >= 2 and _NUMBER.match(groups[0]) and _OBIS_VALUE.match(groups[1].strip()):
        # Fluvius: (count)(obis)(obis) then (period start)(time of maximum)(value) per month.
        codes = [g.strip() for g in groups[1:] if _OBIS_VALUE.match(g.strip())]
        entries = groups[1 + len(codes) :]
        target = codes[-1] if codes else obis
        for index in range(0, len(entries) - 2, 3):
            parsed = _value(entries[index + 2])
            if parsed.number is None:
                continue
            records.append(
                _record(
                    record_name(target),
                    target,
                    parsed.number,
                    parsed.unit,
                    storage=index // 3 + 1,
                    period_start=parse_timestamp(entries[index]),
                    timestamp=parse_timestamp(entries[index + 1]),
                    buffer=obis,
                )
            )
        return
    stamp = next((s for s in map(parse_timestamp, groups) if s), None)
    for index, group in enumerate(groups):
        parsed = _value(group)
        if parsed.number is None or parse_timestamp(group):
            continue
        records.append(
            _record(
                f"billing_value_{index}",
                obis,
                parsed.number,
                parsed.unit,
                storage=1,
                timestamp=stamp,
                index=index,
            )
        )


# ---------------------------------------------------------------- encoders and framing


def encode_telegram(header: str, lines: list[str], *, crc: bool = True) -> bytes:
    """A P1 telegram from its header (``/XXX5ident``) and object lines, as a meter sends it."""
    body = header + "\r\n\r\n" + "".join(line + "\r\n" for line in lines) + "!"
    raw = body.encode("latin-1")
    return raw + (f"{crc16_arc(raw):04X}".encode("ascii") if crc else b"") + b"\r\n"


def encrypt_telegram(
    telegram: bytes,
    *,
    key: bytes,
    system_title: bytes,
    frame_counter: int,
    auth_key: bytes = SMARTY_AUTH_KEY,
) -> bytes:
    """A smarty frame: general-glo-ciphering, SC 0x30, around a plaintext telegram."""
    content = cipher(
        telegram,
        system_title=system_title,
        invocation_counter=frame_counter,
        security_control=SC_AUTHENTICATED | SC_ENCRYPTED,
        key=key,
        auth_key=auth_key,
    )
    return encode_general_ciphering(content, system_title=system_title)


def split_telegrams(buffer: bytes) -> tuple[list[bytes], bytes]:
    """(complete telegrams, bytes to keep) from a P1 byte stream, e.g. fed 1 byte at a time."""
    telegrams: list[bytes] = []
    while True:
        start = buffer.find(b"/")
        if start == -1:
            return telegrams, b""
        buffer = buffer[start:]
        end = buffer.find(b"!")
        if end == -1:
            if len(buffer) > _MAX_TELEGRAM_BYTES:
                buffer = buffer[1:]
                continue
            return telegrams, buffer
        line_end = buffer.find(b"\n", end)
        if line_end == -1:
            # The CRC line is not complete yet, unless the next telegram already started.
            if buffer.find(b"/", end) == -1:
                return telegrams, buffer
            line_end = buffer.find(b"/", end) - 1
        telegrams.append(buffer[: line_end + 1])
        buffer = buffer[line_end + 1 :]
